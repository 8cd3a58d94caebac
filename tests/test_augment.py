"""vfmatch.evaluation.augment: degraded training clips (paper 001's remedy), and `vfmatch run --augment`."""

from __future__ import annotations

import numpy as np
import pytest

from vfmatch.evaluation import augment as ag
from vfmatch.evaluation import codecs as cd
from vfmatch.job.prepare import RunConfig, _fingerprint, build_extractors
from vfmatch.job.run import _check_options


def test_plan_is_seeded_and_degrades_the_fraction():
    plan = ag.augment_plan(200, "codecs+noise", fraction=0.5, seed=3)
    assert plan == ag.augment_plan(200, "codecs+noise", fraction=0.5, seed=3)
    assert plan != ag.augment_plan(200, "codecs+noise", fraction=0.5, seed=4)
    steps = [s for s in plan if s is not None]
    assert len(steps) == 100
    assert all(s["codec"] in cd.CODECS and ag.AUGMENT_SNR[0] <= s["snr_db"] <= ag.AUGMENT_SNR[1] for s in steps)
    noise = [s for s in ag.augment_plan(50, "noise", fraction=0.2, seed=0) if s is not None]
    assert len(noise) == 10 and all(s["codec"] is None and s["snr_db"] is not None for s in noise)
    codecs = [s for s in ag.augment_plan(400, "codecs", fraction=1.0, seed=0) if s is not None]
    assert all(s["snr_db"] is None for s in codecs)
    # AMR-NB and G.729 most often, as paper 001 asks (weights 0.4 and 0.3 of AUGMENT_CODECS).
    share = {c: np.mean([s["codec"] == c for s in codecs]) for c in ("amr_nb", "g729", "silk")}
    assert share["amr_nb"] > share["silk"] and share["g729"] > share["silk"]
    assert ag.augment_plan(10, "noise", fraction=0.0) == [None] * 10
    with pytest.raises(ValueError, match="augment mode"):
        ag.augment_plan(10, "reverb")
    with pytest.raises(ValueError, match="fraction"):
        ag.augment_plan(10, "noise", fraction=1.5)


def test_augment_population_changes_only_the_chosen_clips(tiny_population):
    pop = tiny_population
    aug = ag.augment_population(pop, "noise", fraction=0.5, seed=0)
    clean, noisy = pop.audios(), aug.audios()
    changed = [not np.array_equal(a, b) for a, b in zip(clean, noisy)]
    plan = ag.augment_plan(len(clean), "noise", fraction=0.5, seed=0)
    assert changed == [s is not None for s in plan]
    assert all(a.shape == b.shape for a, b in zip(clean, noisy))
    assert list(aug.voice_speakers) == list(pop.voice_speakers) and aug.faces is pop.faces
    assert aug.info["augment"]["degraded"] == {"noise only": sum(changed)}
    # A fingerprint of its own (the feature cache never mixes clean and degraded clips), the same every time.
    again = ag.augment_population(pop, "noise", fraction=0.5, seed=0)
    assert aug.voices._fingerprint == again.voices._fingerprint != pop.voices._fingerprint
    assert ag.augment_population(pop, "noise", fraction=0.5, seed=1).voices._fingerprint != aug.voices._fingerprint
    assert ag.augment_population(pop, None) is pop
    # A selection (an index mapping on the dataset) keeps its own rows.
    part = pop.select(pop.speaker_ids[3:6])
    assert list(ag.augment_population(part, "noise").voice_speakers) == list(part.voice_speakers)


def test_codec_augmentation_runs_every_codec_it_draws(tiny_population):
    for codec in dict.fromkeys(c for c, _, _ in ag.AUGMENT_CODECS):
        try:
            cd.codec_backend(codec)
        except cd.CodecUnavailableError as exc:
            pytest.skip(str(exc))
    clips = tiny_population.audios()[:6]
    out = ag.augment_clips(clips, "codecs", fraction=1.0, seed=2)
    assert all(o.shape == c.shape and o.dtype == np.float32 and not np.array_equal(o, c) for o, c in zip(out, clips))


def test_run_option_and_cache_key(tiny_population, monkeypatch):
    _check_options(RunConfig(augment="codecs+noise"))
    with pytest.raises(ValueError, match="--augment must be one of"):
        _check_options(RunConfig(augment="reverb"))
    real = cd._backends
    monkeypatch.setattr(cd, "_backends", lambda codec: [] if codec == "g729" else real(codec))
    with pytest.raises(ValueError, match="libbcg729"):
        _check_options(RunConfig(augment="codecs"))
    _check_options(RunConfig(augment="noise"))  # noise needs no codec
    monkeypatch.setattr(cd, "_backends", real)
    # The extracted tables' cache key: unchanged without augmentation, another one per mode.
    parts = {"train": tiny_population}
    ex = build_extractors(["gender"], "fast", quick=True)
    keys = {m: _fingerprint(tiny_population, parts, ex, m) for m in (None, "noise", "codecs")}
    assert keys[None] == _fingerprint(tiny_population, parts, ex) and len(set(keys.values())) == 3

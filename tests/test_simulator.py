"""The embedded default population: traits, determinism, caching, the widget logic of chapter 01."""

import numpy as np
import pytest

import vfmatch
from vfmatch import utils
from vfmatch.metaproperties import DEFAULT_METAPROPERTIES, get_metaproperty
from vfmatch.simulator import traits, voices
from vfmatch.simulator.population import simulator_fingerprint
from vfmatch.simulator.traits import draw_identities
from vfmatch.widgets.population import simulate_person, trait_sweep


def test_traits_are_plausible_and_seeded():
    a = draw_identities(400, seed=5)
    assert a.drop(columns=["voice_latent", "face_latent"]).equals(draw_identities(400, seed=5).drop(columns=["voice_latent", "face_latent"]))
    assert not a["age"].equals(draw_identities(400, seed=6)["age"])
    assert a["age"].between(12, 80).all()
    np.testing.assert_allclose(a["weight"], a["bmi"] * (a["height"] / 100) ** 2, atol=0.2)
    men, women = a[a.gender == "male"], a[a.gender == "female"]
    assert men["height"].mean() > women["height"].mean() + 8
    # skin type follows ethnicity
    assert a.loc[a.ethnicity == "Black", "skin_tone"].mean() > a.loc[a.ethnicity == "White", "skin_tone"].mean() + 2
    for name in DEFAULT_METAPROPERTIES:  # every ground truth encodes to a valid value
        assert (get_metaproperty(name).encode(a[name].to_numpy(dtype=object)) >= 0).all()


def test_concordance_controls_shared_latent():
    def corr(c):
        t = draw_identities(3000, seed=0, concordance=c)
        v, f = np.stack(t["voice_latent"]), np.stack(t["face_latent"])
        return np.mean([np.corrcoef(v[:, k], f[:, k])[0, 1] for k in range(v.shape[1])])

    assert abs(corr(0.0)) < 0.05
    assert corr(1.0) > 0.99
    with pytest.raises(ValueError, match="concordance must be in"):
        draw_identities(5, concordance=1.5)


def test_population_is_deterministic_and_cached(tiny_population):
    again = vfmatch.make_population(12, seed=0, clips_per_identity=2, faces_per_identity=2, clip_seconds=(1.0, 1.5), image_size=64, cache=False)
    assert again.speaker_ids == tiny_population.speaker_ids
    np.testing.assert_array_equal(again.audio(3), tiny_population.audio(3))
    np.testing.assert_array_equal(again.image(5), tiny_population.image(5))
    other = vfmatch.make_population(12, seed=1, clips_per_identity=2, faces_per_identity=2, clip_seconds=(1.0, 1.5), image_size=64, cache=False)
    assert not np.array_equal(other.image(5), tiny_population.image(5))


def test_population_shapes(tiny_population):
    p = tiny_population
    assert (len(p), p.voices.num_rows, p.faces.num_rows) == (12, 24, 24)
    for i in range(p.voices.num_rows):
        a = p.audio(i)
        assert 16000 <= a.size <= 1.5 * 16000 + 1 and np.isfinite(a).all() and np.abs(a).max() <= 1.0
    assert p.images().shape == (24, 64, 64, 3)
    assert np.asarray(p.faces[0]["landmarks"]).shape == (5, 2)


def test_simulate_person_sets_traits():
    person = simulate_person(gender="female", age=70, skin_tone=5, bmi=30, height=160, seed=2, clips=1, faces=1, clip_seconds=1.0)
    row = person.identities.iloc[0]
    assert (row.gender, row.age, row.skin_tone) == ("female", 70, 5)
    assert row.weight == pytest.approx(30 * 1.6**2, abs=0.1)
    with pytest.raises(ValueError, match="skin_tone must be between 1 and 6"):
        simulate_person(skin_tone=9)
    with pytest.raises(KeyError, match="unknown trait 'shoe'"):
        simulate_person(shoe=3)


def test_trait_sweep_moves_pitch_with_gender():
    sweep = trait_sweep("gender", ["male", "female"], seed=1, age=35, clip_seconds=1.0)
    f0 = np.asarray(sweep.voices["f0_mean_hz"])
    assert sweep.speaker_ids == ["gender=male", "gender=female"]
    assert f0[1] > f0[0] * 1.3


def test_the_cache_notices_an_edited_simulator(monkeypatch):
    """The population cache is keyed on the simulator's code and tables: an edit re-simulates."""
    args = dict(seed=11, clips_per_identity=1, faces_per_identity=1, clip_seconds=(0.5, 0.6), image_size=32)
    first = vfmatch.make_population(3, **args)
    np.testing.assert_array_equal(vfmatch.make_population(3, **args).audio(0), first.audio(0))  # cached
    before = simulator_fingerprint()

    # "Edit" voices.py: every clip at half the level. The stand-in says it lives in
    # vfmatch.simulator.voices, as an edited function there would.
    synthesize = voices.synthesize_clip

    def half_level(*a, **k):
        audio, meta = synthesize(*a, **k)
        return 0.5 * audio, meta

    half_level.__module__ = voices.__name__
    monkeypatch.setattr(voices, "synthesize_clip", half_level)
    assert simulator_fingerprint() != before
    edited = vfmatch.make_population(3, **args)
    np.testing.assert_allclose(edited.audio(0), 0.5 * first.audio(0), atol=1e-6)  # simulated again, not the old clips
    monkeypatch.undo()
    assert simulator_fingerprint() == before

    # A table of numbers and the shared code version count too.
    monkeypatch.setitem(traits.HEIGHT_OFFSET, "White", 9.0)
    assert simulator_fingerprint() != before
    monkeypatch.undo()
    monkeypatch.setattr(utils, "CODE_VERSION", utils.CODE_VERSION + "-test")
    assert simulator_fingerprint() != before

"""vfmatch.evaluation.robustness: noise, the telephone codecs, and the codec x noise sweep.

Codec tests skip only when the codec is truly absent, with the message that says
how to install it; .ci/run installs them all (see the module docstring)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from vfmatch.data.preprocess import resample
from vfmatch.evaluation import codecs as cd
from vfmatch.evaluation import robustness as rb

SR = 16_000


def _speechlike(seconds=1.0, f0=140.0, seed=0):
    """A voiced harmonic signal with a slow pitch glide and formant-ish colouring."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 2 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum((0.6 / k) * np.sin(k * phase) * (1 + 0.8 * np.cos(2 * np.pi * 700 * k / 4000)) for k in range(1, 20))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.002 * rng.normal(size=t.size)
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


def _need(codec):
    try:
        cd.codec_backend(codec)
    except cd.CodecUnavailableError as exc:
        pytest.skip(str(exc))


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def _spectral_corr(a, b):
    """Correlation of log power spectrograms below 3.8 kHz. CELP codecs (AMR, G.729)
    keep the spectrum but not the waveform's phase, so waveforms are not compared."""
    from scipy.signal import stft

    def logspec(z):
        f, _, Z = stft(z, SR, nperseg=512)
        return np.log10(np.abs(Z[f < 3800]) ** 2 + 1e-8).ravel()

    return _corr(logspec(a), logspec(b))


def _lowpass(x):
    """What any 8 kHz codec can keep at best: the signal resampled to 8 kHz and back."""
    return resample(resample(x, SR, 8000), 8000, SR)[: x.size]


# ---------------------------------------------------------------- noise


def test_add_noise_hits_the_snr():
    x = _speechlike()
    for snr in (0.0, 10.0, 25.0):
        y = rb.add_noise(x, snr, seed=1)
        n = y.astype(np.float64) - x
        assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2)) == pytest.approx(snr, abs=1e-3)
    y1, y2 = rb.add_noise(x, (10, 20), seed=5), rb.add_noise(x, (10, 20), seed=5)
    assert np.array_equal(y1, y2)  # seeded
    got = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y1.astype(np.float64) - x) ** 2))
    assert 10 <= got <= 20
    pink = rb.add_noise(x, 10, seed=1, noise="pink") - x
    spec = np.abs(np.fft.rfft(pink)) ** 2
    assert spec[10:200].mean() > 10 * spec[-2000:].mean()  # more power at low frequencies
    with pytest.raises(ValueError, match="silent"):
        rb.add_noise(np.zeros(1000), 10)
    with pytest.raises(ValueError, match="white"):
        rb.add_noise(x, 10, noise="brown")


# ---------------------------------------------------------------- G.711


def test_g711_round_trip_error_is_small():
    pcm = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    for law in ("mulaw", "alaw"):
        codes = cd.g711_encode(pcm, law)
        assert codes.dtype == np.uint8 and len(np.unique(codes)) >= 255  # mu-law's "negative zero" is never produced
        back = cd.g711_decode(codes, law).astype(np.int64)
        err = np.abs(back - pcm)
        # Logarithmic quantiser: the error grows with the magnitude, at most ~1/32 of it (+ a floor).
        assert np.all(err <= np.abs(pcm.astype(np.int64)) / 30 + 40)
        assert np.array_equal(cd.g711_encode(back.astype(np.int16), law), codes)  # decoded values are fixed points
    with pytest.raises(ValueError, match="law"):
        cd.g711_encode(pcm, "ulaw2")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg); it is only the reference here")
def test_g711_agrees_with_ffmpeg(tmp_path):
    pcm = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    pcm.tofile(tmp_path / "in.raw")
    for law in ("mulaw", "alaw"):
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "8000", "-ac", "1",
                        "-i", str(tmp_path / "in.raw"), "-f", law, str(tmp_path / "out.raw")], check=True)
        ref = np.fromfile(tmp_path / "out.raw", dtype=np.uint8)
        ours = cd.g711_encode(pcm, law)
        # The decoders are the same table; the encoders differ only where a sample
        # falls on a decision boundary (the reference g711.c truncates, ffmpeg rounds).
        assert np.array_equal(cd.g711_decode(np.arange(256), law), cd.g711_decode(np.arange(256), law))
        assert np.mean(ref == ours) > 0.98
        diff = np.abs(cd.g711_decode(ref, law).astype(int) - cd.g711_decode(ours, law).astype(int))
        step = np.abs(np.diff(np.sort(np.unique(cd.g711_decode(np.arange(256), law).astype(int))))).max()
        assert diff.max() <= step


# ---------------------------------------------------------------- every codec


@pytest.mark.parametrize("codec", list(cd.CODECS))
def test_codec_round_trip(codec):
    _need(codec)
    x = _speechlike(seconds=1.3)
    y = cd.encode_decode(x, SR, codec)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert not np.allclose(y, _lowpass(x), atol=1e-4)  # the codec did something
    assert _spectral_corr(y, _lowpass(x)) > 0.85  # and kept the speech
    z = rb.degrade(x, SR, codec=codec, snr_db=(0, 10), seed=2)
    assert z.shape == x.shape and np.abs(z).max() <= 1.0


def test_silk_is_silk_only():
    _need("silk")
    if cd._load_library("opus") is None:
        pytest.skip("libopus is not loadable (apt-get install libopus0); the ffmpeg fallback hides the packets")
    pcm = (_speechlike() * 32767).astype(np.int16)[::2]
    for bitrate in (6000, 12000, 24000, 40000):  # paper 001's range: Opus alone would switch to CELT up there
        configs = []
        cd._opus_library(pcm, bitrate, configs)
        assert max(configs) < 12  # TOC configurations 0-11 are SILK-only


@pytest.mark.parametrize("codec, library, tool", [("amr_nb", "libopencore-amrnb", "sox"), ("silk", "libopus", "ffmpeg")])
def test_library_and_command_line_agree(codec, library, tool):
    names = [b[0] for b in cd._backends(codec)]
    if library not in names or tool not in names:
        pytest.skip(f"needs both {library} and {tool}; install with: {cd.CODECS[codec].install}")
    x = _speechlike(seconds=1.5, seed=3)
    a = cd.encode_decode(x, SR, codec, backend=library)
    b = cd.encode_decode(x, SR, codec, backend=tool)
    if codec == "amr_nb":
        np.testing.assert_allclose(a, b, atol=1e-6)  # one library underneath: the same samples
    else:
        assert _spectral_corr(a, b) > 0.9  # ffmpeg sets its own encoder options


def test_missing_codec_message(monkeypatch):
    monkeypatch.setattr(cd, "_backends", lambda codec: [])
    with pytest.raises(cd.CodecUnavailableError, match="apt-get install libbcg729-0"):
        cd.encode_decode(_speechlike(), SR, "g729")
    assert cd.available_codecs() == []


def test_degrade_contract():
    x = _speechlike(seconds=0.5)
    assert np.array_equal(rb.degrade(x, SR), np.clip(x, -1, 1))
    assert rb.degrade(x[::2], 8000).shape == (x.size,)  # resampled to 16 kHz
    assert rb.degrade(x, SR, codec="g711_alaw").shape == x.shape
    for bad, msg in [(np.zeros((2, 100)), "1-D"), (np.r_[x, np.nan], "NaN"), (x[:10], "at least")]:
        with pytest.raises(ValueError, match=msg):
            rb.degrade(bad, SR)
    with pytest.raises(ValueError, match="unknown codec"):
        rb.degrade(x, SR, codec="mp3")
    with pytest.raises(ValueError, match="6,000-40,000"):
        cd.encode_decode(x, SR, "silk", bitrate=48000)
    with pytest.raises(ValueError, match="AMR-NB has the bit rates"):
        cd.encode_decode(x, SR, "amr_nb", bitrate=8000)
    with pytest.raises(ValueError, match="one bit rate"):
        cd.encode_decode(x, SR, "g729", bitrate=16000)
    assert rb.snr_label(None) == "clean" and rb.snr_label((20, 30)) == "20-30 dB"


# ---------------------------------------------------------------- the sweep


def _f0_gender_scorer(clips, population):
    """Signal-level baseline written for this test: autocorrelation F0 -> P(female) -> face gender."""
    female_face = population.labels("gender", "face") == 1
    p = []
    for c in clips:
        x = np.asarray(c, dtype=np.float64)
        mid = x[len(x) // 4 : len(x) // 4 + 8000]
        mid = mid - mid.mean()
        ac = np.fft.irfft(np.abs(np.fft.rfft(mid, 2 * mid.size)) ** 2)[: mid.size]
        lo, hi = SR // 400, SR // 70
        lag = lo + int(np.argmax(ac[lo:hi]))
        p.append(1 / (1 + np.exp(-(SR / lag - 165.0) / 15.0)))
    p = np.asarray(p)[:, None]
    return np.where(female_face[None, :], p, 1 - p)


def test_robustness_sweep_every_codec(tiny_population):
    codecs = list(cd.CODECS)
    for c in codecs:
        _need(c)
    df = rb.robustness_sweep(tiny_population, _f0_gender_scorer, snr_bands=[(0, 10)], n_triplets=300)
    assert len(df) == (1 + len(codecs)) * 2
    assert set(df["codec"]) == {"none", *codecs} and set(df["snr"]) == {"clean", "0-10 dB"}
    assert (df["identification_1to2_chance"] == 0.5).all()
    assert df["identification_1to2"].between(0, 1).all() and df["percentile_mean_rank"].between(0, 1).all()
    clean = df[(df["codec"] == "none") & (df["snr"] == "clean")].iloc[0]
    assert clean["identification_1to2"] > 0.55  # pitch knows gender: above chance on clean audio
    assert (df["n_clips"] == tiny_population.voices.num_rows).all()


def test_robustness_sweep_errors(tiny_population):
    with pytest.raises(ValueError, match="unknown codecs"):
        rb.robustness_sweep(tiny_population, _f0_gender_scorer, codecs=["mp3"])
    with pytest.raises(ValueError, match="shape"):
        rb.robustness_sweep(tiny_population, lambda clips, pop: np.zeros((2, 2)), codecs=[], snr_bands=[])


# ---------------------------------------------------------------- the baseline scorer and widget logic (book/09)


def test_statistics_scorer(tiny_population):
    score_fn = rb.statistics_scorer(tiny_population, metaproperties=("gender", "age"))
    clips = tiny_population.audios([0, 1, 2])
    S = score_fn(clips, tiny_population)
    assert S.shape == (3, tiny_population.faces.num_rows) and np.isfinite(S).all() and (S <= 0).all()
    assert set(score_fn.models) == {"gender", "age"}


def test_an_unmeasurable_clip_gets_a_full_row_of_nan(tiny_population):
    """A clip silenced or cut short by a codec has no statistics: one NaN per statistic
    (all of VOICE_STAT_NAMES, not a hard-coded count), and the scorer still scores it."""
    from vfmatch.features.audio import VOICE_STAT_NAMES

    clips = [tiny_population.audio(0), np.zeros(16000, np.float32), np.zeros(100, np.float32)]
    X = rb._clip_statistics(clips)
    assert X.shape == (3, len(VOICE_STAT_NAMES))
    assert np.isfinite(X[0]).any() and np.isnan(X[1:]).all()
    score_fn = rb.statistics_scorer(tiny_population, metaproperties=("gender",))
    S = score_fn(clips, tiny_population)
    assert S.shape == (3, tiny_population.faces.num_rows) and np.isfinite(S).all()


def test_sweep_tables_and_listening():
    import pandas as pd

    from vfmatch.widgets.evaluation import build_listen_widget, codec_spectra_figure, listening_examples, sweep_figure, sweep_table

    df = pd.DataFrame({"codec": ["none", "none", "g729", "g729"], "codec_label": ["none", "none", "G.729", "G.729"],
                       "snr": ["clean", "0-10 dB", "clean", "0-10 dB"], "identification_1to2": [0.9, 0.8, 0.7, 0.6],
                       "identification_1to2_chance": 0.5})
    t = sweep_table(df)
    assert list(t.columns) == ["clean", "0-10 dB"] and t.loc["G.729", "0-10 dB"] == 0.6
    assert len(sweep_figure(df).data) == 3
    with pytest.raises(KeyError):
        sweep_table(df, "auc")
    x = _speechlike(seconds=0.5)
    ex = listening_examples(x, SR, codecs=[None, "g711_alaw"], snr_bands=[None, (0, 10)])
    assert set(ex) == {("none", "clean"), ("none", "0-10 dB"), ("g711_alaw", "clean"), ("g711_alaw", "0-10 dB")}
    assert all(w.shape == x.shape for w in ex.values())
    assert len(codec_spectra_figure(x, SR, codecs=[None, "g711_mulaw"]).data) == 2
    assert len(build_listen_widget(x, SR, codecs=["g711_mulaw"]).children) == 2


# ---------------------------------------------------------------- paper 001's conditions on a trained scorer


def test_conditions_are_paper_001s():
    names = [c.name for c in rb.ROBUSTNESS_CONDITIONS]
    assert names == ["clean", "snr_30_20", "snr_20_10", "snr_10_0", "g711_mulaw", "g711_alaw", "amr_nb_4.75",
                     "amr_nb_12.2", "silk_6", "silk_12", "silk_24", "silk_40", "g729"]
    assert rb.get_condition("silk_24").bitrate == 24_000 and rb.get_condition("snr_10_0").snr == (0.0, 10.0)
    assert rb.get_condition("amr_nb_4.75").label == "AMR-NB 4.75 kbit/s"
    with pytest.raises(ValueError, match="unknown condition"):
        rb.get_condition("mp3_128")


def test_amr_modes_differ():
    _need("amr_nb")
    x = _speechlike(seconds=1.0, seed=4)
    low, high = (cd.encode_decode(x, SR, "amr_nb", bitrate=b) for b in (4_750, 12_200))
    ref = _lowpass(x)
    assert not np.allclose(low, high, atol=1e-3)
    assert _spectral_corr(high, ref) > _spectral_corr(low, ref)  # more bits keep more of the spectrum


def test_condition_status_reports_missing_codecs(monkeypatch):
    monkeypatch.setattr(cd, "_backends", lambda codec: [("numpy", None)] if codec.startswith("g711") else [])
    st = rb.condition_status().set_index("condition")
    assert st.loc["clean", "runs"] and st.loc["snr_10_0", "runs"] and st.loc["g711_alaw", "runs"]
    assert not st.loc["g729", "runs"] and "apt-get install libbcg729-0" in st.loc["g729", "reason"]


def _oracle_gender_scores(population):
    """``scores_from_voices`` for the tests: the F0 gender guess of each clip against every face."""
    def scores(clips):
        return _f0_gender_scorer(clips, population)
    return scores


def test_score_conditions_pairs_every_condition_with_clean(tiny_population, monkeypatch):
    pop = tiny_population
    clips = pop.audios()
    g = dict(voice_gender=pop.labels("gender", "voice"), face_gender=pop.labels("gender", "face"))
    real = cd._backends
    monkeypatch.setattr(cd, "_backends", lambda codec: [] if codec == "g729" else real(codec))  # as if not installed
    t = rb.score_conditions(_oracle_gender_scores(pop), clips, pop.voice_speakers, pop.face_speakers,
                            conditions=["snr_10_0", "g711_mulaw", "g729"], n_triplets=400, n_pairs=400, n_boot=200, **g)
    assert list(t["condition"]) == ["clean", "snr_10_0", "g711_mulaw", "g729"]  # clean first, always
    clean, skipped = t.iloc[0], t.iloc[3]
    assert skipped["status"] == "skipped" and "libbcg729" in skipped["reason"] and np.isnan(skipped["auc"])
    for m in rb.ROBUSTNESS_METRICS:
        assert clean[f"{m}_delta"] == 0 and clean[f"{m}_delta_low"] == 0 == clean[f"{m}_delta_high"]
        ok = t[t["status"] == "ok"]
        assert (ok[f"{m}_low"] <= ok[m]).all() and (ok[m] <= ok[f"{m}_high"]).all()
        assert np.allclose(ok[f"{m}_delta"], ok[m] - clean[m])
    assert clean["identification_1to2_vf"] > 0.55  # pitch knows gender on clean audio
    # Seeded: the same call gives the same table.
    again = rb.score_conditions(_oracle_gender_scores(pop), clips, pop.voice_speakers, pop.face_speakers,
                                conditions=["snr_10_0"], n_triplets=400, n_pairs=400, n_boot=200, **g)
    cols = ["identification_1to2_vf", "auc", "auc_low"]
    assert np.allclose(again[cols].to_numpy(float), t.iloc[:2][cols].to_numpy(float))
    with pytest.raises(ValueError, match="shape"):
        rb.score_conditions(lambda c: np.zeros((2, 2)), clips, pop.voice_speakers, pop.face_speakers, conditions=[])
    with pytest.raises(ValueError, match="clips but"):
        rb.score_conditions(_oracle_gender_scores(pop), clips[:3], pop.voice_speakers, pop.face_speakers)


def test_degrade_clips_is_paired_and_seeded():
    clips = [_speechlike(seconds=0.5, seed=s) for s in range(3)]
    a = rb.degrade_clips(clips, "snr_20_10", seed=0)
    b = rb.degrade_clips(clips, "snr_20_10", seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    noise0 = a[0] - clips[0]
    assert not np.allclose(noise0, rb.degrade_clips(clips, "snr_20_10", seed=1)[0] - clips[0])
    # The same clip gets the same noise draw in the sweep and here (one seed rule).
    assert rb.clip_seed(0, 0, rb.get_condition("snr_20_10")) == int(np.random.SeedSequence([0, 0, 2]).generate_state(1)[0])

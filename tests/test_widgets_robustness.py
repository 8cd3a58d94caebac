"""vfmatch.widgets.robustness (book/09_robustness.ipynb), without a browser."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vfmatch.evaluation.robustness import ROBUSTNESS_CONDITIONS, ROBUSTNESS_METRICS
from vfmatch.widgets import robustness as wr

SR = 16_000


def _clip(seconds=0.6, f0=150.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 15))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _power_above(wave, khz):
    spec = np.abs(np.fft.rfft(wave)) ** 2
    f = np.fft.rfftfreq(wave.size, 1 / SR)
    return spec[f > khz * 1000].sum() / spec.sum()


def test_condition_options_and_degraded_clip():
    opts = wr.condition_options()
    assert opts[0] == ("clean", "clean") and len(opts) == len(ROBUSTNESS_CONDITIONS)
    x = _clip()
    assert np.array_equal(wr.degraded_clip(x, "clean"), x)
    bright = _clip(f0=400.0)  # harmonics up to 5.6 kHz
    y = wr.degraded_clip(bright, "g711_alaw")
    assert y.shape == bright.shape and _power_above(y, 4.2) < 0.01 < _power_above(bright, 4.2)  # a telephone band
    noisy = wr.degraded_clip(x, "clean", snr_db=0.0, seed=1)
    n = noisy.astype(np.float64) - x
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2)) == pytest.approx(0.0, abs=0.1)
    assert np.array_equal(wr.degraded_clip(x, "g711_mulaw", snr_db=10, seed=2), wr.degraded_clip(x, "g711_mulaw", snr_db=10, seed=2))


def test_spectrogram_figure_axes_and_range():
    fig = wr.spectrogram_figure(_clip(), title="t")
    hm = fig.data[0]
    assert hm.type == "heatmap" and fig.layout.xaxis.title.text == "time (s)" and fig.layout.yaxis.title.text == "frequency (kHz)"
    z = np.asarray(hm.z)
    assert z.max() == pytest.approx(0.0) and z.min() >= -80 and max(hm.y) <= 8.0


def test_one_to_two_view_reads_the_scores():
    faces = np.array(["a", "a", "b", "c"])

    def perfect(clips):  # own face (speaker "a") scores highest
        return np.tile([1.0, 0.9, 0.2, 0.1], (len(clips), 1))

    def tie(clips):
        return np.ones((len(clips), 4))

    v = wr.one_to_two_view({"perfect": perfect, "tie": tie}, _clip(), "a", faces, "g711_mulaw", other_face=2)
    assert v.loc["perfect", "1:2 right"] == 1.0 and v.loc["perfect", "own face beats"] == 1.0
    assert v.loc["perfect", "score other face"] == 0.2
    assert v.loc["tie", "1:2 right"] == 0.5 and v.loc["tie", "own face beats"] == 0.5
    with pytest.raises(ValueError, match="own"):
        wr.one_to_two_view({"p": perfect}, _clip(), "a", faces, "clean", other_face=1)
    with pytest.raises(ValueError, match="no face"):
        wr.one_to_two_view({"p": perfect}, _clip(), "z", faces, "clean")


def _table():
    rows = []
    for method, shift in (("clean-trained", 0.0), ("augmented", 0.04)):
        for k, c in enumerate(ROBUSTNESS_CONDITIONS[:3]):
            row = {"method": method, "condition": c.name, "label": c.label, "status": "ok"}
            for m in ROBUSTNESS_METRICS:
                v = 0.8 - 0.1 * k + shift * k
                row.update({m: v, f"{m}_low": v - 0.05, f"{m}_high": v + 0.05, f"{m}_delta": -0.1 * k + shift * k})
            rows.append(row)
    return pd.DataFrame(rows)


def test_augmentation_table_and_curves():
    t = wr.augmentation_table(_table(), "clean-trained", "augmented")
    assert list(t["condition"]) == [c.label for c in ROBUSTNESS_CONDITIONS[:3]]
    assert np.allclose(t["augmented - reference"], [0.0, 0.04, 0.08])
    assert t.loc[0, "clean-trained CI"] == "[0.750, 0.850]"
    with pytest.raises(KeyError, match="no rows"):
        wr.augmentation_table(_table(), "clean-trained", "other")
    fig = wr.curves_figure(_table(), "auc")
    assert len(fig.data) == 2 and fig.layout.barmode == "group"


def test_view_and_widget_redraw_on_a_new_condition():
    faces = np.array(["a", "b"])
    scores = {"m": lambda clips: np.tile([1.0, 0.0], (len(clips), 1))}
    fig, one, rows = wr.robustness_view(scores, _clip(), "a", faces, "g711_alaw", "10 dB", table=_table())
    assert fig.layout.title.text == "The clip: G.711 A-law 64 kbit/s, white noise at 10 dB first"
    assert one.loc["m", "1:2 right"] == 1.0 and rows.empty  # g711_alaw is not in the test table
    fig, _one, rows = wr.robustness_view(scores, _clip(), "a", faces, "snr_30_20", table=_table())
    assert fig.layout.title.text == "The clip: noise, SNR 30-20 dB" and list(rows.index) == ["clean-trained", "augmented"]
    with pytest.raises(ValueError, match="snr_choice"):
        wr.robustness_view(scores, _clip(), "a", faces, "clean", "7 dB")
    W = pytest.importorskip("ipywidgets")
    box = wr.build_robustness_widget(scores, _clip(), "a", faces, table=_table(), conditions=["clean", "snr_30_20"])
    (cond, snr), out = box.children[0].children, box.children[1]
    assert isinstance(cond, W.Dropdown) and len(out.outputs) == 3
    before = json.dumps(out.outputs[2])
    cond.value = "snr_30_20"
    assert len(out.outputs) == 3 and json.dumps(out.outputs[2]) != before  # the table rows of the new condition

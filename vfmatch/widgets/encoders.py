"""Widget logic for chapters 2 and 3: what the voice and face encoders see.

Each function takes plain values and returns numbers, tables or plotly
figures, so it is tested without a browser; ``build_*`` functions wire them
to ipywidgets sliders in a few lines.

Book chapters: ``book/02_voice_encoders.ipynb``, ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ..features.audio import LogMelSpectrogram, formant_track, pitch_track, validate_waveform
from ..features.images import images_to_tensor, individual_typology_angle, rgb_to_lab, skin_patches, validate_images
from .display import show_in

__all__ = [
    "mel_resolution",
    "mel_figure",
    "pitch_formant_figure",
    "build_mel_widget",
    "show_in",
    "embedding_projection",
    "embedding_figure",
    "nearest_neighbour_accuracy",
    "aligned_faces_figure",
    "ita_figure",
]


# ------------------------------------------------------------------------ chapter 2
def mel_resolution(n_fft: int = 400, hop_ms: float = 10.0, n_mels: int = 64, f_min: float = 50.0, f_max: float = 8000.0, sample_rate: int = 16000) -> dict:
    """What a log-Mel setting resolves.

    Returns
    -------
    dict with ``window_ms`` (STFT window), ``hop_ms``, ``frames_per_second``,
    ``fft_bin_hz`` (spacing of the FFT bins the Mel filters pool), and
    ``mel_band_hz_low`` / ``mel_band_hz_high``: the width of the lowest and the
    highest Mel band (Mel bands are narrow at low and wide at high frequencies).
    """
    if n_fft < 16 or hop_ms <= 0 or n_mels < 1 or not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError("need n_fft >= 16, hop_ms > 0, n_mels >= 1 and 0 <= f_min < f_max <= sample_rate / 2")
    mel = lambda f: 2595 * np.log10(1 + np.asarray(f) / 700)  # noqa: E731 (HTK formula, for band widths)
    inv = lambda m: 700 * (10 ** (np.asarray(m) / 2595) - 1)  # noqa: E731
    edges = inv(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    return {
        "window_ms": 1000 * n_fft / sample_rate,
        "hop_ms": float(hop_ms),
        "frames_per_second": 1000 / hop_ms,
        "fft_bin_hz": sample_rate / n_fft,
        "mel_band_hz_low": float(edges[2] - edges[0]),
        "mel_band_hz_high": float(edges[-1] - edges[-3]),
    }


def mel_figure(wave, *, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 400, hop_ms: float = 10.0, f_max: float = 8000.0, top_db: float = 80.0, title: str = ""):
    """The waveform above its log-Mel spectrogram for the given settings (a plotly figure)."""
    x = validate_waveform(wave, name="wave")
    hop = max(1, int(round(sample_rate * hop_ms / 1000)))
    n_fft = int(n_fft)
    if n_fft > x.numel():
        raise ValueError(f"n_fft={n_fft} is longer than the clip ({x.numel()} samples)")
    spec = LogMelSpectrogram(sample_rate, n_fft=n_fft, hop_length=hop, n_mels=int(n_mels), f_max=f_max, top_db=top_db)(x).numpy()
    t_wave = np.arange(x.numel()) / sample_rate
    step = max(1, x.numel() // 4000)  # a few thousand points draw fast
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.3, 0.7], vertical_spacing=0.05)
    fig.add_scatter(x=t_wave[::step], y=x.numpy()[::step], mode="lines", line=dict(width=1), name="waveform", row=1, col=1)
    fig.add_heatmap(z=spec, x=np.arange(spec.shape[1]) * hop / sample_rate, y=np.arange(spec.shape[0]), colorscale="Magma",
                    colorbar=dict(title="dB", y=0.35, len=0.7), row=2, col=1)
    res = mel_resolution(n_fft, hop_ms, int(n_mels), 50.0, f_max, sample_rate)
    fig.update_layout(
        title=title or f"{spec.shape[0]} Mel bands x {spec.shape[1]} frames; window {res['window_ms']:.0f} ms, hop {hop_ms:g} ms",
        height=450, showlegend=False,
    )
    fig.update_yaxes(title_text="amplitude", row=1, col=1)
    fig.update_yaxes(title_text="Mel band", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    return fig


def pitch_formant_figure(wave, *, sample_rate: int = 16000, title: str = "Pitch (F0) and formants"):
    """F0 and the first three formants over time (Hz), the cues of ``f0-formants``."""
    f0, _ = pitch_track(wave, sample_rate)
    fm = formant_track(wave, sample_rate)
    t = np.arange(len(f0)) * 0.01
    fig = go.Figure()
    fig.add_scatter(x=t, y=f0, mode="markers", marker=dict(size=3), name="F0")
    n = min(len(f0), len(fm))  # both tracks hop 10 ms; their last frames may differ by one
    voiced = np.isfinite(f0[:n])
    for k in range(fm.shape[1]):
        fig.add_scatter(x=t[:n][voiced], y=fm[:n][voiced, k], mode="markers", marker=dict(size=3), name=f"F{k + 1}")
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="frequency (Hz)", yaxis_type="log", height=350)
    return fig


def build_mel_widget(wave, sample_rate: int = 16000):
    """Sliders for n_mels, n_fft, hop and f_max redrawing :func:`mel_figure`."""
    import ipywidgets as w  # deferred: ipywidgets is optional (the "book" extra)

    out = w.Output()
    controls = {
        "n_mels": w.IntSlider(64, min=16, max=128, step=16, description="Mel bands"),
        "n_fft": w.IntSlider(400, min=128, max=1600, step=16, description="window"),
        "hop_ms": w.FloatSlider(10, min=2.5, max=40, step=2.5, description="hop (ms)"),
        "f_max": w.FloatSlider(8000, min=2000, max=8000, step=500, description="f_max (Hz)"),
    }

    def redraw(_=None):
        show_in(out, mel_figure(wave, sample_rate=sample_rate, **{k: c.value for k, c in controls.items()}))

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(controls.values())[:2]), w.HBox(list(controls.values())[2:]), out])


def embedding_projection(features: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """2-D view of embeddings (n, dim) -> (n, 2): ``"pca"`` or ``"tsne"``, after standardising."""
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or len(X) < 3:
        raise ValueError(f"need at least 3 embeddings of shape (n, dim), got {X.shape}")
    X = np.nan_to_num((X - np.nanmean(X, axis=0)) / (np.nanstd(X, axis=0) + 1e-8))
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(X)
    if method == "tsne":
        return TSNE(2, perplexity=min(30, len(X) - 1), random_state=seed, init="pca").fit_transform(X)
    raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")


def embedding_figure(features: np.ndarray, table: pd.DataFrame, color: str, *, method: str = "pca", hover: Sequence[str] = ("speaker_id",), title: str = ""):
    """Scatter of :func:`embedding_projection`, coloured by a column of ``table`` (one row per item)."""
    xy = embedding_projection(features, method)
    df = table.reset_index(drop=True).copy()
    df["x"], df["y"] = xy[:, 0], xy[:, 1]
    if color in df and df[color].dtype.kind not in "fc":
        df[color] = df[color].astype(str)
    axis = "principal component" if method == "pca" else "t-SNE dimension"
    return px.scatter(df, x="x", y="y", color=color, hover_data=[h for h in hover if h in df],
                      labels={"x": f"{axis} 1 (no unit)", "y": f"{axis} 2 (no unit)"},
                      title=title or f"{method.upper()} of the embeddings, coloured by {color}")


def nearest_neighbour_accuracy(features: np.ndarray, labels) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (cosine similarity of standardised embeddings).

    With speaker ids as labels: how often an item's closest other item belongs to
    the same person -- how *speaker-specific* an embedding is."""
    X = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    X = np.nan_to_num((X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8))
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-12
    sim = X @ X.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(axis=1)] == labels))


# ------------------------------------------------------------------------ chapter 3
def aligned_faces_figure(images: np.ndarray, landmarks: np.ndarray | None, *, size: int = 64, zoom: float = 1.0, title: str = "Faces before and after alignment"):
    """Originals (top row) and their landmark-aligned crops (bottom row), as the encoders see them."""
    imgs = validate_images(images)
    aligned = images_to_tensor(imgs, size, landmarks, zoom=zoom).permute(0, 2, 3, 1).numpy()
    orig = images_to_tensor(imgs, size, None).permute(0, 2, 3, 1).numpy()
    both = np.concatenate([orig, aligned])
    fig = px.imshow((both * 255).astype(np.uint8), facet_col=0, facet_col_wrap=len(imgs), title=title)
    fig.for_each_annotation(lambda a: a.update(text=""))
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    return fig


def ita_figure(image: np.ndarray, landmarks: np.ndarray, *, radius: float = 0.12):
    """The face with its skin patches outlined and each patch's ITA (degrees) in the title."""
    img = validate_images(image)[0]
    masks = skin_patches(landmarks, img.shape[:2], radius=radius)
    lab = rgb_to_lab(img / 255.0)
    shown = img.copy()
    texts = []
    for name, m in masks.items():
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        shown[edge] = (0, 255, 0)
        if m.any():
            texts.append(f"{name.replace('_', ' ')} {individual_typology_angle(np.median(lab[m], axis=0)):.0f}°")
    return px.imshow(shown, title="ITA: " + ", ".join(texts), labels={"x": "x (pixels)", "y": "y (pixels)"})

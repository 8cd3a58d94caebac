"""Pre-processing of voices and faces, as in paper 001 (section 2.2).

Audio
    Clips are resampled to 16 kHz (:func:`resample`, :class:`Resample`) and cut
    into segments of 3 to 10 seconds (:func:`segment_audio`,
    :class:`SegmentAudio`).

Faces
    Faces of bad quality are dropped -- yaw, pitch or roll beyond 15 degrees,
    closed eyes, open mouth -- wherever that information is known
    (:func:`face_quality`). The rest are aligned: a similarity transform
    (rotation, uniform scale, shift) takes the five landmarks (left eye, right
    eye, nose tip, left and right mouth corner, in image coordinates) as close
    as possible to a canonical template, and the image is warped with it and
    resized (:func:`align_face`, :class:`AlignFaces` for batches on a GPU).
    The template is the standard 112 x 112 ArcFace one (:data:`ARCFACE_TEMPLATE`),
    scaled to the output size.

Paper 001 also removes the background and works at 256 x 256 pixels; here the
size is a parameter and the background is kept (the simulator's faces have a
plain one). :func:`vfmatch.load_population` calls these functions when asked
to (``segment_seconds=``, ``filter_faces=``, ``align_faces=``).

Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF
from PIL import Image

from .population import SAMPLE_RATE

__all__ = [
    "ARCFACE_TEMPLATE",
    "resample",
    "Resample",
    "segment_audio",
    "SegmentAudio",
    "face_quality",
    "similarity_transform",
    "align_face",
    "transform_landmarks",
    "AlignFaces",
]

# Five landmarks of the ArcFace 112 x 112 crop (insightface), in pixels (x, y):
# left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_SIZE = 112


# ---------------------------------------------------------------------- audio
def resample(wave: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample audio with a windowed-sinc filter (:func:`torchaudio.functional.resample`).

    The one resampler of vfmatch: files at other rates are loaded through it, and
    the telephone codecs of :mod:`vfmatch.evaluation.robustness` go to 8 kHz and back with it.

    Parameters
    ----------
    wave : array, shape (..., n_samples)
        Samples; the last axis is time.
    sr_in, sr_out : int
        Sample rates in Hz (``sr_out`` defaults to the population's 16 kHz).

    Returns
    -------
    np.ndarray of float32, shape (..., ceil(n_samples * sr_out / sr_in));
    a float32 copy of ``wave`` when the rates are equal.
    """
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(wave, dtype=np.float32)
    if sr_in == sr_out:
        return x.copy()
    return AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sr_in, sr_out).numpy()


class Resample(torch.nn.Module):
    """:func:`resample` as a torchaudio-style module: ``Resample(44100)(wave)``.

    Input and output are tensors of shape (..., time); works on any device."""

    def __init__(self, orig_freq: int, new_freq: int = SAMPLE_RATE):
        super().__init__()
        self.orig_freq = int(orig_freq)
        self.new_freq = int(new_freq)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.orig_freq == self.new_freq:
            return waveform
        return AF.resample(waveform, self.orig_freq, self.new_freq)

    def extra_repr(self) -> str:
        return f"orig_freq={self.orig_freq}, new_freq={self.new_freq}"


def _segment_bounds(n_samples: int, sr: int, min_s: float, max_s: float) -> list[tuple[int, int]]:
    if not 0 < min_s <= max_s:
        raise ValueError(f"segment lengths must satisfy 0 < min_s <= max_s, got min_s={min_s}, max_s={max_s}")
    lo, hi = int(round(min_s * sr)), int(round(max_s * sr))
    if n_samples < lo:
        return []
    # As few equal segments as keep each one under max_s: all of the audio is used.
    n_seg = -(-n_samples // hi)
    length = n_samples // n_seg
    if length < lo:
        # Only when max_s < 2 * min_s: fall back to as many min_s pieces as fit.
        n_seg, length = n_samples // lo, lo
    return [(k * length, (k + 1) * length) for k in range(n_seg)]


def segment_audio(wave: np.ndarray, sr: int, min_s: float = 3.0, max_s: float = 10.0) -> list[np.ndarray]:
    """Cut a clip into consecutive segments of ``min_s`` to ``max_s`` seconds.

    The clip is split into the fewest equal parts that are each at most
    ``max_s`` long, so a 25 s clip gives three 8.33 s segments and nothing is
    thrown away but a few rounding samples. A clip shorter than ``min_s``
    gives no segment.

    Parameters
    ----------
    wave : array, shape (n_samples,)
    sr : int
        Sample rate in Hz.
    min_s, max_s : float
        Shortest and longest segment in seconds (paper 001: 3 and 10).

    Returns
    -------
    list of np.ndarray, each of shape (segment_samples,), all the same length.
    """
    x = np.asarray(wave)
    if x.ndim != 1:
        raise ValueError(f"segment_audio expects mono audio of shape (n_samples,), got shape {x.shape}")
    return [x[a:b].copy() for a, b in _segment_bounds(x.shape[0], int(sr), float(min_s), float(max_s))]


class SegmentAudio(torch.nn.Module):
    """:func:`segment_audio` as a module: a (time,) tensor in, a
    (n_segments, segment_samples) tensor out (zero rows if the clip is too short)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, min_s: float = 3.0, max_s: float = 10.0):
        super().__init__()
        self.sample_rate, self.min_s, self.max_s = int(sample_rate), float(min_s), float(max_s)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.ndim != 1:
            raise ValueError(f"SegmentAudio expects a (time,) tensor, got shape {tuple(waveform.shape)}")
        bounds = _segment_bounds(waveform.shape[0], self.sample_rate, self.min_s, self.max_s)
        if not bounds:
            return waveform.new_zeros((0, 0))
        return torch.stack([waveform[a:b] for a, b in bounds])

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, min_s={self.min_s}, max_s={self.max_s}"


# ---------------------------------------------------------------------- faces
def face_quality(meta, max_angle: float = 15.0) -> np.ndarray:
    """Which faces pass paper 001's quality filter.

    A face fails when ``|yaw|``, ``|pitch|`` or ``|roll|`` exceeds ``max_angle``
    degrees, when ``eyes_closed`` is true, or when ``mouth_open`` is true.
    Unknown values (a missing column, NaN or None) do not fail a face: the
    filter only acts on what is known.

    Parameters
    ----------
    meta : pandas.DataFrame, datasets.Dataset or mapping of column -> sequence
        Per-face metadata with any of the columns ``yaw``, ``pitch``, ``roll``
        (degrees), ``eyes_closed``, ``mouth_open`` (bool).
    max_angle : float
        Largest allowed absolute head angle in degrees (paper 001: 15).

    Returns
    -------
    np.ndarray of bool, shape (n_faces,)
    """
    columns = _columns_of(meta)
    n = _n_rows(meta)
    keep = np.ones(n, dtype=bool)
    for col in ("yaw", "pitch", "roll"):
        if col in columns:
            angle = np.array([np.nan if v is None else v for v in _column(meta, col)], dtype=float)
            keep &= ~(np.abs(angle) > max_angle)  # NaN compares False: unknown passes
    for col in ("eyes_closed", "mouth_open"):
        if col in columns:
            flag = np.array([_truthy(v) for v in _column(meta, col)], dtype=bool)
            keep &= ~flag
    return keep


def _truthy(v) -> bool:
    """True only for a known true value (True, 1, "true", "yes")."""
    if v is None:
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes", "y")
    try:
        return bool(v) and not np.isnan(v)
    except TypeError:
        return bool(v)


def _columns_of(meta) -> list[str]:
    if hasattr(meta, "column_names"):
        return list(meta.column_names)
    if hasattr(meta, "columns"):
        return list(meta.columns)
    return list(meta.keys())


def _n_rows(meta) -> int:
    if hasattr(meta, "num_rows"):
        return int(meta.num_rows)
    if hasattr(meta, "columns") and hasattr(meta, "index"):
        return len(meta.index)
    cols = list(meta.keys())
    return len(meta[cols[0]]) if cols else 0


def _column(meta, col):
    values = meta[col]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking points ``src`` to ``dst`` (Umeyama, 1991).

    Parameters
    ----------
    src, dst : array, shape (n_points, 2)
        Point coordinates in pixels (x, y).

    Returns
    -------
    np.ndarray, shape (2, 3): the matrix ``[s R | t]`` with ``dst ~= src @ (s R).T + t``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"similarity_transform needs two (n, 2) point sets with n >= 2, got {src.shape} and {dst.shape}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("similarity_transform: landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("similarity_transform: all source landmarks are at the same point")
    cov = d_c.T @ s_c / len(src)
    U, S, Vt = np.linalg.svd(cov)
    # Reflections are not allowed: flip the weakest axis if the best fit would mirror.
    D = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / var_s
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def transform_landmarks(landmarks: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine ``matrix`` to points of shape (n, 2)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def _template(size: int, template: np.ndarray | None) -> np.ndarray:
    tpl = ARCFACE_TEMPLATE if template is None else np.asarray(template, dtype=np.float64)
    if template is None:
        tpl = tpl * (size / ARCFACE_SIZE)
    if tpl.shape != (5, 2):
        raise ValueError(f"the landmark template must have shape (5, 2), got {tpl.shape}")
    return tpl


def align_face(
    image,
    landmarks: np.ndarray,
    template: np.ndarray | None = None,
    size: int = 112,
    return_landmarks: bool = False,
):
    """Warp a face so its five landmarks land on the canonical template.

    Parameters
    ----------
    image : PIL.Image or uint8 array of shape (H, W, 3)
    landmarks : array, shape (5, 2)
        Pixel coordinates (x, y) of left eye, right eye, nose tip, left and
        right mouth corner in ``image``.
    template : array, shape (5, 2), optional
        Target positions in the output image, in pixels; default the ArcFace
        template scaled from 112 to ``size``.
    size : int
        Output side in pixels.
    return_landmarks : bool
        Also return where the landmarks are in the output, shape (5, 2).

    Returns
    -------
    np.ndarray of uint8, shape (size, size, 3) (and the moved landmarks).
    Pixels that come from outside the input are black.
    """
    size = int(size)
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise ValueError(f"align_face needs 5 landmarks of shape (5, 2), got {lm.shape}")
    tpl = _template(size, template)
    M = similarity_transform(lm, tpl)
    # PIL maps each output pixel back to the input: pass the inverse, with
    # pixel centres at +0.5 (PIL's convention) rather than at the integers.
    A = np.vstack([M, [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    inv = shift @ np.linalg.inv(A) @ np.linalg.inv(shift)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    out = img.convert("RGB").transform((size, size), Image.Transform.AFFINE, data=tuple(inv[:2].ravel()), resample=Image.Resampling.BILINEAR)
    arr = np.asarray(out, dtype=np.uint8)
    if return_landmarks:
        return arr, transform_landmarks(lm, M)
    return arr


class AlignFaces(torch.nn.Module):
    """Batch :func:`align_face` with :func:`torch.nn.functional.grid_sample` (runs on a GPU).

    ``forward(images, landmarks)`` takes float images of shape (B, C, H, W)
    and landmarks of shape (B, 5, 2) in input pixels, and returns aligned
    images of shape (B, C, size, size); outside pixels are zero."""

    def __init__(self, size: int = 112, template: np.ndarray | None = None):
        super().__init__()
        self.size = int(size)
        self.register_buffer("template", torch.as_tensor(_template(self.size, template), dtype=torch.float32))

    def forward(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or landmarks.shape[1:] != (5, 2) or landmarks.shape[0] != images.shape[0]:
            raise ValueError(f"AlignFaces expects images (B, C, H, W) and landmarks (B, 5, 2), got {tuple(images.shape)} and {tuple(landmarks.shape)}")
        B, _, H, W = images.shape
        tpl = self.template.detach().cpu().numpy()
        thetas = []
        for lm in landmarks.detach().cpu().numpy():
            M = np.vstack([similarity_transform(lm, tpl), [0, 0, 1]])
            inv = np.linalg.inv(M)  # output pixel -> input pixel
            # Normalised coordinates (align_corners=False): u = (2 x + 1) / W - 1.
            to_pix_out = np.array([[self.size / 2, 0, self.size / 2 - 0.5], [0, self.size / 2, self.size / 2 - 0.5], [0, 0, 1]])
            to_norm_in = np.array([[2 / W, 0, 1 / W - 1], [0, 2 / H, 1 / H - 1], [0, 0, 1]])
            thetas.append((to_norm_in @ inv @ to_pix_out)[:2])
        theta = torch.as_tensor(np.stack(thetas), dtype=images.dtype, device=images.device)
        grid = torch.nn.functional.affine_grid(theta, (B, images.shape[1], self.size, self.size), align_corners=False)
        return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

"""Image front-ends: checked face images and landmarks, aligned tensors, skin colour.

The face-side counterpart of :mod:`vfmatch.features.audio`; the face encoders
(:mod:`vfmatch.features.face`) and the chapter-03 widgets build on it.

* :func:`validate_images`, :func:`validate_landmarks` -- the one gate every
  face batch passes: uint8 RGB images of shape (n, H, W, 3), five-point
  landmarks of shape (n, 5, 2) in pixels (x, y). Bad input raises a
  ``ValueError`` that says what is wrong.
* :func:`images_to_tensor` -- float images in [0, 1] of shape (n, 3, size, size),
  aligned with the landmarks (ArcFace template) when they are known.
* :func:`rgb_to_lab`, :func:`individual_typology_angle`, :func:`skin_patches` --
  colour in CIELAB, the dermatologists' Individual Typology Angle (degrees),
  and where on a face to measure it.

Book chapter: ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.preprocess import ARCFACE_SIZE, ARCFACE_TEMPLATE, AlignFaces

__all__ = [
    "validate_images",
    "validate_landmarks",
    "images_to_tensor",
    "rgb_to_lab",
    "individual_typology_angle",
    "SKIN_PATCHES",
    "skin_patches",
]


# --------------------------------------------------------------------------- checks
def validate_images(images, *, name: str = "images") -> np.ndarray:
    """Check face images and return them as uint8 of shape (n, H, W, 3).

    Accepts uint8 arrays, float arrays in [0, 1], or a list of PIL images;
    a single (H, W, 3) image becomes a batch of one.

    Raises
    ------
    ValueError
        No images, not RGB (H, W, 3), NaN/inf, floats outside [0, 1], or a
        blank image (every pixel the same colour).
    """
    if images is None:
        raise ValueError(f"{name}: got None instead of images")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{name}: no images")
        images = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    arr = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected RGB images of shape (n, H, W, 3) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name}: empty (shape {arr.shape})")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name}: float images must be in [0, 1], got values in [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(arr * 255).astype(np.uint8)
    flat = arr.reshape(arr.shape[0], -1, 3)
    blank = np.all(flat == flat[:, :1], axis=(1, 2))
    if blank.any():
        raise ValueError(f"{name}: image {int(np.flatnonzero(blank)[0])} is blank (every pixel has the same colour)")
    return arr


def validate_landmarks(landmarks, n: int) -> np.ndarray | None:
    """Check the five-point landmarks of ``n`` images: float32 (n, 5, 2), or None when not given.

    The points are left eye, right eye, nose tip, left and right mouth corner,
    as (x, y) in pixels of their image."""
    if landmarks is None:
        return None
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape != (n, 5, 2):
        raise ValueError(f"landmarks must have shape ({n}, 5, 2) (x, y of five points per image), got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain NaN or inf")
    return lm


# ------------------------------------------------------------------------ alignment
def images_to_tensor(images: np.ndarray, size: int, landmarks: np.ndarray | None = None, *, zoom: float = 0.8) -> torch.Tensor:
    """Float images in [0, 1] of shape (n, 3, size, size) from uint8 (n, H, W, 3).

    With landmarks (n, 5, 2), each face is aligned (:class:`vfmatch.data.preprocess.AlignFaces`)
    to the ArcFace template shrunk by ``zoom`` towards the centre, so a little
    hair and jaw stay in view; without, the image is resized."""
    x = torch.as_tensor(np.require(images, requirements="W")).permute(0, 3, 1, 2).float() / 255.0  # copy if read-only
    if landmarks is None:
        return nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    tpl = (ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * zoom + ARCFACE_SIZE / 2
    # Align at the input resolution (sharp), then shrink with anti-aliasing.
    h = x.shape[-1]
    aligned = AlignFaces(size=h, template=tpl * h / ARCFACE_SIZE)(x, torch.as_tensor(landmarks))
    return nn.functional.interpolate(aligned, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# --------------------------------------------------------------------------- colour
def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) to CIELAB (L* in [0, 100], a*, b*) under D65."""
    c = np.asarray(rgb, dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def individual_typology_angle(lab: np.ndarray) -> np.ndarray:
    """ITA in degrees: ``arctan((L* - 50) / b*) * 180 / pi`` (Chardon et al. 1991).

    Above 55 deg is "very light" skin, 41-55 light, 28-41 intermediate, 10-28
    tan, -30-10 brown, below -30 dark: roughly Fitzpatrick I to VI."""
    lab = np.asarray(lab, dtype=np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, np.maximum(lab[..., 2], 1e-6)))


# Skin patches in face units (eye distance = 1; origin between the eyes; v down):
# forehead, left cheek, right cheek, nose bridge. Chosen to miss eyes, brows,
# nostrils, lips, beard and hair for most poses.
SKIN_PATCHES = {"forehead": (0.0, -0.45), "left_cheek": (-0.42, 0.62), "right_cheek": (0.42, 0.62), "nose_bridge": (0.0, 0.3)}


def skin_patches(landmarks: np.ndarray, image_size: tuple[int, int], *, radius: float = 0.12) -> dict[str, np.ndarray]:
    """Boolean masks (H, W) of the skin patches of one face, located from its landmarks (5, 2).

    ``radius`` is in eye distances."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eyes_mid = (lm[0] + lm[1]) / 2
    across = lm[1] - lm[0]
    d = np.linalg.norm(across) + 1e-6
    u = across / d
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    H, W = image_size
    yy, xx = np.mgrid[0:H, 0:W]
    out = {}
    for name, (a, b) in SKIN_PATCHES.items():
        c = eyes_mid + d * (a * u + b * v)
        out[name] = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= (radius * d) ** 2 + 0.5
    return out

"""Face encoders: from face images to an image or a vector.

The patent's image encoder 250, five ways (registered in
:mod:`vfmatch.features.encoders`; made with ``create_face_encoder(name)``):

==============  ===============================  ==============================================
name            output                           what it is
==============  ===============================  ==============================================
``pixels``      (n, 3, size, size) in [0, 1]     the aligned image itself (input of a ViT)
``thumbnail``   (n, 3 * size**2), CIELAB         a small aligned face, flattened
``ita``         (n, 8), degrees and CIELAB       skin colour and Individual Typology Angle
``colours``     (n, 15), CIELAB                  colour of hair, irises, lips and chin
``face-cnn``    (n, embed_dim)                   small CNN trained to tell identities apart
==============  ===============================  ==============================================

Inputs are uint8 images (n, H, W, 3) with optional five-point landmarks
(n, 5, 2) in pixels; with landmarks the faces are aligned first
(:func:`vfmatch.features.images.images_to_tensor`). Image checks, alignment
and colour conversion are in :mod:`vfmatch.features.images`; pretrained timm
and transformers backbones in :mod:`vfmatch.features.hub`.
Book chapter: ``book/03_face_encoders.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import default_device
from ..utils import batches, progress as progress_bar
from .encoders import Encoder, register_encoder
from .images import images_to_tensor, individual_typology_angle, rgb_to_lab, skin_patches
from .training import IdentityNetEncoder

__all__ = ["PixelsEncoder", "ThumbnailEncoder", "ITAEncoder", "ColoursEncoder", "FaceCNNEncoder", "COLOUR_REGIONS"]


@register_encoder("pixels")
class PixelsEncoder(Encoder):
    """The image itself, aligned with its landmarks when known: (n, 3, size, size) in [0, 1].

    The input of the image skin-tone vision transformer (the patent feeds "the
    facial image into a transformer")."""

    modality = "face"
    output = "matrix"

    def __init__(self, size: int = 64, align: bool = True, zoom: float = 0.8):
        super().__init__("pixels", size=size, align=align, zoom=zoom)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        lm = landmarks if self.kwargs["align"] else None
        parts = [
            images_to_tensor(items[sl], self.kwargs["size"], None if lm is None else lm[sl], zoom=self.kwargs["zoom"])
            for sl in progress_bar(batches(len(items), 256), progress, "pixels", None)
        ]
        return torch.cat(parts).numpy().astype(np.float32)


@register_encoder("thumbnail")
class ThumbnailEncoder(Encoder):
    """A small aligned face in CIELAB colour, flattened: a training-free face vector.

    Each face is aligned with its landmarks (``zoom`` 1 is the ArcFace crop:
    eyebrows to chin), shrunk to ``size x size`` pixels and converted to
    CIELAB, whose a* (red-green) and b* (yellow-blue) channels separate skin,
    lips and hair colour better than RGB. ``3 * size**2`` numbers (1728 at the
    default 24). Crude, but a linear model on such thumbnails is a classic
    gender classifier, and the simulator's cues (hair, beard shadow, brows,
    lipstick, wrinkles, skin colour, face width) are visible at that scale."""

    modality = "face"

    def __init__(self, size: int = 24, align: bool = True, zoom: float = 1.0):
        super().__init__("thumbnail", size=size, align=align, zoom=zoom)

    @property
    def dim(self) -> int:
        return 3 * self.kwargs["size"] ** 2

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        lm = landmarks if self.kwargs["align"] else None
        size = self.kwargs["size"]
        rows = []
        for sl in progress_bar(batches(len(items), 256), progress, "thumbnail", None):
            # Align at twice the output size, then shrink with anti-aliasing (no jagged edges).
            x = images_to_tensor(items[sl], 2 * size, None if lm is None else lm[sl], zoom=self.kwargs["zoom"])
            small = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            rows.append(rgb_to_lab(small.permute(0, 2, 3, 1).numpy()).reshape(len(small), -1))
        return np.concatenate(rows).astype(np.float32)


@register_encoder("ita")
class ITAEncoder(Encoder):
    """Skin colour measured on the face: the Individual Typology Angle and CIELAB.

    For each of four skin patches located from the landmarks (forehead, both
    cheeks, nose bridge), the median L*, a*, b* and ITA; then the median and
    spread over patches. 8 numbers: ``ita, ita_spread, L, a, b, L_spread,
    b_spread, brightest_patch_ita``. Without landmarks the patches sit where an
    upright, centred face would have them. Lighting moves the ITA, so a
    calculator is fitted on top (the field maps ITA to Fitzpatrick types with
    thresholds; :func:`individual_typology_angle` gives the classical ones)."""

    modality = "face"
    feature_names = ("ita", "ita_spread", "L", "a", "b", "L_spread", "b_spread", "brightest_patch_ita")
    dim = len(feature_names)

    def __init__(self, radius: float = 0.12):
        super().__init__("ita", radius=radius)

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        n, H, W, _ = items.shape
        if landmarks is None:
            landmarks = np.repeat(_default_landmarks(H, W)[None], n, axis=0)
        rows = []
        for img, lm in progress_bar(zip(items, landmarks), progress, "ITA", n):  # numpy only: one thread anyway
            lab = rgb_to_lab(img / 255.0)
            per_patch = []
            for mask in skin_patches(lm, (H, W), radius=self.kwargs["radius"]).values():
                if mask.sum() >= 3:
                    per_patch.append(np.median(lab[mask], axis=0))
            if not per_patch:  # landmarks outside the image: use the whole centre
                per_patch = [np.median(lab[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3].reshape(-1, 3), axis=0)]
            p = np.asarray(per_patch)
            ita = individual_typology_angle(p)
            rows.append([np.median(ita), ita.max() - ita.min(), *np.median(p, axis=0), np.ptp(p[:, 0]), np.ptp(p[:, 2]), ita[np.argmax(p[:, 0])]])
        return np.asarray(rows, dtype=np.float32)


# Regions in the face units of SKIN_PATCHES (images.py: eye distance = 1, origin
# between the eyes, v down; third number: radius): hair above the forehead and beside the
# face (long hair hangs there), the irises (on the eye landmarks), the lips (between
# the mouth corners) and the chin (beard).
COLOUR_REGIONS = {"hair_top": (0.0, -1.1, 0.15), "hair_left": (-1.25, 0.1, 0.12), "hair_right": (1.25, 0.1, 0.12), "chin": (0.0, 1.45, 0.12)}


@register_encoder("colours")
class ColoursEncoder(Encoder):
    """Median CIELAB colour of the hair, irises, lips and chin, located from the landmarks.

    15 numbers: ``L, a, b`` of ``hair_top, hair_sides, iris, lips, chin``. Hair
    and eye colour vary with ethnicity and age (greying), lips with make-up,
    the chin with a beard: cues a small linear model reads easily, next to the
    skin colour of the ``ita`` encoder."""

    modality = "face"
    feature_names = tuple(f"{r}_{c}" for r in ("hair_top", "hair_sides", "iris", "lips", "chin") for c in ("L", "a", "b"))
    dim = len(feature_names)

    def __init__(self):
        super().__init__("colours")

    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        n, H, W, _ = items.shape
        if landmarks is None:
            landmarks = np.repeat(_default_landmarks(H, W)[None], n, axis=0)
        yy, xx = np.mgrid[0:H, 0:W]
        rows = []
        for img, lm in progress_bar(zip(items, landmarks), progress, "colours", n):
            lab = rgb_to_lab(img / 255.0)
            mid, d = (lm[0] + lm[1]) / 2, np.linalg.norm(lm[1] - lm[0]) + 1e-6
            u = (lm[1] - lm[0]) / d
            v = np.array([-u[1], u[0]])

            def median_in(centres, radius):
                mask = np.zeros((H, W), dtype=bool)
                for c in centres:
                    mask |= (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= (radius * d) ** 2 + 0.5
                return np.median(lab[mask], axis=0) if mask.any() else np.full(3, np.nan)

            at = lambda a, b: mid + d * (a * u + b * v)  # noqa: E731
            r = COLOUR_REGIONS
            feats = [
                median_in([at(*r["hair_top"][:2])], r["hair_top"][2]),
                median_in([at(*r["hair_left"][:2]), at(*r["hair_right"][:2])], r["hair_left"][2]),
                median_in([lm[0], lm[1]], 0.05),
                median_in([(lm[3] + lm[4]) / 2 + 0.03 * d * v], 0.07),
                median_in([at(*r["chin"][:2])], r["chin"][2]),
            ]
            rows.append(np.concatenate(feats))
        return np.asarray(rows, dtype=np.float32)


def _default_landmarks(H: int, W: int) -> np.ndarray:
    """Landmarks of an upright, centred face: eyes at 42 % height, 30 % of the width apart."""
    return np.array([[0.35 * W, 0.42 * H], [0.65 * W, 0.42 * H], [0.5 * W, 0.57 * H], [0.38 * W, 0.7 * H], [0.62 * W, 0.7 * H]])


class _FaceNet(nn.Module):
    """Conv blocks over (3, size, size), then global average pooling: (B, 3, size, size) -> (B, embed_dim)."""

    def __init__(self, channels: Sequence[int], embed_dim: int):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(c_in, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x).mean(dim=(2, 3)))


@register_encoder("face-cnn")
class FaceCNNEncoder(IdentityNetEncoder):
    """A small trainable face encoder (image encoder 250 of the patent): (n, embed_dim).

    A 4-block CNN on aligned ``size x size`` faces, trained to tell the
    training identities apart (:mod:`vfmatch.features.training`), with flips
    and small shifts as augmentation; the pooled features are the embedding."""

    modality = "face"

    def __init__(
        self,
        embed_dim: int = 128,
        size: int = 64,
        channels: Sequence[int] = (16, 32, 64, 128),
        epochs: int = 15,
        batch_size: int = 32,
        lr: float = 3e-3,
        seed: int = 0,
        device: str | None = None,
    ):
        channels = tuple(int(c) for c in channels)
        super().__init__(
            "face-cnn", embed_dim=embed_dim, size=size, channels=list(channels), epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, device=device,
        )
        self.net = _FaceNet(channels, embed_dim)  # untrained until fit()

    def _training_inputs(self, items, landmarks):
        return images_to_tensor(items, self.kwargs["size"], landmarks)  # aligned once

    def _augmented_batch(self, inputs, indices, rng):
        x = inputs[torch.as_tensor(indices)]
        flip = torch.as_tensor(rng.random(len(indices)) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3)) - 0.5

    @torch.no_grad()
    def _encode(self, items, *, landmarks=None, batch_size=32, progress=False):
        device = default_device(self.kwargs["device"])
        self.net.to(device).eval()
        rows = []
        for sl in progress_bar(batches(len(items), batch_size), progress, "face-cnn", None):
            x = images_to_tensor(items[sl], self.kwargs["size"], None if landmarks is None else landmarks[sl]) - 0.5
            rows.append(self.net(x.to(device)).cpu().numpy())
        self.net.cpu()
        return np.concatenate(rows).astype(np.float32)

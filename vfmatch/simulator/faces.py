"""Procedural face images: the face half of the simulator.

Each simulated person gets a cartoon-like but structured face whose pixels
carry the same traits as their voice:

* **shape** -- face width grows with BMI, men get a squarer jaw (a higher
  superellipse exponent), women a narrower chin; the identity's
  ``face_latent`` (8 numbers, ~N(0, 1)) sets eye spacing, eye size, nose
  length and width, mouth width, jaw, brow height and face aspect;
* **proportions by ethnicity** -- :data:`ETHNIC_SHAPE` nudges face width,
  nose width and length, eye opening, the visibility of the upper-lid crease
  and lip fullness by a few to thirty per cent. These are simplified,
  exaggerated group tendencies so that a small extractor can learn them; the
  spread within every group overlaps the others, as it does in real faces;
* **skin** -- an RGB ramp over the Fitzpatrick types I-VI (:data:`SKIN_RGB`),
  interpolated at a jittered tone, so neighbouring types overlap a little;
* **age** -- forehead lines, nasolabial folds, eye bags, a drooping mouth,
  greying hair and (for some older men) baldness; teenagers get larger eyes
  and a rounder, shorter lower face;
* **hair and beard** -- length mostly (not always) follows gender, colour
  follows ethnicity and age; some adult men have stubble or a beard.

Every image then gets its own pose, framing, lighting and expression.
Geometry lives in *face units* (the eye-to-mouth distance is about 1; the
origin is the midpoint between the eyes, ``v`` points down). A point of the
face surface ``(u0, v0)`` is turned by yaw and pitch on two cylinders (so
features shift and foreshorten), then rolled, scaled and translated into
pixels. Shapes are drawn as smooth implicit masks on whole batches of images
at once, which is what keeps 800 faces to a few seconds of numpy.

The five landmarks (left eye, right eye, nose tip, left and right mouth
corner; "left" = image left) are projected through the same transform as the
drawn features, so they are exact. Yaw > 0 turns the face towards image
right, pitch > 0 lifts the chin, roll > 0 turns the eye line clockwise on
screen (image ``y`` points down).

:func:`render_faces` does both steps; :func:`face_parameters` (draw every
number) and :func:`render_from_parameters` (draw the pixels) let a notebook
change one parameter at a time, e.g. fix the lighting and vary skin tone.

This is a teaching simulator, not a model of real faces: the cues are
deliberately visible so that extractors can learn them from a few hundred
people. Book chapter: ``book/01_population.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..utils import parallel_map

__all__ = ["render_faces", "face_parameters", "render_from_parameters", "SKIN_RGB", "ETHNIC_SHAPE", "LANDMARK_NAMES"]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")
REQUIRED_COLUMNS = ("speaker_id", "gender", "age", "ethnicity", "skin_tone", "bmi", "face_latent")

# Skin colour of Fitzpatrick types I (pale) .. VI (deep brown), sRGB in [0, 1].
SKIN_RGB = np.array([[238, 212, 194], [226, 186, 158], [204, 156, 120], [168, 118, 84], [120, 80, 54], [76, 50, 35]], np.float32) / 255
HAIR_RGB = np.array([[0.06, 0.05, 0.05], [0.17, 0.11, 0.07], [0.33, 0.21, 0.12], [0.72, 0.58, 0.36], [0.52, 0.23, 0.10]], np.float32)
HAIR_P = {"White": (0.10, 0.33, 0.27, 0.22, 0.08), "Latino-Hispanic": (0.55, 0.35, 0.10, 0, 0)}  # black .. red
HAIR_P_OTHER = (0.72, 0.26, 0.02, 0, 0)
IRIS_RGB = np.array([[0.20, 0.12, 0.07], [0.36, 0.22, 0.11], [0.45, 0.38, 0.20], [0.30, 0.45, 0.32], [0.32, 0.48, 0.70]], np.float32)
IRIS_P = {"White": (0.15, 0.25, 0.15, 0.10, 0.35)}  # dark brown, brown, hazel, green, blue
IRIS_P_OTHER = (0.55, 0.40, 0.05, 0, 0)
# Proportions by ethnicity, as factors on the shared template: face width, nose width,
# nose length, eye opening (height / width), upper-lid crease visibility, lip fullness.
# Stylised group tendencies for a teaching simulator, not anthropometric measurements.
ETHNIC_SHAPE = {
    "Asian": (1.05, 1.04, 0.94, 0.72, 0.25, 1.00),
    "Black": (1.00, 1.28, 0.97, 1.00, 1.00, 1.35),
    "White": (0.96, 0.88, 1.06, 1.06, 1.00, 0.82),
    "Middle-Eastern": (0.97, 0.98, 1.12, 1.00, 1.00, 1.00),
    "Indian": (0.98, 1.10, 1.02, 1.10, 1.00, 1.08),
    "Latino-Hispanic": (1.02, 1.06, 1.00, 0.90, 0.80, 1.08),
}
STYLE_P = {"male": (0.80, 0.13, 0.07), "female": (0.18, 0.32, 0.50)}  # short, medium, long hair
# Framing: pixels per face unit and the height of the eye line, as fractions of the image size.
FRAME_SCALE, EYE_LINE = 0.30, 0.42
PITCH_CENTRE, PITCH_RADIUS = 0.45, 1.6  # the cylinder that pitch turns the face on
_CHUNK = 8  # images drawn together: enough to amortise numpy calls, few enough for tight windows and cache


def face_parameters(traits: pd.DataFrame, faces_per_identity: int, *, seed: int) -> dict[str, np.ndarray]:
    """Draw the geometry, colours, pose and lighting of every image.

    Returns a dict of arrays with one entry per image (identity-major order):
    per-identity values are repeated. Edit it (e.g. fix the lighting) and pass it
    to :func:`render_from_parameters`. Random draws depend only on ``seed`` and the
    identity's row index, so a person keeps their face when others are added.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in traits.columns]
    if missing:
        raise ValueError(f"traits is missing the column(s) {missing}; draw them with vfmatch.draw_identities")
    if int(faces_per_identity) < 1:
        raise ValueError(f"faces_per_identity must be at least 1, got {faces_per_identity}")
    bad = sorted(set(traits["gender"]) - {"male", "female"})
    if bad:
        raise ValueError(f"traits['gender'] must be 'male' or 'female', got {bad}")
    tone = traits["skin_tone"].to_numpy(float)
    if np.any((tone < 1) | (tone > 6)):
        raise ValueError("traits['skin_tone'] must be a Fitzpatrick type between 1 and 6")
    for col in ("age", "bmi"):
        values = traits[col].to_numpy(float)
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"traits[{col!r}] must hold positive finite numbers")
    z = [np.ravel(np.asarray(v, np.float64)) for v in traits["face_latent"]]
    if any(len(v) != 8 or not np.all(np.isfinite(v)) for v in z):
        raise ValueError("traits['face_latent'] must hold arrays of 8 finite numbers per identity")
    z = np.stack(z)
    n, F = len(traits), int(faces_per_identity)
    rngs = [np.random.default_rng([int(seed), 0xFACE, i]) for i in range(n)]
    U = np.stack([r.random(16) for r in rngs])  # identity-level uniforms
    N = np.stack([r.normal(size=4) for r in rngs])  # identity-level normals
    IU = np.stack([r.random((F, 9)) for r in rngs]).reshape(n * F, 9)  # image-level uniforms
    IN = np.stack([r.normal(size=(F, 8)) for r in rngs]).reshape(n * F, 8)
    noise_seed = np.stack([r.integers(2**31, size=F) for r in rngs]).reshape(-1)

    male = (traits["gender"] == "male").to_numpy()
    age = traits["age"].to_numpy(float)
    bmi = traits["bmi"].to_numpy(float)
    eth = traits["ethnicity"].to_numpy()
    young = np.clip(18.0 - age, 0, 6) / 6  # 1 at age 12, 0 from 18
    old = np.clip((age - 30) / 45, 0, 1)  # 0 up to 30, 1 at 75
    fat = np.log(bmi / 23.0)
    unknown = sorted(set(eth) - set(ETHNIC_SHAPE))
    if unknown:
        raise ValueError(f"traits['ethnicity'] has unknown values {unknown}; expected {list(ETHNIC_SHAPE)}")
    shape_w, shape_nw, shape_nl, shape_eye, shape_crease, shape_lip = np.array([ETHNIC_SHAPE[e] for e in eth]).T
    p: dict[str, np.ndarray] = {}
    # Skin: interpolate the Fitzpatrick ramp at a jittered tone; small redness/brightness jitter.
    t = np.clip(tone - 1 + (U[:, 0] - 0.5) * 0.7, 0, 5)
    lo = np.minimum(np.floor(t).astype(int), 4)
    skin = SKIN_RGB[lo] + (t - lo)[:, None] * (SKIN_RGB[lo + 1] - SKIN_RGB[lo])
    p["skin"] = skin * (1 + 0.03 * N[:, :1]) * (1 + np.outer(0.025 * N[:, 1], [1, 0, -1]))
    # Shape (face units). Wider with BMI; square jaw for men; rounder, shorter lower face for teenagers.
    p["face_w"] = 0.80 * shape_w * np.exp(0.45 * fat) * (1 + 0.04 * male) * (1 + 0.035 * z[:, 7]) * (1 + 0.03 * young)
    p["face_h"] = 1.22 * (1 + 0.04 * male) * (1 - 0.035 * z[:, 7]) * (1 - 0.08 * young)
    p["jaw_n"] = np.clip(2.0 + 1.1 * male + 0.2 * z[:, 5] - 0.4 * young + 0.4 * fat, 1.8, 3.4)
    p["chin_narrow"] = np.clip(0.34 - 0.22 * male + 0.05 * z[:, 5] - 0.5 * fat - 0.12 * old, 0.0, 0.45)
    p["eye_x"] = 0.47 * (1 + 0.05 * z[:, 0])
    p["eye_w"] = 0.145 * (1 + 0.06 * z[:, 1]) * (1 + 0.13 * young) * (1 + 0.04 * ~male)
    p["eye_open"] = 0.5 * shape_eye * (1 + 0.05 * z[:, 6])  # eye height / eye width; shares the brow-height latent
    p["crease"] = shape_crease
    p["nose_y"] = 0.56 * shape_nl * (1 + 0.06 * z[:, 2]) * (1 - 0.06 * young)
    p["nose_w"] = 0.13 * shape_nw * (1 + 0.08 * z[:, 3]) * np.exp(0.3 * fat) * (1 + 0.08 * male)
    p["mouth_w"] = 0.34 * (1 + 0.06 * z[:, 4])
    p["mouth_y"] = p["nose_y"] + 0.44 + 0.04 * old
    p["brow_y"] = 0.20 * (1 + 0.1 * z[:, 6]) + 0.06 * ~male
    p["brow_t"] = np.where(male, 0.075, 0.035) * (1 + 0.15 * np.clip(N[:, 2], -2, 2))
    p["brow_arch"] = np.where(male, 0.02, 0.055)
    p["lash"] = np.where(male, 0.014, 0.04)
    p["lip_up"] = np.where(male, 0.05, 0.065) * shape_lip * (1 - 0.4 * old)
    p["lip_lo"] = np.where(male, 0.07, 0.095) * shape_lip * (1 - 0.4 * old)
    p["droop"] = 0.05 * old - 0.01
    p["thin"], p["heavy"] = np.clip((21 - bmi) / 4, 0, 1), np.clip((bmi - 29) / 8, 0, 1)
    p["wrinkle"] = old * (0.7 + 0.3 * U[:, 1])
    # Hair: style by gender, colour by ethnicity, greying with age, baldness for some older men.
    style = _pick([STYLE_P[g] for g in traits["gender"]], U[:, 2])
    bald = np.where(male & (U[:, 3] < np.clip((age - 25) / 60, 0, 0.55)), 0.35 + 0.65 * U[:, 4], 0.0)
    style = np.where(bald > 0, 0, style)
    p["hair_len"] = np.array([0.8, 1.25, 2.3])[style] * (1 + 0.1 * (U[:, 5] - 0.5))
    p["hair_vol"] = np.array([0.06, 0.16, 0.2])[style] * (0.7 + 0.6 * U[:, 6])
    p["hair_side"] = np.array([0.15, 1.0, 1.6])[style]
    p["fringe"] = (U[:, 7] < 0.25) & (style > 0)
    p["bald"] = bald
    base = HAIR_RGB[_pick([HAIR_P.get(e, HAIR_P_OTHER) for e in eth], U[:, 8])]
    grey = np.clip((age - (40 + 7 * N[:, 3])) / 28, 0, 1)[:, None]
    p["hair"] = base * (1 - grey) + grey * np.array([0.78, 0.78, 0.76])
    p["brow"] = 0.35 * p["hair"] + 0.65 * base * 0.8
    # Beard: some adult men (1 stubble, 2 full beard, 3 moustache and goatee).
    p["beard"] = np.where(male & (age >= 17) & (U[:, 9] < 0.4), 1 + np.floor(U[:, 10] * 2.999), 0).astype(int)
    p["shadow"] = np.where(male & (age >= 16), 0.1 + 0.15 * U[:, 10], 0)  # shaved beard shadow
    p["earring"] = ~male & (U[:, 9] < 0.35)
    p["iris"] = IRIS_RGB[_pick([IRIS_P.get(e, IRIS_P_OTHER) for e in eth], U[:, 11])]
    p["lipstick"] = np.where(~male & (age >= 16) & (U[:, 12] < 0.6), 0.4 + 0.4 * U[:, 13], 0.0)
    hue = 2 * np.pi * U[:, 14]
    p["cloth"] = 0.35 + 0.25 * U[:, 15, None] * np.stack([np.cos(hue), np.cos(hue - 2.1), np.cos(hue + 2.1)], 1)
    p["neck_w"] = 0.5 * np.exp(0.5 * fat) * (1 + 0.12 * male)
    p["shoulder_w"] = 1.75 * np.exp(0.3 * fat) * (1 + 0.12 * male)
    p = {k: np.repeat(np.asarray(v), F, axis=0) for k, v in p.items()}

    # Per image: pose (mostly within +-20 degrees, one in ten larger), framing, light, expression.
    wide = 1 + (IU[:, 0] < 0.1)
    p["yaw"] = np.clip(9 * IN[:, 0] * wide, -50, 50)
    p["pitch"] = np.clip(7 * IN[:, 1] * wide, -35, 35)
    p["roll"] = np.clip(6 * IN[:, 2] * wide, -35, 35)
    p["scale"] = np.exp(0.07 * np.clip(IN[:, 3], -2.5, 2.5))
    p["shift"] = 0.03 * np.clip(IN[:, 4:6], -2.5, 2.5)  # (x, y) as fractions of the image size
    p["illumination"] = np.exp(0.16 * np.clip(IN[:, 6], -2.5, 2.5))
    p["warmth"] = 0.05 * np.clip(IN[:, 7], -2.5, 2.5)
    ang = 2 * np.pi * IU[:, 1]
    p["light"] = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1) * (0.15 + 0.45 * IU[:, 2:3])
    p["light"][:, 2] = np.sqrt(1 - (p["light"][:, :2] ** 2).sum(1))
    p["eyes_closed"] = IU[:, 3] < 0.08
    p["mouth_open"] = IU[:, 4] < 0.08
    # Background: a gradient between a softly tinted colour and a grey, in a random direction.
    hue = 2 * np.pi * IU[:, 8:9] + np.array([0, -2.1, 2.1])
    p["bg"] = np.stack([(0.25 + 0.6 * IU[:, 5:6]) * (1 + 0.15 * np.cos(hue)), 0.2 + 0.6 * IU[:, 6:7] * np.ones((1, 3))], 1)
    p["bg_dir"] = 2 * np.pi * IU[:, 7]
    p["noise_seed"] = noise_seed
    return p


def _pick(probs, u) -> np.ndarray:
    """Index drawn from each row of category probabilities ``probs`` with uniforms ``u``."""
    cdf = np.cumsum(np.asarray(probs, float), axis=1)
    return np.minimum((u[:, None] * cdf[:, -1:] > cdf).sum(1), cdf.shape[1] - 1)


def _turn(t, r, ang):
    """Project a surface coordinate ``t`` on a cylinder of radius ``r`` turned by ``ang`` (radians)."""
    return r * np.sin(np.arcsin(np.clip(t / r, -1, 1)) + ang)


def _unturn(t, r, ang):
    """Inverse of :func:`_turn` for the visible half; points past the rim map outside ``|t| > r``."""
    a = np.arcsin(np.clip(t / r, -1, 1)) - ang
    lim = np.float32(np.pi / 2)
    return r * np.sin(np.clip(a, -lim, lim)) + np.sign(a) * r * np.maximum(np.abs(a) - lim, 0) + (t - np.clip(t, -r, r))


def _alpha(d, px):
    """Coverage of a shape from a signed distance ``d`` (negative inside), one pixel = ``px``."""
    return np.clip(0.5 - d / px, 0, 1)


def _ellipse(u, v, cu, cv, ru, rv, px, n=2):
    """Coverage of an ellipse (``n=2``) or a squarer superellipse (``n=4``) centred at (cu, cv)."""
    a, b = ((u - cu) / ru) ** 2, ((v - cv) / rv) ** 2
    f = np.sqrt(a + b) if n == 2 else np.sqrt(np.sqrt(a * a + b * b))
    return _alpha((f - 1) * np.minimum(ru, rv, dtype=np.float32), px)


def _segment(u, v, a, b):
    """Distance from points (u, v) to the segment from point ``a`` to point ``b`` (pairs of arrays)."""
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / (du**2 + dv**2 + 1e-9), 0, 1)
    return np.hypot(u - a[0] - t * du, v - a[1] - t * dv)


def _paint(img, cov, alpha, colour):
    """Composite ``colour`` over the premultiplied image ``img`` (B, H, W, 3) and coverage ``cov``."""
    alpha = np.asarray(alpha, np.float32)
    step = np.asarray(colour, np.float32) - img  # in-place from here: fewer temporary arrays
    step *= alpha[..., None]
    img += step
    step = 1 - cov
    step *= alpha
    cov += step


def render_from_parameters(p: dict[str, np.ndarray], image_size: int = 112, progress=False) -> tuple[np.ndarray, np.ndarray]:
    """Render the images described by ``p`` (from :func:`face_parameters`, possibly edited).

    Returns ``images`` uint8 (n, image_size, image_size, 3) and ``landmarks``
    float32 (n, 5, 2): pixel (x, y) of left eye, right eye, nose tip, left and
    right mouth corner (pixel centres at integer coordinates).
    """
    if int(image_size) < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    n = len(p["yaw"])
    # Batches of _CHUNK images, on every core (vfmatch.utils.parallel_map). A batch's
    # drawing windows depend on its images only, so the pixels are those of a loop here.
    parts = [({k: v[s : s + _CHUNK] for k, v in p.items()}, int(image_size)) for s in range(0, n, _CHUNK)]
    rendered = parallel_map(_render_part, parts, show_progress=progress, desc="rendering faces", min_items=16)
    if not rendered:
        return np.empty((0, image_size, image_size, 3), np.uint8), np.empty((0, 5, 2), np.float32)
    return np.concatenate([im for im, _ in rendered]), np.concatenate([lm for _, lm in rendered])


def _render_part(job):
    """One batch for :func:`parallel_map`: ``(parameters, image_size) -> (images, landmarks)``."""
    part, image_size = job
    return _render_batch(part, image_size)


def _render_batch(p, H):
    """Paint a batch of images back to front; every per-image number is shaped (B, 1, 1) to broadcast."""
    B, f32 = len(p["yaw"]), np.float32
    c = {k: np.asarray(v, f32).reshape(B, 1, 1, *np.shape(v)[1:]) for k, v in p.items() if k != "noise_seed"}
    S = FRAME_SCALE * H * c["scale"]  # pixels per face unit, (B, 1, 1)
    px = 1 / S  # one pixel in face units
    cx, cy = (H - 1) / 2 + c["shift"][..., 0] * H, EYE_LINE * H + c["shift"][..., 1] * H
    roll, yaw, pitch = (np.deg2rad(c[k]) for k in ("roll", "yaw", "pitch"))
    cos, sin = np.cos(roll), np.sin(roll)
    w, ex, ew, ny, nw, my, mw = (c[k] for k in ("face_w", "eye_x", "eye_w", "nose_y", "nose_w", "mouth_y", "mouth_w"))
    R = 1.12 * w  # the cylinder that yaw turns the face on

    def plane(uu, vv, depth=0.0):
        """Face-surface point (raised by ``depth``) -> image-plane face units, after yaw and pitch."""
        return _turn(uu, R + depth, yaw), PITCH_CENTRE + _turn(vv - PITCH_CENTRE, PITCH_RADIUS + depth, -pitch)

    def pixel(a, b):
        """Image-plane face units -> pixel (x, y) after roll, scale and shift; stacked on a last axis."""
        return np.stack(np.broadcast_arrays(cx + S * (cos * a - sin * b), cy + S * (sin * a + cos * b)), -1)

    def window(*points, margin):
        """Pixel rows/columns covering the box around the plane points of every image in the batch, plus a
        margin: small features are drawn only there, which saves most of the work."""
        a = np.stack(np.broadcast_arrays(*[p[0] for p in points]))
        b = np.stack(np.broadcast_arrays(*[p[1] for p in points]))
        corners = [(a0, b0) for a0 in (a.min(0), a.max(0)) for b0 in (b.min(0), b.max(0))]  # rolled box
        xy = np.concatenate([pixel(a0, b0).reshape(-1, 2) for a0, b0 in corners])
        lo = np.clip(np.floor(xy.min(0) - margin * S.max()), 0, H).astype(int)
        hi = np.clip(np.ceil(xy.max(0) + margin * S.max()) + 1, 0, H).astype(int)
        return slice(None), slice(lo[1], max(hi[1], lo[1])), slice(lo[0], max(hi[0], lo[0]))

    grid = np.arange(H, dtype=f32)
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy
    u, v = (cos * dx + sin * dy) / S, (cos * dy - sin * dx) / S  # image-plane face units of every pixel
    u0 = _unturn(u, R, yaw)  # ... and the face-surface point seen there
    v0 = PITCH_CENTRE + _unturn(v - PITCH_CENTRE, PITCH_RADIUS, -pitch)
    au0 = np.abs(u0)
    noise = np.stack([np.random.default_rng(int(s)).random((H, H), dtype=f32) for s in p["noise_seed"]])
    img, cov = np.zeros((B, H, H, 3), f32), np.zeros((B, H, H), f32)
    skin, hair = c["skin"], c["hair"]
    one = np.ones_like(w)

    # Hair volume around the skull (image plane, shifted a little as the head turns); long hair falls
    # behind the neck.
    us, vs = u - 0.25 * np.sin(yaw), v + 0.25 * np.sin(pitch)
    top, mid = -1.3 - c["hair_vol"], -0.05
    hw = R + c["hair_vol"]
    fv = np.where(vs < mid, ((vs - mid) / (mid - top)) ** 2, np.square(((vs - mid) / (c["hair_len"] - mid)) ** 2))
    fh = (us / hw) ** 2 + fv  # an ellipse above, straighter sides below
    hair_vol = _alpha((np.sqrt(fh) - 1) * hw, px)
    hair_tex = hair * (0.85 + 0.15 * np.sin(60 * np.arctan2(us, vs + 1.6) + noise) + 0.1 * noise)[..., None]
    cov[:] = hair_vol * (c["hair_len"] > 1)  # the first layer: paint onto nothing
    img[:] = cov[..., None] * hair_tex * 0.6
    # Neck and clothes.
    win = window((-c["neck_w"] - 0.25, 0.6 * one), (c["neck_w"] + 0.25, 3.1 * one), margin=0.1)
    _paint(img[win], cov[win], _ellipse(us[win], v[win], 0, 1.85, c["neck_w"], 1.2, px, n=4), skin * 0.72)
    sw = c["shoulder_w"]
    win = window((-sw, 1.7 * one), (sw, 4.8 * one), margin=0.1)
    cloth = c["cloth"] * (0.85 + 0.15 * noise[win][..., None])
    _paint(img[win], cov[win], _ellipse(u[win], v[win], 0, 3.25, sw, 1.45, px, n=4), cloth)
    # The face (upper half an ellipse, lower half a superellipse whose width narrows to the chin) on the
    # skull (seen from the side when the head turns), then the ears beside the face.
    dv = v0 - 0.3
    below = dv > 0
    h = np.where(below, c["face_h"], 1.2)
    wid = w * (1 - c["chin_narrow"] * np.clip(dv / h, 0, 1) ** 2)
    n = np.where(below, c["jaw_n"], 2.0)
    face = _alpha(((au0 / wid) ** n + (np.abs(dv) / h) ** n - 1) * wid / n, px) * np.where(vs < mid, hair_vol, 1)
    _paint(img, cov, np.maximum(face, _ellipse(us, vs, 0, -0.2, R, 1.0, px)), skin)
    for side in (-1, 1):
        a = side * 1.45 + yaw
        eu, ev = R * np.sin(a) + side * 0.04, plane(0 * one, 0.3 * one)[1]
        win = window((eu, ev), margin=0.3)
        ear = _ellipse(u[win], v[win], eu, ev, 0.1, 0.23, px) * np.clip((np.cos(a) + 0.3) / 0.3, 0, 1) * (1 - face[win])
        _paint(img[win], cov[win], ear, skin * 0.85)
        stud = _ellipse(u[win], v[win], eu, ev + 0.2, 0.045, 0.045, px) * np.clip((np.cos(a) + 0.1) / 0.3, 0, 1)
        _paint(img[win], cov[win], stud * c["earring"] * (1 - face[win]), [0.95, 0.8, 0.35])
    # Lower face: hollow cheeks when thin, double chin when heavy, nasolabial folds, then the beard.
    win = window(plane(-w, 0.15 * one), plane(w, 0.3 + c["face_h"]), margin=0.1)
    U0, V0, AU0, F, N, I, C = (a[win] for a in (u0, v0, au0, face, noise, img, cov))
    if c["thin"].any():
        _paint(I, C, F * _ellipse(AU0, V0, 0.62, 0.62, 0.16, 0.22, 6 * px) * c["thin"] * 0.3, skin * 0.75)
    if c["heavy"].any():
        chin = np.abs(V0 - 0.18 - c["face_h"] - 0.25 * (U0 / w) ** 2) - 0.01
        _paint(I, C, _alpha(chin, 2 * px) * (AU0 < 0.5 * w) * c["heavy"] * 0.4, skin * 0.7)
    fold = np.abs(AU0 - nw * 1.1 - (V0 - ny + 0.05) * 0.5) - 0.008 - 0.01 * c["wrinkle"]
    span = np.clip((V0 - ny + 0.08) / 0.05, 0, 1) * np.clip((my + 0.2 - V0) / 0.08, 0, 1)
    _paint(I, C, F * span * _alpha(fold, 2 * px) * (0.15 + 0.5 * c["wrinkle"]), skin * 0.72)
    bt = c["beard"]  # 1 stubble, 2 full beard, 3 moustache and goatee; else a shaved shadow
    if bt.any() or c["shadow"].any():
        below_top = V0 - ny - 0.1 + 0.6 * np.clip(AU0 / w - 0.4, 0, 1)
        beard = F * np.clip(below_top / 0.04, 0, 1) * ((bt == 1) * 0.4 + (bt == 2) * 0.95).astype(f32)
        beard += F * np.clip(below_top / 0.15, 0, 1) * (bt != 1) * (bt != 2) * c["shadow"]
        if (bt == 3).any():
            moustache = _ellipse(U0, V0, 0, my - 0.03, mw + 0.07, 0.1, px) * (V0 < my)
            goatee = np.maximum(_ellipse(U0, V0, 0, my + 0.2, mw * 0.55, 0.16, px), moustache)
            beard = beard + F * goatee * (bt == 3) * 0.9
        _paint(I, C, beard * (0.7 + 0.3 * N), np.where(bt[..., None] > 0, hair, skin * 0.5) * (0.65 + 0.3 * N[..., None]))
    # Forehead lines with age.
    win = window(plane(-0.6 * one, -0.85 * one), plane(0.6 * one, -0.3 * one), margin=0.05)
    V0, AU0 = v0[win], au0[win]
    band = np.clip((-0.35 - V0) / 0.08, 0, 1) * np.clip((V0 + 0.8) / 0.08, 0, 1) * np.clip((0.55 - AU0) / 0.1, 0, 1)
    lines = (0.5 + 0.5 * np.cos(2 * np.pi * (V0 + 0.03 * np.cos(5 * u0[win])) / 0.1)) ** 6
    _paint(img[win], cov[win], face[win] * band * lines * c["wrinkle"] * 0.55, skin * 0.7)
    # Eyes and brows. Brows: thick and low for men, thin and arched for women. Eyes: an almond of sclera
    # with iris, pupil and catchlight under a lash line; a closed eye is a lid line. Eye bags with age.
    win = window(plane(-ex - 1.5 * ew, -c["brow_y"] - 0.12), plane(ex + 1.5 * ew, ew + 0.1), margin=0.05)
    V0, AU0, I, C = v0[win], au0[win], img[win], cov[win]
    tt = (AU0 - ex - 0.1 * ew) / (1.3 * ew)
    yb = -c["brow_y"] - c["brow_arch"] * (1 - tt**2) + 0.02 * tt
    thick = c["brow_t"] * (1 - 0.45 * np.clip(tt, 0, 1))
    _paint(I, C, 0.9 * _alpha(np.maximum(np.abs(V0 - yb) - thick / 2, (np.abs(tt) - 1) * 1.3 * ew), px), c["brow"])
    X = AU0 - ex
    inside = np.abs(X) < ew
    eh, tq = ew * c["eye_open"], np.clip(1 - (X / ew) ** 2, 0, 1)
    lid_top, lid_bot = -eh * tq, eh * 0.75 * tq
    bag = _alpha(np.abs(V0 - ew * 0.75 - 0.05 * (X / ew) ** 2) - 0.01, 2 * px)
    _paint(I, C, face[win] * bag * inside * c["wrinkle"] * 0.5, skin * 0.75)
    _paint(I, C, _alpha(np.abs(V0 + eh * 1.45 * tq) - 0.006, 2 * px) * inside * 0.35 * c["crease"], skin * 0.7)  # lid crease
    eye = _alpha(np.maximum(np.maximum(lid_top - V0, V0 - lid_bot), np.abs(X) - ew), px) * (1 - c["eyes_closed"])
    _paint(I, C, eye, [0.93, 0.91, 0.88])
    _paint(I, C, _ellipse(X, V0, 0, 0, eh * 1.05, eh * 1.05, px) * eye, c["iris"])
    _paint(I, C, _ellipse(X, V0, 0, 0, eh * 0.45, eh * 0.45, px) * eye, [0.03, 0.03, 0.03])
    _paint(I, C, _ellipse(X, V0, eh * 0.45, -eh * 0.45, eh * 0.15, eh * 0.15, px) * eye * 0.8, [1, 1, 1])
    lid_y = np.where(c["eyes_closed"] > 0, eh * 0.25 * tq, lid_top - c["lash"] / 2)
    _paint(I, C, _alpha(np.abs(V0 - lid_y) - c["lash"] / 2, px) * (np.abs(X) < ew * 1.08), [0.09, 0.06, 0.05])
    # Nose, drawn in the image plane because it stands out of the face: bridge sides, wings, nostrils, tip.
    tip = plane(0 * one, ny, depth=0.22)
    win = window(plane(-nw - 0.1, 0.05 * one), plane(nw + 0.1, ny + 0.12, 0.22), tip, margin=0.1)
    Uw, Vw, I, C = u[win], v[win], img[win], cov[win]
    squash = 0.6 + 0.4 * np.cos(yaw)
    for side in (-1, 1):
        a0, a1 = plane(side * 0.09 * one, 0.12 * one, 0.05), plane(side * 0.6 * nw, ny - 0.06, 0.15)
        _paint(I, C, _alpha(_segment(Uw, Vw, a0, a1) - 0.012, 3 * px) * 0.18, skin * 0.6)
        wu, wv = plane(side * 0.75 * nw, ny + 0.01, 0.08)
        _paint(I, C, _ellipse(Uw, Vw, wu, wv, 0.08 * squash, 0.07, 2 * px) * 0.25, skin * 0.72)
        nu, nv = plane(side * 0.42 * nw, ny + 0.055, 0.12)
        _paint(I, C, _ellipse(Uw, Vw, nu, nv, 0.05 * squash, 0.026, px) * 0.85, skin * 0.3)
    _paint(I, C, _ellipse(Uw, Vw, tip[0], tip[1] - 0.01, 0.065, 0.05, 3 * px) * 0.35, np.minimum(skin * 1.25, 1))
    # Mouth: upper and lower lip meeting at the corners, a dark line, or an open mouth with teeth.
    lip_up, lip_lo, droop, mouth_open = c["lip_up"], c["lip_lo"], c["droop"], c["mouth_open"]
    win = window(plane(-mw, my - lip_up - 0.05), plane(mw, my + lip_lo + 0.15), margin=0.05)
    X, Y, I, C = u0[win], v0[win] - my, img[win], cov[win]
    tm = np.clip(1 - (X / mw) ** 2, 0, 1)
    yc = droop * (X / mw) ** 2
    gap = mouth_open * 0.09 * tm**0.7
    top_l = yc - lip_up * np.sqrt(tm) * (1 - 0.3 * np.exp(-((X / 0.05) ** 2)))
    bot_l = yc + gap + lip_lo * tm**0.6
    ls = c["lipstick"][..., None]
    edge = np.abs(X) - mw
    lip_colour = skin * [0.86, 0.6, 0.6] * (1 - ls) + ls * [0.72, 0.16, 0.22]
    _paint(I, C, _alpha(np.maximum(np.maximum(top_l - Y, Y - bot_l), edge), px), lip_colour)
    inner = _alpha(np.maximum(np.maximum(yc - Y, Y - yc - gap), edge), px) * mouth_open
    _paint(I, C, inner, [0.22, 0.06, 0.06])
    _paint(I, C, inner * (Y < yc + gap * 0.45), [0.92, 0.9, 0.84])
    _paint(I, C, _alpha(np.maximum(np.abs(Y - yc) - 0.006, edge), px) * (1 - mouth_open) * 0.7, skin * 0.3)
    # Front hair: the hair volume above the hairline (lower with a fringe, raised by baldness); behind the
    # ears (past the yaw cylinder's rim) hair reaches down to the nape.
    hc = np.where(c["fringe"] > 0, -0.32, -0.6).astype(f32) - 0.6 * c["bald"]
    x = np.clip(au0 / (0.97 * w), 0, 1)
    line = hc + (c["hair_side"] - hc) * np.where(c["hair_len"] > 1, x**4 * x, x**2 * np.sqrt(x))  # long hair hangs by the face
    behind = np.clip((au0 - 0.97 * R) / 0.1, 0, 1)
    line = line + behind * (np.maximum(c["hair_side"], 0.6) - line)
    above = np.maximum(line - v0, -1.0 - vs)  # the crown is hair whatever the pitch
    front = hair_vol * np.clip(above / 0.05, 0, 1) * (1 - c["bald"] * _ellipse(us, vs, 0, -0.8, 0.75 * R, 0.6, 8 * px))
    _paint(img, cov, front, hair_tex)
    # Light: Lambert shading of a rounded head, brightness and colour temperature; background gradient.
    nx, nyy = np.clip(u / (1.1 * R), -1, 1), np.clip((v - 0.3) / 1.7, -1, 1)
    light = c["light"]
    nz = np.sqrt(np.maximum(1 - nx**2 - nyy**2, 0))
    shade = 0.45 + 0.55 * np.maximum(nx * light[..., 0] + nyy * light[..., 1] + nz * light[..., 2], 0)
    warm = c["warmth"][..., None]
    tint = c["illumination"][..., None] * np.concatenate([1 + warm, 1 + 0 * warm, 1 - warm], -1)  # (B, 1, 1, 3)
    g = ((np.cos(c["bg_dir"]) * dx + np.sin(c["bg_dir"]) * dy) / H + 0.5)[..., None]
    bg = c["bg"][..., 0, :] * tint + (c["bg"][..., 1, :] - c["bg"][..., 0, :]) * tint * g
    bg *= (1 - cov)[..., None]
    img *= shade[..., None] * tint
    img += bg
    img += 0.02 * (noise[..., None] - 0.5)
    zero = 0 * one
    pts = [plane(-ex, zero), plane(ex, zero), tip, plane(-mw, my + droop), plane(mw, my + droop)]
    landmarks = np.stack([pixel(a, b)[:, 0, 0] for a, b in pts], 1)
    img *= 255
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8), landmarks.astype(f32)


def render_faces(
    traits: pd.DataFrame, faces_per_identity: int, *, seed: int, image_size: int = 112, progress=False
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render ``faces_per_identity`` face images of every person in ``traits``.

    Parameters
    ----------
    traits : DataFrame
        One row per identity, as from :func:`vfmatch.simulator.draw_identities`
        (uses speaker_id, gender, age, ethnicity, skin_tone, bmi, face_latent).
    faces_per_identity : int
    seed : int
        Everything is deterministic given the seed and the traits.
    image_size : int
        Side of the square RGB images in pixels.

    Returns
    -------
    images : uint8 array (n_identities * faces_per_identity, image_size, image_size, 3), identity-major
    meta : DataFrame, one row per image: speaker_id, face_id ("sim00003_f01"), landmarks
        (float32 (5, 2) pixel x, y of left eye, right eye, nose tip, left and right mouth corner),
        yaw, pitch, roll (degrees), eyes_closed, mouth_open (bool), illumination (brightness factor),
        scale (relative face size).
    """
    p = face_parameters(traits, faces_per_identity, seed=seed)
    images, landmarks = render_from_parameters(p, image_size=image_size, progress=progress)
    F = int(faces_per_identity)
    meta = pd.DataFrame(
        {
            "speaker_id": np.repeat(traits["speaker_id"].to_numpy(), F),
            "face_id": [f"{s}_f{k:02d}" for s in traits["speaker_id"] for k in range(F)],
            "landmarks": list(landmarks),
            "yaw": p["yaw"].astype(np.float32),
            "pitch": p["pitch"].astype(np.float32),
            "roll": p["roll"].astype(np.float32),
            "eyes_closed": p["eyes_closed"].astype(bool),
            "mouth_open": p["mouth_open"].astype(bool),
            "illumination": p["illumination"].astype(np.float32),
            "scale": p["scale"].astype(np.float32),
        }
    )
    return images, meta

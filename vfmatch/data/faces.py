"""Faces in real photographs: find them, read their landmarks, align them.

The simulator knows where every landmark of its faces is; a real photo does
not say. This module finds the faces in a photo and their landmarks, so a
real photo can be cropped and aligned exactly like a simulated face before
extraction (:class:`vfmatch.extractors.ExtractorSet`) and fusion
(:mod:`vfmatch.fusion`). One implementation, used by every stage above.

Detector
    dlib's frontal face detector: a histogram of oriented gradients (HOG)
    over an image pyramid scored by a linear SVM (Dalal & Triggs, 2005). Its
    score is the SVM margin: above 0 is a face by dlib's own rule; we keep
    detections scoring at least ``min_score=0.5`` by default, since at 0 the
    mission patch on the sleeve of scikit-image's astronaut photo counts as a
    face too. It finds roughly frontal faces (within about 30 degrees of yaw)
    of at least about 80 x 80 pixels at ``upsample=0`` (40 x 40 at the default
    ``upsample=1``, which doubles the image first).

Landmarks
    dlib's 68-point shape predictor (an ensemble of regression trees, Kazemi &
    Sullivan, 2014), trained on the iBUG 300-W faces. The five points the
    package uses everywhere (:data:`vfmatch.data.preprocess.ARCFACE_TEMPLATE`
    order: left eye, right eye, nose tip, left and right mouth corner, "left"
    = image left) are read off the 68: each eye is the mean of its six
    contour points, the nose tip is point 30, the mouth corners 48 and 54.
    The other 65 points (jaw line, brows, nose bridge and wings, eye and lip
    contours) are returned too; the face morph uses them
    (:attr:`AlignedPhoto.morph_points`).

Both models ship inside packages from the package index (``dlib-bin`` and
``face-recognition-models``, the ``faces`` extra: ``pip install
"vfmatch[faces]"``), so nothing is downloaded at run time. Licence note: the
300-W images the 68-point model was trained on are licensed for research,
not commercial use; check before building a product on it.

Alignment: :func:`align_photo` warps the chosen face with the similarity
transform that best takes its five landmarks onto the ArcFace template
(:func:`vfmatch.data.preprocess.align_face`). A photo with no face is an
error that names the file; with several, the largest face is taken (its box
area, then its score), or ``choose="error"`` refuses.

Only detection and geometry happen here: nothing in this module infers
anything about the person.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .preprocess import ARCFACE_SIZE, ARCFACE_TEMPLATE, align_face, similarity_transform, transform_landmarks

__all__ = ["NoFaceError", "DetectedFace", "AlignedPhoto", "read_photo", "detect_faces", "align_photo", "align_photos", "FACE_POINTS_68"]

# Where the package's five landmarks are in dlib's 68-point layout (iBUG 300-W numbering).
FACE_POINTS_68 = {
    "left_eye": tuple(range(36, 42)),  # the eye on the image's left: the person's right eye
    "right_eye": tuple(range(42, 48)),
    "nose_tip": (30,),
    "mouth_left": (48,),
    "mouth_right": (54,),
}
# The 68 points minus those that are themselves one of the five (nose tip, mouth corners).
_EXTRA_68 = np.array([i for i in range(68) if i not in (30, 48, 54)])
CHOICES = ("largest", "error")
_INSTALL = 'face detection needs the "faces" extra: pip install "vfmatch[faces]" (dlib-bin and face-recognition-models)'


class NoFaceError(ValueError):
    """A photo in which the detector finds no face (a ``ValueError`` naming the file), so callers
    that skip such photos (the SSS recipe) tell them apart from every other bad input."""


class DetectedFace(NamedTuple):
    """One face found by :func:`detect_faces`.

    box : float64 (4,) -- x0, y0, x1, y1 in pixels (x1, y1 exclusive)
    landmarks : float64 (5, 2) -- pixel (x, y) of left eye, right eye, nose tip,
        left and right mouth corner (pixel centres at integer coordinates)
    score : float -- the detector's SVM margin; higher = more face-like
    points : float64 (68, 2) -- dlib's 68 landmarks, iBUG 300-W order
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    points: np.ndarray

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


@dataclass
class AlignedPhoto:
    """A face cut out of a photo and aligned (:func:`align_photo`).

    image : uint8 (size, size, 3); landmarks : (5, 2) and points : (68, 2), where
    they are in ``image``; box, score : the detection in the original photo;
    n_faces : how many faces the photo had; source : the file name (or
    ``"<array>"``)."""

    image: np.ndarray
    landmarks: np.ndarray
    points: np.ndarray
    box: np.ndarray
    score: float
    n_faces: int
    source: str

    @property
    def morph_points(self) -> np.ndarray:
        """(70, 2): the five landmarks first, then the 65 other dlib points, for
        :func:`vfmatch.fusion.fuse_faces` with ``method="morph"``."""
        return np.concatenate([self.landmarks, self.points[_EXTRA_68]])


# ---------------------------------------------------------------------- reading
def read_photo(image_or_path, *, path: str | Path | None = None) -> tuple[np.ndarray, str]:
    """A photo as a uint8 RGB array (H, W, 3), and a name for messages.

    Accepts a file path (any format Pillow reads; the EXIF orientation of phone
    photos is applied), a PIL image, or an array (H, W), (H, W, 3) or (H, W, 4)
    (alpha is dropped). ``path`` names an array in error messages."""
    if isinstance(image_or_path, (str, Path)):
        file = Path(image_or_path)
        name = str(file)
        if not file.is_file():
            raise FileNotFoundError(f"{name}: no such image file")
        try:
            with Image.open(file) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name}: cannot be read as an image ({err})") from None
        return np.asarray(img, dtype=np.uint8), name
    name = str(path) if path is not None else "<array>"
    if isinstance(image_or_path, Image.Image):
        return np.asarray(image_or_path.convert("RGB"), dtype=np.uint8), name
    arr = np.asarray(image_or_path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3]), name


# ---------------------------------------------------------------------- detection
def _model_file(name: str) -> str:
    # find_spec locates the package without running its __init__, which imports
    # pkg_resources (gone from recent setuptools); we only need the file.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_INSTALL)
    file = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not file.is_file():
        raise ImportError(f"{file}: model file missing from face-recognition-models; reinstall it ({_INSTALL})")
    return str(file)


@functools.lru_cache(maxsize=1)
def _models():
    """dlib's detector and the 68-point predictor, loaded once (about a second)."""
    try:
        import dlib  # heavy optional dependency (the "faces" extra): imported only when a photo is read
    except ImportError:
        raise ImportError(_INSTALL) from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(_model_file("shape_predictor_68_face_landmarks.dat"))


def _five_from_68(points: np.ndarray) -> np.ndarray:
    return np.stack([points[list(idx)].mean(0) for idx in FACE_POINTS_68.values()])


def detect_faces(image, *, path: str | Path | None = None, upsample: int = 1, min_score: float = 0.5) -> list[DetectedFace]:
    """Every face in a photo, largest first.

    Parameters
    ----------
    image : file path, PIL image or uint8 array (H, W[, 3]) (see :func:`read_photo`)
    path : a name for ``image`` in messages when it is an array
    upsample : times the image is doubled before detection (finds smaller faces; slower)
    min_score : lowest detector score kept (see the module docstring)

    Returns
    -------
    list of :class:`DetectedFace` ``(box, landmarks, score, points)``, sorted by
    box area then score, largest first; empty if there is no face.
    """
    if int(upsample) < 0:
        raise ValueError(f"upsample must be 0 or more, got {upsample}")
    img, _ = read_photo(image, path=path)
    detector, predictor = _models()
    rects, scores, _ = detector.run(img, int(upsample), float(min_score))
    faces = []
    for rect, score in zip(rects, scores):
        shape = predictor(img, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)
        faces.append(DetectedFace(box, _five_from_68(points), float(score), points))
    return sorted(faces, key=lambda f: (f.area, f.score), reverse=True)


# ---------------------------------------------------------------------- alignment
def align_photo(
    image_or_path, *, size: int = 112, zoom: float = 1.0, choose: str = "largest", path: str | Path | None = None,
    upsample: int = 1, min_score: float = 0.5,
) -> AlignedPhoto:
    """Find the face in a photo and align it to the ArcFace template.

    Parameters
    ----------
    image_or_path : file path, PIL image or array (see :func:`read_photo`)
    size : side of the aligned face in pixels
    zoom : the template is shrunk towards the centre by this factor (1 is the
        ArcFace crop, brows to chin; 0.6 keeps hair and jaw in view)
    choose : ``"largest"`` takes the largest face when there are several;
        ``"error"`` raises instead
    path, upsample, min_score : as in :func:`detect_faces`

    Returns
    -------
    :class:`AlignedPhoto`; its landmarks sit on the (zoomed) template up to the
    least-squares fit of the similarity transform.

    Raises
    ------
    :class:`NoFaceError` (a ValueError) naming the file when no face is found; ValueError
    for several faces with ``choose="error"``.
    """
    if choose not in CHOICES:
        raise ValueError(f"choose must be one of {CHOICES}, got {choose!r}")
    if not 0 < float(zoom) <= 2:
        raise ValueError(f"zoom must be in (0, 2], got {zoom}")
    img, name = read_photo(image_or_path, path=path)
    faces = detect_faces(img, upsample=upsample, min_score=min_score)
    if not faces:
        raise NoFaceError(f"{name}: no face found (the detector looks for roughly frontal faces at least about "
                         f"{80 >> int(upsample)} pixels wide; try upsample={int(upsample) + 1} for smaller faces)")
    if len(faces) > 1 and choose == "error":
        raise ValueError(f"{name}: {len(faces)} faces found and choose='error'; crop the photo to one face "
                         "or pass choose='largest'")
    face = faces[0]
    template = ((ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * float(zoom) + ARCFACE_SIZE / 2) * (int(size) / ARCFACE_SIZE)
    aligned, landmarks = align_face(img, face.landmarks, template=template, size=int(size), return_landmarks=True)
    points = transform_landmarks(face.points, similarity_transform(face.landmarks, template))
    return AlignedPhoto(aligned, landmarks, points, face.box, face.score, len(faces), name)


def align_photos(paths, *, size: int = 112, zoom: float = 1.0, choose: str = "largest", **kwargs) -> tuple[np.ndarray, np.ndarray, list[AlignedPhoto]]:
    """:func:`align_photo` for several photos: images (n, size, size, 3),
    landmarks (n, 5, 2) ready for the extractors and fusion, and the
    :class:`AlignedPhoto` of each. The first photo that fails raises its error."""
    photos = [align_photo(p, size=size, zoom=zoom, choose=choose, **kwargs) for p in paths]
    if not photos:
        raise ValueError("no photos given")
    return np.stack([p.image for p in photos]), np.stack([p.landmarks for p in photos]), photos

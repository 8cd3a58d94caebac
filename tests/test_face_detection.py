"""Face detection and alignment of real photos (vfmatch.data.faces), offline.

The photo is scikit-image's astronaut sample, which ships inside the
scikit-image wheel. Only detection and geometry are tested (where the box is,
where the landmarks land): nothing a model might infer about the person is
computed, printed or asserted."""

import numpy as np
import pytest
from PIL import Image

from vfmatch.data.faces import NoFaceError, align_photo, align_photos, detect_faces, read_photo
from vfmatch.data.preprocess import ARCFACE_TEMPLATE
from vfmatch.fusion.reconstruct import fuse_faces


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="module")
def photo_file(photo, tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(photo).save(path)
    return path


def test_detects_the_face_with_landmarks_inside_its_box(photo):
    faces = detect_faces(photo)
    assert len(faces) == 1
    box, landmarks, score, points = faces[0]
    H, W = photo.shape[:2]
    assert 0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H
    assert 0.01 < faces[0].area / (H * W) < 0.25 and score > 0.5
    assert landmarks.shape == (5, 2) and points.shape == (68, 2)
    inside = (landmarks >= box[:2]) & (landmarks <= box[2:])
    assert inside.all()
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = landmarks
    assert lx < nx < rx and mlx < mrx  # left and right as seen in the image
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose tip above the mouth


def test_aligned_photo_has_its_eyes_on_the_template(photo):
    for size in (112, 64):
        aligned = align_photo(photo, size=size)
        template = ARCFACE_TEMPLATE * size / 112
        assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
        assert aligned.n_faces == 1 and aligned.source == "<array>"
        # A least-squares fit of five points: a real face is not the template, so allow a few pixels.
        assert np.linalg.norm(aligned.landmarks[:2] - template[:2], axis=1).max() < 0.05 * size
        eye_mid = aligned.landmarks[:2].mean(0)
        assert np.linalg.norm(eye_mid - template[:2].mean(0)) < 0.03 * size
        dx, dy = aligned.landmarks[1] - aligned.landmarks[0]
        assert abs(np.degrees(np.arctan2(dy, dx))) < 3  # the eye line is level
        assert aligned.morph_points.shape == (70, 2)
        assert np.allclose(aligned.points[30], aligned.landmarks[2])  # the nose tip is dlib's point 30


def test_wider_zoom_keeps_the_eyes_closer_together(photo):
    tight, wide = align_photo(photo, zoom=1.0), align_photo(photo, zoom=0.6)
    d_tight = np.linalg.norm(tight.landmarks[1] - tight.landmarks[0])
    d_wide = np.linalg.norm(wide.landmarks[1] - wide.landmarks[0])
    assert d_wide == pytest.approx(0.6 * d_tight, rel=1e-6)


def test_reads_a_photo_from_a_file_and_names_it(photo_file, tmp_path):
    aligned = align_photo(photo_file)
    assert aligned.source == str(photo_file)
    images, landmarks, photos = align_photos([photo_file, photo_file], size=64)
    assert images.shape == (2, 64, 64, 3) and landmarks.shape == (2, 5, 2) and len(photos) == 2
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        align_photo(tmp_path / "missing.jpg")
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg: cannot be read as an image"):
        align_photo(bad)


def test_a_photo_without_a_face_is_a_clear_error(tmp_path):
    from skimage import data

    flat = tmp_path / "grey.png"
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(flat)
    with pytest.raises(NoFaceError, match="grey.png: no face found"):  # a ValueError
        align_photo(flat)
    cup = data.coffee()  # a cup of coffee on a table
    assert detect_faces(cup) == []
    with pytest.raises(NoFaceError, match="coffee.jpg: no face found"):
        align_photo(cup, path="coffee.jpg")


def test_several_faces_take_the_largest_or_refuse(photo, tmp_path):
    # The photo beside a smaller copy of itself: two faces of different sizes.
    small = np.asarray(Image.fromarray(photo).resize((300, 300)))
    canvas = np.full((512, 812, 3), 128, np.uint8)
    canvas[:, :512], canvas[100:400, 512:] = photo, small
    faces = detect_faces(canvas)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert faces[0].box[2] <= 512  # the larger one is the full-size copy
    path = tmp_path / "two.png"
    Image.fromarray(canvas).save(path)
    chosen = align_photo(path)
    assert chosen.n_faces == 2 and np.allclose(chosen.box, faces[0].box)
    with pytest.raises(ValueError, match="two.png: 2 faces found"):
        align_photo(path, choose="error")
    with pytest.raises(ValueError, match="choose must be one of"):
        align_photo(path, choose="first")


def test_low_scores_let_false_detections_in(photo):
    # At dlib's own threshold (0) the mission patch on the sleeve is taken for a face too;
    # the default min_score of 0.5 keeps it out.
    assert len(detect_faces(photo, min_score=0.0)) == 2
    assert len(detect_faces(photo)) == 1


def test_read_photo_accepts_grey_rgba_and_float():
    grey = np.zeros((20, 30), np.uint8)
    assert read_photo(grey)[0].shape == (20, 30, 3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    assert read_photo(rgba)[0].shape == (20, 30, 3)
    img, name = read_photo(np.full((4, 4, 3), 0.5), path="x.png")
    assert img.dtype == np.uint8 and img[0, 0, 0] == 128 and name == "x.png"
    with pytest.raises(ValueError, match="x.png: expected an image"):
        read_photo(np.zeros((4, 4, 2)), path="x.png")


def test_morphing_a_photo_with_its_mirror_image_uses_all_68_points(photo):
    # The 68 dlib points drive the morph of real photos; a face fused with its mirror
    # image comes out symmetric about the vertical midline of the template.
    a = align_photo(photo, size=64)
    b = align_photo(photo[:, ::-1], size=64)
    fused = fuse_faces(np.stack([a.image, b.image]), np.stack([a.morph_points, b.morph_points]), size=64, method="morph")
    assert fused.shape == (64, 64, 3) and fused.dtype == np.uint8
    centre = fused[16:56, 8:56].astype(float)
    asym = np.abs(centre - centre[:, ::-1]).mean()
    single = a.image[16:56, 8:56].astype(float)
    assert asym < np.abs(single - single[:, ::-1]).mean()

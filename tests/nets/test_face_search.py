"""Finding faces framed as users frame them (nets/faces/search.py): a tight grey portrait, a small face in a
large scene, a head turned 45 degrees; nothing on a background-only crop or an image too small for a face.
Made from lfw_dev's photographs as benchmarks/face_framings.py makes them."""

from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from pdfewshot.nets.faces.finder import FaceFinder
from pdfewshot.nets.faces.search import PACKAGE_SEARCH, FaceSearch, looks_for, moved, plausible, turned

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights" / "face-api" / "model"
PORTRAIT = SHARED / "data" / "lfw_dev" / "Andre_Agassi" / "Andre_Agassi_0001.jpg"
needs_faces = pytest.mark.skipif(not (WEIGHTS.is_dir() and PORTRAIT.is_file()), reason="needs ../shared")
GREY = (128, 128, 128)


def tight(image: Image.Image) -> Image.Image:
    """The face filling the frame, small and grey (issue #35's "tight" framing)."""
    return image.crop((70, 62, 180, 196)).resize((92, 112), Image.Resampling.BILINEAR).convert("L")


def small(image: Image.Image, width: int, at: tuple[int, int]) -> Image.Image:
    """The face ``width`` px wide in a plain 640x480 scene."""
    scene = Image.new("RGB", (640, 480), GREY)
    scene.paste(image.crop((70, 62, 180, 196)).resize((width, round(width * 112 / 92))), at)
    return scene


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return Image.open(PORTRAIT).convert("RGB")


def finder_with(search: FaceSearch) -> FaceFinder:
    finder = FaceFinder(search)
    finder.load_face_api(WEIGHTS)
    finder.eval()
    return finder


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return finder_with(FaceSearch())


def test_looks_reach_small_faces_only_in_large_images() -> None:
    assert [(look.size, look.pad) for look in looks_for(92, 112)] == [(160, 0.0), (160, 0.5), (224, 0.5), (320, 0.25)]
    largest = looks_for(640, 480)[-1]
    assert (largest.size, largest.pad, largest.square) == (640, 0.0, False)
    assert looks_for(4000, 3000)[-1].size == 640  # the time an image takes stays bounded


def test_points_of_a_turned_image_map_back_to_the_image() -> None:
    image = np.zeros((100, 160, 3), np.uint8)
    image[19:22, 29:32] = 255  # a bright spot centred on pixel (30, 20), its centre at (30.5, 20.5)
    view, back = turned(image, 45.0)
    rows, cols = np.nonzero(view[..., 0] > 200)
    assert np.allclose(moved(np.array([[cols.mean() + 0.5, rows.mean() + 0.5]]), back), [[30.5, 20.5]], atol=1.0)


def test_landmarks_upside_down_do_not_make_a_face() -> None:
    face = np.zeros((68, 2))
    face[36:42], face[42:48], face[30], face[48:68] = (30, 40), (70, 40), (50, 60), (50, 80)
    assert plausible(face)
    upside_down = face * np.array([1, -1])
    assert not plausible(upside_down)
    merged_eyes = face.copy()
    merged_eyes[42:48] = (31, 40)
    assert not plausible(merged_eyes)


@needs_faces
def test_tight_grey_portraits_are_found_where_face_api_s_own_search_misses_most(finder: FaceFinder) -> None:
    files = sorted((SHARED / "data" / "lfw_dev" / "Abdullah_Gul").iterdir())[:8]
    images = [np.asarray(tight(Image.open(path).convert("RGB")).convert("RGB")) for path in files]
    assert sum(bool(finder_with(PACKAGE_SEARCH).locate(image)) for image in images) < len(images)
    for image in images:
        (face,) = finder.locate(image)
        eyes = face.landmarks[36:48].mean(axis=0)
        assert 15 < eyes[0] < 77 and 15 < eyes[1] < 75  # on the face, in the 92x112 frame
    assert paddle.is_grad_enabled()  # finding faces (landmarks cut from a bordered image) leaves training as it was


@needs_faces
def test_a_small_face_in_a_large_scene_is_found_where_it_is(finder: FaceFinder, portrait: Image.Image) -> None:
    scene = small(portrait, 56, (431, 57))
    (face,) = finder.locate(np.asarray(scene))
    grey = np.all(np.asarray(scene) == 128, axis=2)
    rows, cols = np.nonzero(~grey)  # where the face was pasted
    centre = ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)
    assert cols.min() <= centre[0] <= cols.max() and rows.min() <= centre[1] <= rows.max()


@needs_faces
def test_a_head_turned_45_degrees_is_found_with_its_eyes_turned(finder: FaceFinder) -> None:
    photo = Image.open(SHARED / "data" / "lfw_dev" / "Alejandro_Toledo" / "Alejandro_Toledo_0010.jpg").convert("RGB")
    image = np.asarray(photo.rotate(45, Image.Resampling.BILINEAR, fillcolor=GREY))
    assert finder_with(FaceSearch(turns=())).locate(image) == []  # what turning the image back adds
    (face,) = finder.locate(image)
    across = face.landmarks[42:48].mean(axis=0) - face.landmarks[36:42].mean(axis=0)
    assert -60 < np.degrees(np.arctan2(across[1], across[0])) < -30  # the eyes' line turned as the head is


@needs_faces
def test_no_face_on_background_or_in_an_image_too_small_to_hold_one(finder: FaceFinder) -> None:
    for path in sorted((SHARED / "data" / "lfw_dev" / "Abdullah_Gul").iterdir())[:4]:
        picture = np.asarray(Image.open(path).convert("RGB"))
        for corner in (picture[:60, :60], picture[:60, -60:]):
            assert finder.locate(np.ascontiguousarray(corner)) == []
    assert finder.locate(np.full((8, 8, 3), 90, np.uint8)) == []


@needs_faces
def test_the_whole_image_is_taken_for_a_face_only_where_its_landmarks_make_one(portrait: Image.Image) -> None:
    """The fallback for a face crop no detector finds (no looks at all here, so it is the only way)."""
    crop_only = finder_with(FaceSearch(sizes=(), turns=(), whole_image=True))
    (face,) = crop_only.locate(np.asarray(tight(portrait).convert("RGB")))
    assert face.score == 0.0 and 15 < face.landmarks[36:48, 0].mean() < 77
    assert crop_only.locate(np.full((112, 92, 3), 128, np.uint8)) == []
    assert finder_with(FaceSearch(sizes=(), turns=())).locate(np.asarray(tight(portrait).convert("RGB"))) == []

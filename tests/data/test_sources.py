import zipfile
from pathlib import Path

import numpy as np
import pytest

from pdfewshot.data.sources import load_sources
from pdfewshot.errors import PdfewshotError
from tests.conftest import make_flat, make_nested, write_image, zip_folder


def test_flat_folder(tmp_path: Path) -> None:
    imageset, report = load_sources([str(make_flat(tmp_path / "flat"))], 8)
    assert imageset.class_names == ("class0", "class1", "class2")
    assert imageset.images.shape == (12, 8, 8, 1)
    assert np.bincount(imageset.labels).tolist() == [4, 4, 4]
    assert "class1/img2.png" in imageset.keys
    assert report.skipped == []


def test_nested_folder_names_classes_by_alphabet_and_character(tmp_path: Path) -> None:
    imageset, _ = load_sources([str(make_nested(tmp_path / "nested"))], 8)
    assert imageset.class_names[:2] == ("alpha0/char0", "alpha0/char1")
    assert imageset.num_classes == 6


@pytest.mark.parametrize("wrap", [None, "images_background"])
def test_zip_reads_like_the_unpacked_folder(tmp_path: Path, wrap: str | None) -> None:
    folder = make_nested(tmp_path / "nested")
    archive = zip_folder(folder, tmp_path / "set.zip", wrap=wrap)
    from_folder, _ = load_sources([str(folder)], 8)
    from_zip, _ = load_sources([str(archive)], 8)
    assert from_zip.class_names == from_folder.class_names
    assert from_zip.keys == from_folder.keys
    np.testing.assert_array_equal(from_zip.images, from_folder.images)


def test_merging_sources_counts_the_same_file_once(tmp_path: Path) -> None:
    first = make_nested(tmp_path / "a", alphabets=2)
    second = make_nested(tmp_path / "b", alphabets=3)  # alpha0 and alpha1 are the same files
    merged, report = load_sources([str(zip_folder(first, tmp_path / "a.zip", "set1")), str(second)], 8)
    assert merged.num_classes == 9
    assert len(merged) == 9 * 4
    assert report.duplicates == 2 * 3 * 4


def test_colour_images_give_three_channels_greyscale_one(tmp_path: Path) -> None:
    grey, _ = load_sources([str(make_flat(tmp_path / "g"))], 8)
    colour, _ = load_sources([str(make_flat(tmp_path / "c", mode="RGB"))], 8)
    assert grey.channels == 1 and colour.channels == 3
    forced, _ = load_sources([str(tmp_path / "c")], 8, channels=1)
    assert forced.channels == 1


def test_other_formats_are_read(tmp_path: Path) -> None:
    root = tmp_path / "formats"
    write_image(root / "a" / "1.jpg", 10, fmt="JPEG")
    write_image(root / "a" / "2.pgm", 20, fmt="PPM")
    write_image(root / "b" / "1.bmp", 30, fmt="BMP")
    imageset, _ = load_sources([str(root)], 8)
    assert len(imageset) == 3


def test_unreadable_images_are_skipped_and_reported(tmp_path: Path) -> None:
    root = make_flat(tmp_path / "flat")
    (root / "class0" / "empty.png").write_bytes(b"")
    (root / "class1" / "text.png").write_text("not an image")
    good = (root / "class2" / "img0.png").read_bytes()
    (root / "class2" / "truncated.png").write_bytes(good[: len(good) // 2])
    imageset, report = load_sources([str(root)], 8)
    assert len(imageset) == 12
    assert sorted(Path(k.split(":")[-1]).name for k, _ in report.skipped) == ["empty.png", "text.png", "truncated.png"]
    with pytest.raises(PdfewshotError, match="unreadable image"):
        load_sources([str(root)], 8, strict=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no images found"),
        (lambda p: (p / "bad.zip").write_text("x") and p / "bad.zip", "not a zip archive"),
        (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "not a folder or a .zip"),
    ],
)
def test_bad_sources_are_one_line_errors_naming_the_path(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(PdfewshotError, match=message) as error:
        load_sources([str(path)], 8)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_image_size_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(PdfewshotError, match="image_size 4: must be between 8 and 512"):
        load_sources([str(make_flat(tmp_path / "flat"))], 4)


def test_zip_member_that_is_not_an_image_is_skipped(tmp_path: Path) -> None:
    archive = zip_folder(make_flat(tmp_path / "flat"), tmp_path / "set.zip")
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr("class0/broken.png", b"\x89PNG nonsense")
        handle.writestr("README.txt", "ignored: not an image suffix")
    imageset, report = load_sources([str(archive)], 8)
    assert len(imageset) == 12 and len(report.skipped) == 1


def test_class_folders_and_files_that_are_links_are_followed(tmp_path: Path) -> None:
    real = make_flat(tmp_path / "real", classes=3, per_class=2)
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in ("class0", "class1"):
        (linked / name).symlink_to(real / name, target_is_directory=True)
    (linked / "class2").mkdir()
    (linked / "class2" / "img0.png").symlink_to(real / "class2" / "img0.png")
    imageset, _ = load_sources([str(linked)], 8)
    assert imageset.class_names == ("class0", "class1", "class2") and len(imageset) == 5


def test_a_link_loop_is_an_error_naming_it_not_a_hang(tmp_path: Path) -> None:
    root = make_flat(tmp_path / "data", classes=2, per_class=2)
    (root / "class0" / "again").symlink_to(root, target_is_directory=True)
    with pytest.raises(PdfewshotError, match=r"class0/again is a link loop") as error:
        load_sources([str(root)], 8)
    assert "\n" not in str(error.value)


def test_no_images_names_the_folders_it_looked_in(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        (root / name / "a.png").write_bytes(b"")  # unreadable, so skipped: no images at all
    with pytest.raises(PdfewshotError, match=r"no images found in class folders \(looked in cats, dogs\)"):
        load_sources([str(root)], 8)

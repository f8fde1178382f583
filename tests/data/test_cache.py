"""The decoded cache: decoded once (in processes when many), read back as rows of a file, keyed by what
decides its content, rebuilt when damaged, skipped when it cannot be written."""

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from pdfewshot.data import cache
from pdfewshot.data.sources import load_sources
from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.pixels import ImageRows
from tests.conftest import make_flat, write_image, zip_folder


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(folder))
    return folder / "decoded"


def in_memory(
    sources: list[str], size: int, monkeypatch: pytest.MonkeyPatch, channels: int | None = None
) -> np.ndarray:
    with monkeypatch.context() as patch:
        patch.setenv(cache.CACHE_VARIABLE, "off")
        images, _ = load_sources(sources, size, channels)
    assert isinstance(images.images, np.ndarray)
    return images.images


def test_a_second_load_reads_the_first_ones_rows_which_match_decoding_in_memory(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(make_flat(tmp_path / "data", classes=3, per_class=4, mode="RGB"))
    first, _ = load_sources([data], 16)
    assert isinstance(first.images, ImageRows) and len(list(cache_dir.glob("*.pixels"))) == 1
    second, report = load_sources([data], 16)
    assert not report.notes and len(list(cache_dir.glob("*"))) == 2  # one pixel file and its description
    expected = in_memory([data], 16, monkeypatch)
    np.testing.assert_array_equal(np.asarray(second.images), expected)
    np.testing.assert_array_equal(second.images[5], expected[5])
    np.testing.assert_array_equal(second.images[2:7], expected[2:7])
    subset = second.subset_classes(["class2", "class0"])
    assert isinstance(subset.images, ImageRows)
    np.testing.assert_array_equal(np.asarray(subset.images), expected[[0, 1, 2, 3, 8, 9, 10, 11]])


def test_greyscale_sets_keep_one_channel_and_a_colour_image_makes_three(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    make_flat(data, classes=2, per_class=3)
    grey, _ = load_sources([str(data)], 16)
    assert grey.channels == 1
    np.testing.assert_array_equal(np.asarray(grey.images), in_memory([str(data)], 16, monkeypatch))
    write_image(data / "class1" / "colour.png", 77, mode="RGB")
    mixed, _ = load_sources([str(data)], 16)
    assert mixed.channels == 3
    np.testing.assert_array_equal(np.asarray(mixed.images), in_memory([str(data)], 16, monkeypatch))


def test_a_changed_image_is_decoded_again(tmp_path: Path, cache_dir: Path) -> None:
    data = make_flat(tmp_path / "data", classes=2, per_class=3)
    before, _ = load_sources([str(data)], 16)
    changed = data / "class0" / "img1.png"
    write_image(changed, 200)
    later = time.time() + 5
    os.utime(changed, (later, later))
    after, _ = load_sources([str(data)], 16)
    assert not np.array_equal(np.asarray(before.images)[1], np.asarray(after.images)[1])
    assert len(list(cache_dir.glob("*.pixels"))) == 2


def test_a_damaged_cache_is_rebuilt_with_a_note(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(make_flat(tmp_path / "data", classes=2, per_class=3))
    load_sources([data], 16)
    (pixels,) = cache_dir.glob("*.pixels")
    with open(pixels, "r+b") as file:
        file.truncate(100)  # cut short, as by a full disk
    images, report = load_sources([data], 16)
    assert len(report.notes) == 1 and "is damaged" in report.notes[0] and "decoding again" in report.notes[0]
    np.testing.assert_array_equal(np.asarray(images.images), in_memory([data], 16, monkeypatch))
    (description,) = cache_dir.glob("*.json")
    description.write_text("{not json")
    _, report = load_sources([data], 16)
    assert "is damaged" in report.notes[0]
    assert not list(cache_dir.glob("*.tmp"))  # nothing half-written is left behind


def test_a_cache_folder_that_cannot_be_written_is_a_warning_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(blocker))
    data = str(make_flat(tmp_path / "data", classes=2, per_class=3))
    images, report = load_sources([data], 16)
    assert isinstance(images.images, np.ndarray) and len(images) == 6
    assert len(report.notes) == 1 and report.notes[0].startswith("warning: cannot write the decoded cache in")


def test_off_decodes_into_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_VARIABLE, "off")
    images, _ = load_sources([str(make_flat(tmp_path / "data", classes=2, per_class=3))], 16)
    assert isinstance(images.images, np.ndarray)


def test_decoding_in_processes_gives_the_rows_one_process_gives(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_flat(tmp_path / "data", classes=3, per_class=5, mode="RGB")
    (data / "class1" / "broken.png").write_bytes(b"not a picture")
    monkeypatch.setattr(cache, "MIN_PARALLEL_IMAGES", 1)
    monkeypatch.setattr(cache, "CHUNK", 4)
    monkeypatch.setattr(cache, "thread_count", lambda: 2)
    images, report = load_sources([str(data)], 16)
    assert len(report.skipped) == 1 and "broken.png" in report.skipped[0][0]
    np.testing.assert_array_equal(np.asarray(images.images), in_memory([str(data)], 16, monkeypatch))
    with pytest.raises(PdfewshotError, match=r"broken\.png: unreadable image"):
        load_sources([str(data)], 16, strict=True)  # from the cache, as when decoding


def test_zips_are_cached_too(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = str(zip_folder(make_flat(tmp_path / "data", classes=2, per_class=3), tmp_path / "set.zip"))
    first, _ = load_sources([archive], 16)
    second, _ = load_sources([archive], 16)
    assert isinstance(second.images, ImageRows) and first.keys == second.keys
    np.testing.assert_array_equal(np.asarray(second.images), in_memory([archive], 16, monkeypatch))


def test_rows_of_a_file_travel_to_other_processes(tmp_path: Path, cache_dir: Path) -> None:
    images, _ = load_sources([str(make_flat(tmp_path / "data", classes=2, per_class=3))], 16)
    assert isinstance(images.images, ImageRows)
    images.images[0]  # opens the file in this process
    copy = pickle.loads(pickle.dumps(images.images))
    np.testing.assert_array_equal(np.asarray(copy), np.asarray(images.images))

"""Decoded once: the images of a set of sources, at one size and channel count, in a file that later runs read.

The first run over some sources decodes their images in one process per core, each writing its rows
straight into a file (``<key>.pixels``), and then describes it (``<key>.json``: the rows' keys, classes
and labels, and what could not be read). Later runs with the same key read the description and take
rows from the file when they are indexed (:class:`pdfewshot.storage.pixels.ImageRows`), so neither
time nor memory grows with the set's size after the first run.

The key is a hash of what decides the content: the format version, the image size and channels asked
for, and for each source its image files' relative paths, sizes and modification times (a zip: its own
size and time), so that a changed, added or removed image makes a new key. Both files are written
under temporary names and renamed, the description last, so a file that a run reads is always whole;
two runs building the same key at once each write their own and the last rename wins. A description
that does not match its pixel file is reported and rebuilt, never read.

Where: ``decoded/`` in pdfewshot's cache folder, ``$PDFEWSHOT_CACHE`` (``pdfewshot --cache-dir``), else
``$XDG_CACHE_HOME/pdfewshot`` (``~/.cache`` by default); ``off`` decodes into memory every time and
keeps no drawn glyphs either.
"""

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.data.decoding import GREY_MODES, SKIPPED, Shaper, decode_image, shape_picture, why_skipped
from pdfewshot.runtime import thread_count
from pdfewshot.storage.pixels import ImageRows

CACHE_VARIABLE = "PDFEWSHOT_CACHE"
OFF = "off"
FORMAT_VERSION = 2  # 2: a skipped image's reason is stored whole (unreadable, or no face found)
CHUNK = 256  # images a decoding process takes at a time
MIN_PARALLEL_IMAGES = 512  # below this, starting processes costs more than it saves


def cache_root() -> Path | None:
    """pdfewshot's cache folder, or None when caching is off."""
    value = os.environ.get(CACHE_VARIABLE, "").strip()
    if value.lower() == OFF:
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "pdfewshot"


def cache_folder() -> Path | None:
    """Where decoded sets are kept, or None when caching is off."""
    root = cache_root()
    return None if root is None else root / "decoded"


@dataclass(frozen=True)
class PlannedImage:
    """An image to decode: where it is read from (a file, or a member of a zip) and what it is."""

    source: str
    relative: str  # its key: the path relative to the source root
    class_name: str
    file: str  # the file to read, or the zip holding it
    member: str | None = None  # the zip member, for a zip


@dataclass(frozen=True)
class Decoded:
    """A decoded set in a cache file: rows in planned order; ``rows`` those that decoded."""

    pixels: ImageRows
    rows: np.ndarray  # planned positions that decoded, in order
    failed: list[tuple[int, str]]  # planned position and the decoder's error, of those that did not


def cache_key(planned: Sequence[PlannedImage], image_size: int, channels: int | None, shaper: str | None = None) -> str:
    """A hash of what decides the decoded content (``shaper``: the identity of what makes the rows, if not
    centre crop and resize)."""
    identity: list[Any] = [FORMAT_VERSION, image_size, channels or "auto"] + ([shaper] if shaper else [])
    zips: set[str] = set()
    for image in planned:
        if image.member is None:
            stat = os.stat(image.file)
            identity.append([image.source, image.relative, stat.st_size, stat.st_mtime_ns])
        elif image.file not in zips:
            zips.add(image.file)
            stat = os.stat(image.file)
            identity.append([image.file, stat.st_size, stat.st_mtime_ns])
        else:
            identity.append([image.relative, image.member])
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


def read_cached(folder: Path, key: str, count: int, image_size: int) -> tuple[Decoded | None, str | None]:
    """The decoded set under ``key`` (None when there is none), and a note when one was there but damaged."""
    description, pixels = folder / f"{key}.json", folder / f"{key}.pixels"
    if not description.exists():
        return None, None
    try:
        saved = json.loads(description.read_text())
        stored = int(saved["stored_channels"])
        row_bytes = image_size * image_size * stored
        valid = (
            saved["version"] == FORMAT_VERSION
            and saved["count"] == count
            and saved["image_size"] == image_size
            and pixels.stat().st_size == count * row_bytes
        )
        if not valid:
            raise ValueError("it does not match its pixel file")
        rows = ImageRows(pixels, count, image_size, stored, int(saved["channels"]))
        failed = [(int(position), str(error)) for position, error in saved["failed"]]
        return Decoded(rows, np.asarray(saved["rows"], dtype=np.int64), failed), None
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"decoded cache {description} is damaged ({error}): decoding again"


def build_cache(
    folder: Path,
    key: str,
    planned: Sequence[PlannedImage],
    image_size: int,
    channels: int | None,
    shaper: Shaper | None = None,
) -> Decoded:
    """Decodes the planned images into ``folder/key.pixels`` (in processes when there are many, unless a
    ``shaper`` makes the rows: it runs networks, in this process) and describes them in ``folder/key.json``;
    raises OSError when the folder cannot be written."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = channels or 3  # channels left to the data: colour rows, cut to one if every image is grey
    row_bytes = image_size * image_size * stored
    suffix = f".{os.getpid()}.tmp"
    pixels_path, description = folder / f"{key}.pixels", folder / f"{key}.json"
    temporary = pixels_path.with_name(pixels_path.name + suffix)
    try:
        with open(temporary, "wb") as file:
            file.truncate(len(planned) * row_bytes)
        jobs = [
            (str(temporary), image_size, channels, stored, start, planned[start : start + CHUNK], shaper)
            for start in range(0, len(planned), CHUNK)
        ]
        # A shaper runs networks, whose kernels use every core already (two processes were no faster)
        many = len(planned) >= MIN_PARALLEL_IMAGES and shaper is None
        processes = min(thread_count(), len(jobs)) if many else 1
        if processes > 1:
            # Forked, as paddle.io.DataLoader's workers are: a spawned process would import the caller's
            # script again. The decoding processes touch nothing but files, Pillow and numpy.
            with ProcessPoolExecutor(processes, mp_context=get_context("fork")) as pool:
                outcomes = [outcome for chunk in pool.map(_decode_chunk, jobs) for outcome in chunk]
        else:
            outcomes = [outcome for job in jobs for outcome in _decode_chunk(job)]
        rows = [position for position, (error, _) in enumerate(outcomes) if error is None]
        failed = [(position, error) for position, (error, _) in enumerate(outcomes) if error is not None]
        grey = all(is_grey for error, is_grey in outcomes if error is None)
        kept_channels = channels or (1 if grey and rows else 3)
        saved = {
            "version": FORMAT_VERSION, "count": len(planned), "image_size": image_size,
            "stored_channels": stored, "channels": kept_channels, "rows": rows, "failed": failed,
        }  # fmt: skip
        os.replace(temporary, pixels_path)
        written = description.with_name(description.name + suffix)
        written.write_text(json.dumps(saved))
        os.replace(written, description)
    finally:
        temporary.unlink(missing_ok=True)
    pixels = ImageRows(pixels_path, len(planned), image_size, stored, kept_channels)
    return Decoded(pixels, np.asarray(rows, dtype=np.int64), failed)


def _decode_chunk(
    job: tuple[str, int, int | None, int, int, Sequence[PlannedImage], Shaper | None],
) -> list[tuple[str | None, bool]]:
    """Decodes a run of planned images into their rows of the file: (why skipped or None, greyscale) of each."""
    path, image_size, channels, stored, start, images, shaper = job
    row_bytes = image_size * image_size * stored
    outcomes: list[tuple[str | None, bool]] = []
    archives: dict[str, zipfile.ZipFile] = {}
    descriptor = os.open(path, os.O_WRONLY)
    try:
        for offset, image in enumerate(images):
            try:
                if image.member is None:
                    raw = Path(image.file).read_bytes()
                else:
                    archive = archives.get(image.file) or archives.setdefault(image.file, zipfile.ZipFile(image.file))
                    raw = archive.read(image.member)
                picture = decode_image(raw)
                grey = picture.mode in GREY_MODES
                pixels = shape_picture(picture, image_size, channels or (1 if grey else 3), shaper)
                if pixels.shape[2] != stored:
                    pixels = np.repeat(pixels, stored, axis=2)  # a grey image among colour rows
                os.pwrite(descriptor, pixels.tobytes(), (start + offset) * row_bytes)
                outcomes.append((None, grey))
            except SKIPPED as error:
                outcomes.append((why_skipped(error), False))
    finally:
        os.close(descriptor)
        for archive in archives.values():
            archive.close()
    return outcomes

"""Readers for image sources: the built-in glyphs, image folders (flat or nested) and zips of either.

A class is the folder that holds its images, named by its path relative to the source root:
``root/cat/1.jpg`` is class ``cat``; ``root/Greek/character01/1.png`` (Omniglot's layout) is class
``Greek/character01``. A zip whose entries all sit under one top-level folder has that folder taken
as its root, as if it had been unpacked. Several sources are merged: the same relative class path is
the same class, and the same relative file path is the same image, counted once.
"""

import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np

from pdfewshot.config import BUILTIN_SOURCE
from pdfewshot.data.cache import PlannedImage, build_cache, cache_folder, cache_key, read_cached
from pdfewshot.data.decoding import (
    GREY_MODES,
    SKIPPED,
    Shaper,
    decode_image,
    shape_picture,
    why_skipped,
)
from pdfewshot.data.glyphs import GlyphSpec, glyph_images
from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import PdfewshotError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm", ".tif", ".tiff", ".webp"}
)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 512

# (relative path, a function returning the raw bytes or an already decoded greyscale array)
RawItem = tuple[str, Callable[[], bytes | np.ndarray]]


@dataclass
class LoadReport:
    """What loading skipped, so that a stage can tell the user."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)  # about the decoded cache: rebuilt, or not writable
    by_class: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # class -> (relative path, why)

    def skip(self, source: str, relative: str, why: str) -> None:
        """Records an image of a class folder that was not used, and why."""
        self.skipped.append((image_location(source, relative), why))
        self.by_class.setdefault(PurePosixPath(relative).parent.as_posix(), []).append((relative, why))


def image_location(source: str, relative: str) -> str:
    """Where an image of a source is, as messages name it: its file's path, or ZIP:NAME inside a zip."""
    return f"{source}:{relative}" if source.lower().endswith(".zip") else str(Path(source) / relative)


def resolve_source(source: str) -> str:
    """The built-in token as is; a path made absolute, so a sidecar can name it from anywhere."""
    return source if source == BUILTIN_SOURCE else str(Path(source).expanduser().resolve())


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _iter_folder(root: Path) -> Iterator[RawItem]:
    """The images under ``root``; folders and files that are symbolic links are followed (a link that
    leads back to a folder above it is an error naming it, not an endless walk)."""
    real_of: dict[str, str] = {str(root): os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        if here != root:
            real = os.path.realpath(here)
            ancestors = [real_of.get(str(parent), "") for parent in here.parents if parent.is_relative_to(root)]
            if real in ancestors:
                folder = here.relative_to(root).as_posix()
                raise PdfewshotError(f"{root}: {folder} is a link loop (it leads back to {real})")
            real_of[dirpath] = real
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # skip .git, .ipynb_checkpoints
        images = sorted(f for f in filenames if _is_image(f))
        if not dirnames and not images and here != root:
            folder = here.relative_to(root).as_posix()
            raise PdfewshotError(f"{root}: class folder {folder} has no images")
        for filename in images:
            path = here / filename
            yield path.relative_to(root).as_posix(), path.read_bytes


def _zip_entries(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(relative path, member name) of the images in a zip, in a fixed order."""
    names = sorted(n for n in archive.namelist() if not n.endswith("/") and _is_image(n))
    tops = {n.split("/", 1)[0] for n in names}
    # A single wrapping folder is the archive's root unless images sit directly in it.
    strip = len(tops) == 1 and all(n.count("/") >= 2 for n in names)
    return [(name.split("/", 1)[1] if strip else name, name) for name in names]


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PdfewshotError(f"{path}: not a zip archive") from None


def _iter_zip(path: Path) -> Iterator[RawItem]:
    with _open_zip(path) as archive:
        for relative, name in _zip_entries(archive):
            yield relative, partial(archive.read, name)


def _iter_builtin() -> Iterator[RawItem]:
    paths, images = glyph_images(GlyphSpec())
    for relative, image in zip(paths, images, strict=True):
        yield relative, partial(np.asarray, image)


def iter_source(source: str) -> Iterator[RawItem]:
    """The images of one source as (relative path, loader) pairs, in a fixed order."""
    if source == BUILTIN_SOURCE:
        yield from _iter_builtin()
        return
    path = Path(source)
    if not path.exists():
        raise PdfewshotError(f"{source}: no such file or folder")
    if path.is_dir():
        yield from _iter_folder(path)
    elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        yield from _iter_zip(path)
    else:
        raise PdfewshotError(f"{source}: not a folder or a .zip of images")


def count_images(source: str) -> int:
    """How many images a source holds, counted by name without reading them (0 for one that is not there:
    loading it says what is wrong)."""
    if source == BUILTIN_SOURCE:
        spec = GlyphSpec()
        return spec.alphabets * spec.characters * spec.drawers
    try:
        return sum(1 for _ in iter_source(source))
    except PdfewshotError:
        return 0


def read_by_key(sources: Sequence[str], key: str) -> bytes | np.ndarray | None:
    """The encoded image (or array) that the sources hold under ``key`` (a relative path, as an
    ImageSet's keys are), or None when none of them has it."""
    for source in sources:
        path = Path(source)
        if source != BUILTIN_SOURCE and path.is_dir():
            if (path / key).is_file():
                return (path / key).read_bytes()
            continue
        if source == BUILTIN_SOURCE or path.is_file():
            found = next((read for relative, read in iter_source(source) if relative == key), None)
            if found is not None:
                return found()
    return None


def _looked_in(source: str) -> str:
    """For a folder source: the folders that were searched, for the "no images" message."""
    path = Path(source)
    if not path.is_dir():
        return ""
    folders = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not folders:
        return " (it holds no folders: put each class's images in a folder of its own)"
    shown = ", ".join(folders[:8]) + (f" and {len(folders) - 8} more" if len(folders) > 8 else "")
    return f" (looked in {shown})"


def load_sources(
    sources: Sequence[str],
    image_size: int,
    channels: int | None = None,
    strict: bool = False,
    shaper: Shaper | None = None,
) -> tuple[ImageSet, LoadReport]:
    """Every image of the sources, resized to ``image_size`` square (or made into a row by ``shaper``, with
    three channels): decoded once into the cache (:mod:`pdfewshot.data.cache`) and read from it, or decoded
    into memory (the built-in set, or the cache off or not writable).

    ``channels`` 1 or 3; ``None`` picks 1 when every image is greyscale, else 3. Unreadable images (and
    those the shaper cannot use) are skipped and listed in the report, or raise under ``strict``.
    """
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise PdfewshotError(f"{image_size}: must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}", "image_size")
    if not sources:
        raise PdfewshotError(": no data source given", "data")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    channels = 3 if shaper is not None else channels
    folder = cache_folder()
    if folder is None or BUILTIN_SOURCE in sources:
        return _decode_in_memory(sources, image_size, channels, strict, LoadReport(), shaper)
    report = LoadReport()
    planned = _plan(sources, report)
    key = cache_key(planned, image_size, channels, shaper.identity if shaper else None)
    decoded, note = read_cached(folder, key, len(planned), image_size)
    if note:
        report.notes.append(note)
    if decoded is None:
        try:
            decoded = build_cache(folder, key, planned, image_size, channels, shaper)
        except OSError as error:
            report.notes.append(f"warning: cannot write the decoded cache in {folder} ({error}); decoding into memory")
            memory_report = LoadReport(notes=report.notes)
            return _decode_in_memory(sources, image_size, channels, strict, memory_report, shaper)
    for position, why in decoded.failed:
        image = planned[position]
        if strict:
            raise PdfewshotError(f"{image.source}: {image.relative}: {why}")
        report.skip(image.source, image.relative, why)
    kept = [planned[position] for position in decoded.rows]
    for source in sources:
        if not any(image.source == source for image in kept) and not report.duplicates:
            raise PdfewshotError(f"{source}: no images found in class folders{_looked_in(source)}")
    class_names = tuple(sorted({image.class_name for image in kept}))
    label_of = {name: i for i, name in enumerate(class_names)}
    labels = np.array([label_of[image.class_name] for image in kept], dtype=np.int64)
    keys = tuple(image.relative for image in kept)
    return ImageSet(decoded.pixels.take(decoded.rows), labels, class_names, keys), report


def _class_to_read(source: str, relative: str, seen: set[str], report: LoadReport) -> str | None:
    """The class of an image to read; None for one already read from an earlier source (counted) or one
    outside any class folder (skipped into the report)."""
    if relative in seen:
        report.duplicates += 1
        return None
    class_name = PurePosixPath(relative).parent.as_posix()
    if class_name == ".":
        report.skipped.append((image_location(source, relative), "not inside a class folder"))
        return None
    return class_name


def _plan(sources: Sequence[str], report: LoadReport) -> list[PlannedImage]:
    """The images to decode, each once (the first source that has a relative path wins), with what a
    decoding process needs to read it; images outside class folders are skipped into the report."""
    seen: set[str] = set()
    planned: list[PlannedImage] = []
    for source in sources:
        path = Path(source)
        relatives = [relative for relative, _ in iter_source(source)]  # says what is wrong with a source
        members = {}
        if path.is_file():
            with _open_zip(path) as archive:
                members = dict(_zip_entries(archive))
        before = len(planned)
        for relative in relatives:
            class_name = _class_to_read(source, relative, seen, report)
            if class_name is None:
                continue
            seen.add(relative)
            if members:
                planned.append(PlannedImage(source, relative, class_name, str(path), members[relative]))
            else:
                planned.append(PlannedImage(source, relative, class_name, str(path / relative)))
        if len(planned) == before and not report.duplicates:
            raise PdfewshotError(f"{source}: no images found in class folders{_looked_in(source)}")
    return planned


def _decode_in_memory(
    sources: Sequence[str],
    image_size: int,
    channels: int | None,
    strict: bool,
    report: LoadReport,
    shaper: Shaper | None = None,
) -> tuple[ImageSet, LoadReport]:
    """Every image decoded in this process and held in memory."""
    seen: set[str] = set()
    # Each image is shrunk as soon as it is decoded (a photograph's full-size pixels would otherwise all be
    # held until the last one is read): to ``channels``, or, while they are still to be decided, to one
    # channel for a greyscale image and three for a colour one (widened later if the set needs three).
    decoded: list[tuple[str, str, np.ndarray]] = []
    for source in sources:
        before = len(decoded)
        for relative, read in iter_source(source):
            class_name = _class_to_read(source, relative, seen, report)
            if class_name is None:
                continue
            try:
                image = decode_image(read())
                own_channels = channels or (1 if image.mode in GREY_MODES else 3)
                pixels = shape_picture(image, image_size, own_channels, shaper)
            except SKIPPED as error:
                if strict:
                    raise PdfewshotError(f"{source}: {relative}: {why_skipped(error)}") from None
                report.skip(source, relative, why_skipped(error))
                continue
            seen.add(relative)
            decoded.append((relative, class_name, pixels))
        if len(decoded) == before and not report.duplicates:
            raise PdfewshotError(f"{source}: no images found in class folders{_looked_in(source)}")

    if channels is None:
        channels = 1 if all(pixels.shape[2] == 1 for _, _, pixels in decoded) else 3
    class_names = tuple(sorted({class_name for _, class_name, _ in decoded}))
    label_of = {name: i for i, name in enumerate(class_names)}
    # A greyscale image in a colour set: its one channel repeated, as converting it to RGB would.
    images = np.stack([np.repeat(pixels, channels // pixels.shape[2], axis=2) for _, _, pixels in decoded])
    labels = np.array([label_of[class_name] for _, class_name, _ in decoded], dtype=np.int64)
    keys = tuple(relative for relative, _, _ in decoded)
    return ImageSet(images=images, labels=labels, class_names=class_names, keys=keys), report


def load_image_files(
    paths: Sequence[Path], image_size: int, channels: int, strict: bool = False, shaper: Shaper | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Images of single files, as the networks take them, with the paths read and those skipped, each
    as ``PATH: why``.

    An unreadable file (or one ``shaper`` cannot use) is skipped, or raises under ``strict``.
    """
    arrays, read, skipped = [], [], []
    for path in paths:
        try:
            arrays.append(shape_picture(decode_image(path.read_bytes()), image_size, channels, shaper))
            read.append(str(path))
        except SKIPPED as error:
            if strict:
                raise PdfewshotError(f"{path}: {why_skipped(error)}") from None
            skipped.append(f"{path}: {why_skipped(error)}")
    images = np.stack(arrays) if arrays else np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    return images, read, skipped

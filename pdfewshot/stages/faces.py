"""The face route at the stages' level: the chips a face start makes, whether data are faces (so that the
face start is chosen by default), and every face of an image for ``predict``, ``compare`` and ``serve``."""

from collections.abc import Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

from pdfewshot.data.decoding import UNREADABLE, decode_image, decoded_scale, flattened
from pdfewshot.data.sources import iter_source
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.faces.finder import Face, FaceChips, FaceFinder
from pdfewshot.nets.pretrained import StartWeights

FACE_SAMPLE = 24  # images looked at to tell whether data are faces
FACE_SHARE = 0.9  # share of them with a face found for the data to count as faces


def start_chips(start: StartWeights | None) -> FaceChips | None:
    """The chips a face start cuts (its own detector and landmarks); None for other starts."""
    if start is None or start.face_finder is None or start.face_alignment is None:
        return None
    return FaceChips.from_weights(start.face_finder, start.face_alignment, start.path)


def faces_in_sample(sources: Sequence[str], finder: FaceFinder) -> tuple[int, int]:
    """(images with a face found, images looked at) of up to :data:`FACE_SAMPLE` images spread over the sources."""
    per_source = max(1, FACE_SAMPLE // max(1, len(sources)))
    found = looked = 0
    for source in sources:
        for _, read in islice(iter_source(source), per_source):
            try:
                image = np.asarray(flattened(decode_image(read())).convert("RGB"))
            except UNREADABLE:
                continue
            looked += 1
            found += bool(finder.locate(image, largest=True))
    return found, looked


def every_face(chips: FaceChips, raw: bytes | np.ndarray | Image.Image, size: int) -> list[Face]:
    """The faces of one image (encoded, an array or decoded), largest first (raises what decoding raises for
    an unreadable one)."""
    picture = raw if isinstance(raw, Image.Image) else decode_image(raw)
    image = np.asarray(flattened(picture).convert("RGB"))
    faces = sorted(chips.finder.find(image, chips.alignment, size), key=lambda face: -face.area)
    across, down = decoded_scale(picture)  # boxes and landmarks in the pixels of the image as given
    if (across, down) == (1.0, 1.0):
        return faces
    return [
        replace(face, box=(face.box[0] * across, face.box[1] * down, face.box[2] * across, face.box[3] * down),
                landmarks=face.landmarks * np.array([across, down]))
        for face in faces
    ]  # fmt: skip


def find_faces(
    paths: Sequence[Path], chips: FaceChips, size: int, strict: bool
) -> tuple[list[tuple[str, list[Face]]], list[str]]:
    """The faces of each readable image file (none for an image without a face), and the unreadable files
    skipped, each as ``PATH: why`` (an error under ``strict``)."""
    faces, skipped = [], []
    for path in paths:
        try:
            faces.append((str(path), every_face(chips, path.read_bytes(), size)))
        except UNREADABLE as error:
            if strict:
                raise PdfewshotError(f"{path}: unreadable image ({error})") from None
            skipped.append(f"{path}: unreadable image ({error})")
    return faces, skipped

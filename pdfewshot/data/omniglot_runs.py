"""Omniglot's 20 official 20-way one-shot runs (Lake et al. 2015), read from ``all_runs.zip`` as shipped.

Each run ``runNN/`` holds 20 training images (one per class), 20 test images, and ``class_labels.txt``
whose lines pair a test image with its training image: ``runNN/test/itemYY.png runNN/training/classZZ.png``.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pdfewshot.data.decoding import UNREADABLE, decode_image, image_to_array
from pdfewshot.errors import PdfewshotError


@dataclass(frozen=True)
class OneShotRun:
    """One run: ``training[i]`` is the single example of class i; ``test_labels[j]`` is test image j's class."""

    name: str
    training: np.ndarray  # [classes, h, w, c] uint8
    test: np.ndarray  # [trials, h, w, c] uint8
    test_labels: np.ndarray  # [trials] int64


def read_runs(path: Path, image_size: int, channels: int = 1) -> list[OneShotRun]:
    """Every run in the zip, in name order, images resized to ``image_size``."""
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PdfewshotError(f"{path}: not a zip archive") from None
    runs = []
    with archive:
        names = set(archive.namelist())
        label_files = sorted(n for n in names if PurePosixPath(n).name == "class_labels.txt")
        if not label_files:
            raise PdfewshotError(f"{path}: no run folders with class_labels.txt")

        def load(member: str) -> np.ndarray:
            if member not in names:
                raise PdfewshotError(f"{path}: {member} is named in class_labels.txt but missing")
            try:
                return image_to_array(decode_image(archive.read(member)), image_size, channels)
            except UNREADABLE:
                raise PdfewshotError(f"{path}: {member} is not a readable image") from None

        for labels_file in label_files:
            run_dir = PurePosixPath(labels_file).parent
            # Lines name files from the folder that holds the runs (e.g. run01/test/item01.png).
            root = run_dir.parent
            pairs = []
            for number, line in enumerate(archive.read(labels_file).decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise PdfewshotError(f"{path}: {labels_file} line {number}: expected two paths")
                pairs.append((str(root / parts[0]), str(root / parts[1])) if str(root) != "." else (parts[0], parts[1]))
            training_names = sorted({train for _, train in pairs})
            index = {name: i for i, name in enumerate(training_names)}
            runs.append(
                OneShotRun(
                    name=run_dir.name,
                    training=np.stack([load(name) for name in training_names]),
                    test=np.stack([load(test) for test, _ in pairs]),
                    test_labels=np.array([index[train] for _, train in pairs], dtype=np.int64),
                )
            )
    return runs

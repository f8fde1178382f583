"""Are these two the same? The similarity of image A to each image B (or of each pair of a CSV file)
by an embedding checkpoint, and "same" / "different" at the checkpoint's threshold."""

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdfewshot.config import CompareConfig
from pdfewshot.data.sources import load_image_files
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.methods.verification import similarities, similarity_kind
from pdfewshot.nets.inference import run_fast
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import face_chips, open_embedding

LABELS = {"same": True, "1": True, "different": False, "0": False}


@dataclass(frozen=True)
class PairScore:
    first: str
    second: str
    similarity: float
    same: bool | None  # the answer at the threshold (None without one)
    truth: bool | None = None  # the pairs file's label, when it has one

    def to_json(self) -> dict[str, Any]:
        record = {"first": self.first, "second": self.second, "similarity": self.similarity, "same": self.same}
        return record if self.truth is None else {**record, "truth": self.truth}


@dataclass(frozen=True)
class CompareResult:
    rows: list[PairScore]
    similarity: str  # cosine or pair-probability
    threshold: float | None
    threshold_from: str  # where the threshold came from, or why there is none

    @property
    def accuracy(self) -> float | None:
        """Share of labelled pairs answered right (None when the pairs carry no labels or no threshold)."""
        judged = [row for row in self.rows if row.truth is not None and row.same is not None]
        return sum(row.same == row.truth for row in judged) / len(judged) if judged else None

    def to_json(self) -> dict[str, Any]:
        return {
            "similarity": self.similarity, "threshold": self.threshold, "threshold_from": self.threshold_from,
            "accuracy": self.accuracy, "pairs": [row.to_json() for row in self.rows],
        }  # fmt: skip


def read_pairs_file(path: Path) -> list[tuple[Path, Path, bool | None]]:
    """Rows ``first,second[,same|different]`` (paths relative to the file's folder); a first row whose
    first two fields name no files is a header; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PdfewshotError(f"{path}: cannot read it ({error})") from None
    rows: list[tuple[Path, Path, bool | None]] = []
    first_row = True
    for number, fields in enumerate(csv.reader(text.splitlines()), 1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in fields]
        where = f"{path}: line {number}"
        if len(fields) not in (2, 3):
            raise PdfewshotError(f"{where}: expected 'first,second' or 'first,second,same|different', found "
                                 f"{len(fields)} fields")  # fmt: skip
        first, second = (path.parent / fields[0], path.parent / fields[1])
        header, first_row = first_row and not first.is_file() and not second.is_file(), False
        if header:
            continue
        for image in (first, second):
            if not image.is_file():
                raise PdfewshotError(f"{where}: {image}: no such file")
        truth = None
        if len(fields) == 3:
            if fields[2].lower() not in LABELS:
                raise PdfewshotError(f"{where}: {fields[2]!r}: the third field must be same or different (or 1/0)")
            truth = LABELS[fields[2].lower()]
        rows.append((first, second, truth))
    if not rows:
        raise PdfewshotError(f"{path}: no pairs in it")
    return rows


def compare(config: CompareConfig) -> CompareResult:
    """Similarity of each pair, and the answer at the threshold (given, or the checkpoint's)."""
    set_paddle_threads()
    if config.pairs is not None and config.images:
        raise PdfewshotError(": give images or --pairs, not both", "pairs")
    if config.pairs is None and len(config.images) < 2:
        raise PdfewshotError(": give IMAGE_A and at least one IMAGE_B (or --pairs FILE.csv)", "images")
    with about("pairs"):
        pairs = (
            read_pairs_file(config.pairs)
            if config.pairs is not None
            else [(config.images[0], other, None) for other in config.images[1:]]
        )
    with about("model"):
        net, meta = open_embedding(config.model)
    kind = similarity_kind(net)
    if config.threshold is not None:
        threshold, origin = config.threshold, "given"
    elif meta.verification is not None and meta.verification.similarity == kind:
        threshold = meta.verification.threshold
        origin = f"chosen on {meta.verification.chosen_on} (accuracy {meta.verification.accuracy:.4f} there)"
    else:
        threshold, origin = None, "none stored: run evaluate --pairs N, or give --threshold"
    unique = list(dict.fromkeys(path for first, second, _ in pairs for path in (first, second)))
    missing = next((path for path in unique if not path.is_file()), None)
    if missing is not None:
        raise PdfewshotError(f"{missing}: no such file")
    # On the face route an image without a face is a one-line error naming it ("no face found"), never a guess.
    images, _, _ = load_image_files(unique, meta.image_size, meta.channels, True, face_chips(net, meta))
    embeddings = run_fast(net, images)
    index = {path: i for i, path in enumerate(unique)}
    first = embeddings[[index[a] for a, _, _ in pairs]]
    second = embeddings[[index[b] for _, b, _ in pairs]]
    scores = similarities(net, first, second)
    rows = [
        PairScore(str(a), str(b), float(score), None if threshold is None else bool(score >= threshold), truth)
        for (a, b, truth), score in zip(pairs, scores, strict=True)
    ]
    return CompareResult(rows, kind, threshold, origin)


__all__ = ["CompareResult", "PairScore", "compare", "read_pairs_file"]

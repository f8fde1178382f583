"""Prediction on new images: class and probability for each, or "unknown" below a threshold."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import PredictConfig
from pdfewshot.data.sources import IMAGE_SUFFIXES, load_image_files
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.inference import InferenceRunner, run_fast
from pdfewshot.reporting.console import err_console
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import open_predictor
from pdfewshot.stages.export import read_export_meta

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Prediction:
    image: str
    ranked: list[tuple[str, float]]  # (class, softmax probability), best first
    label: str  # the best class, or "unknown" when its probability is under the threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image, "label": self.label,
            "top": [{"class": name, "probability": p} for name, p in self.ranked],
        }  # fmt: skip


def collect_images(inputs: Sequence[Path]) -> list[Path]:
    """The image files named, and those under the folders named (recursively, in name order)."""
    if not inputs:
        raise PdfewshotError(": give at least one image or folder", "inputs")
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PdfewshotError(f"{item}: no images in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise PdfewshotError(f"{item}: no such file or folder")
    return files


@dataclass(frozen=True)
class Scorer:
    """uint8 images -> logits, with what a caller needs to know of the classifier behind it."""

    logits: Callable[[np.ndarray], np.ndarray]
    class_names: list[str]
    image_size: int
    channels: int
    suggested_reject_below: float | None


def open_scorer(model: Path) -> Scorer:
    """A predictor checkpoint, or an exported folder (run by paddle.inference), as a scorer."""
    if model.is_dir():
        exported = read_export_meta(model)
        runner = InferenceRunner(str(model / exported.program))
        return Scorer(runner, exported.class_names, exported.image_size, exported.channels,
                      exported.suggested_reject_below)  # fmt: skip
    predictor, meta = open_predictor(model)
    return Scorer(partial(run_fast, predictor), meta.class_names, meta.image_size, meta.channels,
                  meta.suggested_reject_below)  # fmt: skip


def predict(config: PredictConfig) -> list[Prediction]:
    """Classifies each image with the predictor; probabilities are the softmax of its logits."""
    set_paddle_threads()
    if config.top_k < 1:
        raise PdfewshotError(f"{config.top_k}: must be at least 1", "top_k")
    with about("model"):
        scorer = open_scorer(config.model)
    threshold = config.reject_below
    if threshold == "suggested":
        threshold = scorer.suggested_reject_below
        if threshold is None:
            raise PdfewshotError(
                f"{config.model}: has no suggested threshold (fine-tuned with one shot, or a pair-bce predictor)",
                "model",
            )
    if isinstance(threshold, str) or (threshold is not None and not 0.0 <= threshold <= 1.0):
        raise PdfewshotError(f"{config.reject_below}: must be a probability between 0 and 1", "reject_below")
    images, names, skipped = load_image_files(
        collect_images(config.inputs), scorer.image_size, scorer.channels, config.strict
    )
    if skipped:
        err_console.print(f"warning: skipped {len(skipped)} unreadable images (first: {skipped[0]})", markup=False)
    if not names:
        raise PdfewshotError("no readable images to predict")
    logits = scorer.logits(images)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    classes = scorer.class_names
    k = min(config.top_k, len(classes))
    results = []
    for name, row in zip(names, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        ranked = [(classes[i], float(row[i])) for i in order]
        rejected = threshold is not None and ranked[0][1] < threshold
        results.append(Prediction(name, ranked, UNKNOWN if rejected else ranked[0][0]))
    return results

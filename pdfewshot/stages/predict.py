"""Prediction on new images: class and probability for each, or "unknown" below a threshold."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from pdfewshot.config import REJECT_SCORE_NAMES, PredictConfig
from pdfewshot.data.sources import IMAGE_SUFFIXES, load_image_files
from pdfewshot.errors import PdfewshotError, about, check_choice
from pdfewshot.methods.unknown import scores_from_logits
from pdfewshot.nets.classifier import scoring_network
from pdfewshot.nets.faces.finder import NO_FACE, Face, FaceChips
from pdfewshot.nets.inference import InferenceRunner, run_fast
from pdfewshot.reporting.console import err_console
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import face_chips, open_predictor
from pdfewshot.stages.export import read_export_meta
from pdfewshot.stages.faces import find_faces
from pdfewshot.storage.metadata import ExportMeta, PredictorMeta

UNKNOWN = "unknown"
SCORE_RANGES = {
    "max-softmax": (0.0, 1.0, "a probability between 0 and 1"),
    "max-cosine": (-1.0, 1.0, "a cosine between -1 and 1"),
}


@dataclass(frozen=True)
class Prediction:
    image: str
    ranked: list[tuple[str, float]]  # (class, softmax probability), best first
    label: str  # the best class, or "unknown" when its known-score is under the threshold
    rejection: "Rejection | None" = None  # how "unknown" was decided, when asked to
    known_score: float | None = None  # the rejection score's value for this image
    box: tuple[float, float, float, float] | None = None  # the face route: the face's box (left, top, right, bottom)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "image": self.image, "label": self.label,
            "top": [{"class": name, "probability": p} for name, p in self.ranked],
        }  # fmt: skip
        if self.box is not None:
            result["box"] = [round(value, 1) for value in self.box]
        if self.rejection is not None:
            result["rejection"] = {
                "score": self.rejection.score, "threshold": self.rejection.threshold,
                "suggested": self.rejection.suggested, "value": self.known_score,
            }  # fmt: skip
        return result


@dataclass(frozen=True)
class Rejection:
    """How ``predict`` answers "unknown": below ``threshold`` of the ``score`` (pdfewshot.methods.unknown)."""

    score: str
    threshold: float
    suggested: bool  # the threshold stored in the predictor (else one given)
    origin: str = "given"  # how the threshold was chosen (pdfewshot.stages.thresholds)

    def describe(self) -> str:
        return f"answering unknown below {self.threshold:.4f} of {self.score} ({self.origin})"


STORED, NO_REJECTION = "suggested", "none"  # --reject-below: the predictor's own threshold; never "unknown"


def parse_threshold(text: str | None) -> float | str | None:
    """``--reject-below`` as given: None (the stored threshold, when there is one), "suggested", "none" or a
    number."""
    if text in (None, STORED, NO_REJECTION):
        return text
    try:
        return float(text)
    except ValueError:
        raise PdfewshotError(f"{text}: expected a number, 'suggested' or 'none'", "reject_below") from None


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
    """uint8 images -> outputs, with what a caller needs to know of the classifier behind it: its classes
    and input, and for rejection the score its threshold was suggested for. ``scored``: the outputs carry,
    after the logits, the largest cosine to a class prototype (``ScoredPredictor``; not a pair-head
    predictor's)."""

    outputs: Callable[[np.ndarray], np.ndarray]
    class_names: list[str]
    image_size: int
    channels: int
    suggested_reject_below: float | None
    reject_score: str
    scored: bool
    chips: FaceChips | None = None  # the face route: what finds each image's faces
    reject_origin: str | None = None  # how the stored threshold was chosen

    def logits_and_known(self, images: np.ndarray, score: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits of the images and, when ``score`` is given, its value for each image."""
        return self.read(self.outputs(images), score)

    def read(self, outputs: np.ndarray, score: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits and, when ``score`` is given, its value, from outputs of :attr:`outputs`."""
        logits = outputs[:, : len(self.class_names)]
        if score is None:
            return logits, None
        if score == "max-cosine":
            if not self.scored:
                raise PdfewshotError(f"{score}: this predictor keeps no class prototypes", "reject_score")
            return logits, outputs[:, len(self.class_names)]
        return logits, scores_from_logits(score, logits)


def open_scorer(model: Path) -> Scorer:
    """A predictor checkpoint, or an exported folder (run by paddle.inference), as a scorer."""
    if model.is_dir():
        exported = read_export_meta(model)
        runner = InferenceRunner(str(model / exported.program))
        return Scorer(runner, exported.class_names, exported.image_size, exported.channels,
                      exported.suggested_reject_below, exported.reject_score, exported.scored,
                      exported_chips(model, exported), exported.reject_origin)  # fmt: skip
    return predictor_scorer(*open_predictor(model))


def predictor_scorer(predictor: paddle.nn.Layer, meta: PredictorMeta) -> Scorer:
    """An opened predictor checkpoint as a scorer (run by the fast path)."""
    network, scored = scoring_network(predictor)
    return Scorer(partial(run_fast, network), meta.class_names, meta.image_size, meta.channels,
                  meta.suggested_reject_below, meta.reject_score, scored, face_chips(predictor, meta),
                  meta.reject_origin)  # fmt: skip


def exported_chips(folder: Path, exported: ExportMeta) -> FaceChips | None:
    """The face chips an export of a face predictor takes, cut by its own face finder."""
    if exported.face_alignment is None or exported.face_finder is None:
        return None
    try:
        state = paddle.load(str(folder / exported.face_finder))
    except Exception as error:  # Paddle raises assorted types for a damaged or missing file
        raise PdfewshotError(f"{folder / exported.face_finder}: cannot read weights ({type(error).__name__})") from None
    return FaceChips.from_weights(state, exported.face_alignment, folder / exported.face_finder)


def rejection(config: PredictConfig, scorer: Scorer) -> Rejection | None:
    """How to answer "unknown", from ``--reject-below`` and ``--reject-score``; None when not asked to."""
    if config.reject_score is not None:
        check_choice(config.reject_score, REJECT_SCORE_NAMES, "reject_score")
    if config.reject_below == NO_REJECTION:
        return None
    if config.reject_below is None:  # the default: the stored threshold, when it is of the score asked for
        if scorer.suggested_reject_below is None or config.reject_score not in (None, scorer.reject_score):
            return None
        return stored_rejection(scorer)
    if config.reject_below == STORED:
        if scorer.suggested_reject_below is None:
            raise PdfewshotError(
                f"{config.model}: stores no threshold (a pair-bce predictor, a single class, or one image a class "
                f"with --reject-score {scorer.reject_score}); give --reject-below a number",
                "model",
            )
        if config.reject_score not in (None, scorer.reject_score):
            raise PdfewshotError(
                f"{config.reject_score}: the stored threshold is one of {scorer.reject_score}; give a number "
                "with another score",
                "reject_score",
            )
        return stored_rejection(scorer)
    score = config.reject_score or scorer.reject_score
    if isinstance(config.reject_below, str):
        raise PdfewshotError(f"{config.reject_below}: expected a number, 'suggested' or 'none'", "reject_below")
    low, high, what = SCORE_RANGES.get(score, (-np.inf, np.inf, "a number"))
    if not low <= config.reject_below <= high:
        raise PdfewshotError(f"{config.reject_below}: must be {what} for {score}", "reject_below")
    return Rejection(score, float(config.reject_below), suggested=False)


def stored_rejection(scorer: Scorer) -> Rejection:
    """Answering "unknown" below the predictor's own threshold (which must be there)."""
    assert scorer.suggested_reject_below is not None
    origin = f"stored: {scorer.reject_origin}" if scorer.reject_origin else "stored in the predictor"
    return Rejection(scorer.reject_score, scorer.suggested_reject_below, suggested=True, origin=origin)


def predict(config: PredictConfig) -> tuple[list[Prediction], Rejection | None]:
    """Classifies each image with the predictor (probabilities are the softmax of its logits), and
    answers "unknown" where asked to and the rejection score is below its threshold."""
    set_paddle_threads()
    if config.top_k < 1:
        raise PdfewshotError(f"{config.top_k}: must be at least 1", "top_k")
    with about("model"):
        scorer = open_scorer(config.model)
    rule = rejection(config, scorer)
    paths = collect_images(config.inputs)
    if scorer.chips is not None:
        return predict_faces(config, scorer, paths, rule), rule
    images, names, skipped = load_image_files(paths, scorer.image_size, scorer.channels, config.strict)
    _warn_unread(skipped)
    if not names:
        raise PdfewshotError("no readable images to predict")
    logits, known = scorer.logits_and_known(images, rule.score if rule is not None else None)
    return label(names, logits, known, scorer.class_names, config.top_k, rule), rule


def _warn_unread(skipped: Sequence[str]) -> None:
    if skipped:
        err_console.print(
            f"warning: skipped {len(skipped)} of the images (first: {skipped[0]})", markup=False, soft_wrap=True
        )


def predict_faces(
    config: PredictConfig, scorer: Scorer, paths: Sequence[Path], rule: Rejection | None
) -> list[Prediction]:
    """One prediction for every face of each image (largest first, each with its box), and one saying
    "no face found" for an image without any; never a guess."""
    assert scorer.chips is not None, "the face route"
    faces, skipped = find_faces(paths, scorer.chips, scorer.image_size, config.strict)
    _warn_unread(skipped)
    if not faces:
        raise PdfewshotError("no readable images to predict")
    return label_faces(faces, scorer, config.top_k, rule)


def label_faces(
    faces: Sequence[tuple[str, list[Face]]], scorer: Scorer, top_k: int, rule: Rejection | None
) -> list[Prediction]:
    """Predictions for the faces of each named image, in order, each with its box; "no face found" for an
    image with none. All faces are scored in one pass."""
    found = [(name, face) for name, image_faces in faces for face in image_faces]
    labelled: list[Prediction] = []
    if found:
        chips = np.stack([face.chip for _, face in found])
        logits, known = scorer.logits_and_known(chips, rule.score if rule is not None else None)
        labelled = label([name for name, _ in found], logits, known, scorer.class_names, top_k, rule)
    answers = iter(replace(prediction, box=face.box) for (_, face), prediction in zip(found, labelled, strict=True))
    return [
        prediction
        for name, image_faces in faces
        for prediction in ([next(answers) for _ in image_faces] or [Prediction(name, [], NO_FACE)])
    ]


def label(
    names: Sequence[str],
    logits: np.ndarray,
    known: np.ndarray | None,
    classes: Sequence[str],
    top_k: int,
    rule: Rejection | None,
) -> list[Prediction]:
    """Predictions from the logits of the images ``names`` (probabilities are their softmax) and, under
    ``rule``, "unknown" where the rejection score ``known`` is below its threshold."""
    if not len(names):
        return []
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    k = min(top_k, len(classes))
    results = []
    for i, (name, row) in enumerate(zip(names, probabilities, strict=True)):
        order = np.argsort(-row, kind="stable")[:k]
        ranked = [(classes[c], float(row[c])) for c in order]
        value = None if known is None else float(known[i])
        rejected = rule is not None and value is not None and value < rule.threshold
        results.append(Prediction(name, ranked, UNKNOWN if rejected else ranked[0][0], rule, value))
    return results

"""Stage 3: accuracy of a predictor on the held-out query images, per class and overall."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from pdfewshot.config import PredictConfig, QueryTestConfig
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.reporting.console import ClassAccuracy
from pdfewshot.reporting.plots import accuracy_pictures
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import face_chips, load_checkpoint_data, open_predictor, require_classes
from pdfewshot.stages.predict import Rejection, predictor_scorer, rejection
from pdfewshot.storage.atomic import read_json, write_json
from pdfewshot.storage.metadata import PredictorMeta, QueryManifest


@dataclass
class QueryTestResult:
    __test__ = False

    per_class: list[ClassAccuracy]
    predictions: np.ndarray
    labels: np.ndarray
    rejection: Rejection | None = None  # the predictor's stored threshold, which predict applies by default
    known_scores: np.ndarray | None = None  # each query's value of that threshold's score

    @property
    def overall(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else 0.0

    def _stored(self) -> tuple[np.ndarray, float] | None:
        """Each query's score and the stored threshold (None without one)."""
        if self.rejection is None or self.known_scores is None or not len(self.labels):
            return None
        return self.known_scores, self.rejection.threshold

    @property
    def unknown_share(self) -> float | None:
        """The share of queries ``predict`` would answer "unknown" (below the stored threshold)."""
        stored = self._stored()
        return None if stored is None else float(np.mean(stored[0] < stored[1]))

    @property
    def right_and_known(self) -> float | None:
        """The share of queries ``predict`` would answer with their own class (not "unknown")."""
        stored = self._stored()
        return None if stored is None else float(np.mean((self.predictions == self.labels) & (stored[0] >= stored[1])))

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "queries": len(self.labels),
            "stored_threshold": None
            if self.rejection is None
            else {
                "score": self.rejection.score,
                "threshold": self.rejection.threshold,
                "origin": self.rejection.origin,
                "unknown": self.unknown_share,
                "right_and_not_unknown": self.right_and_known,
            },
            "per_class": [
                {"class": r.name, "queries": r.queries, "correct": r.correct, "accuracy": r.accuracy}
                for r in self.per_class
            ],
        }


def manifest_path(model: Path, meta: PredictorMeta) -> Path:
    return model.with_name(meta.queries_manifest)


def read_manifest(model: Path, meta: PredictorMeta) -> QueryManifest:
    """The predictor's query manifest, checked to list the predictor's classes."""
    path = manifest_path(model, meta)
    if not path.is_file():
        raise PdfewshotError(f"{model}: its query manifest {path.name} is missing")
    manifest = QueryManifest.from_json(read_json(path), str(path))
    if manifest.classes != meta.class_names:
        raise PdfewshotError(f"{path}: its classes do not match the predictor {model.name}")
    return manifest


@paddle.no_grad()  # type: ignore[untyped-decorator]
def run_test(config: QueryTestConfig) -> QueryTestResult:
    """Scores the predictor's held-out queries; writes the JSON report when ``config.report`` is set."""
    set_paddle_threads()
    with about("model"):
        predictor, meta = open_predictor(config.model)
        manifest = read_manifest(config.model, meta)
    imageset, _, _ = load_checkpoint_data(meta, config.data, config.strict, face_chips(predictor, meta))
    # Classes added later with `support add` have no held-out queries; only queried classes must be here.
    require_classes(imageset, sorted({q.class_name for q in manifest.queries}), f"--model {config.model}")
    position = {key: i for i, key in enumerate(imageset.keys)}
    missing = [q.key for q in manifest.queries if q.key not in position]
    if missing:
        raise PdfewshotError(f"{len(missing)} query images of the manifest are not in the data, e.g. {missing[0]}")
    class_index = {name: i for i, name in enumerate(meta.class_names)}
    indices = np.array([position[q.key] for q in manifest.queries], dtype=np.int64)
    labels = np.array([class_index[q.class_name] for q in manifest.queries], dtype=np.int64)

    images = imageset.images[indices]
    scorer = predictor_scorer(predictor, meta)
    rule = rejection(PredictConfig(model=config.model), scorer)
    logits, known = scorer.logits_and_known(images, rule.score if rule else None) if len(images) else (None, None)
    predictions = logits.argmax(axis=1) if logits is not None else np.zeros(0, dtype=np.int64)
    per_class = [
        ClassAccuracy(name, int(np.sum(labels == c)), int(np.sum((labels == c) & (predictions == c))))
        for c, name in enumerate(meta.class_names)
    ]
    result = QueryTestResult(per_class, predictions, labels, rule, known)
    if config.report is not None:
        with about("report"):
            write_json(config.report, result.to_json())
    if config.plots:
        stem = (config.report or config.model).with_suffix("")
        with about("report"):
            accuracy_pictures(labels, predictions, meta.class_names, stem, config.model.name)
    return result

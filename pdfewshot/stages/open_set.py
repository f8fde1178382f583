"""Open-set episodes for ``evaluate --open-set``: how well each unknown score tells the known classes'
queries from queries of classes without support images.

Each episode draws N known classes (with support images) and M unknown ones (queries only). For every
method, shot and score (:mod:`pdfewshot.methods.unknown`) it measures: the accuracy on the known queries
(closed set), the AUROC of the score (known vs unknown queries), the share of unknown queries accepted
when 95% of the known ones are (false accepts at 95%), and with two or more shots the accuracy when
both count, at the threshold suggested from the support set for ``reject_rate``: a known query is right
when accepted and classified right, an unknown one when rejected. Scores that read logits take the
method's own (the prototype method's cosines scaled as the cosine classifier scales them); the cosine
scores compare the embeddings with the class prototypes, which a fine-tuned predictor keeps beside its
tuned weights for this.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pdfewshot.config import DEFAULT_REJECT_SCORE, EvaluateConfig
from pdfewshot.data.episodes import confidence_interval, sample_episodes
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.views import ViewedFeatures
from pdfewshot.errors import PdfewshotError
from pdfewshot.methods import FewShotClassifier
from pdfewshot.methods.unknown import (
    UNKNOWN_SCORES,
    Evidence,
    auroc,
    false_accept_rate,
    held_out_folds,
    prototypes_of,
    suggest_threshold,
)
from pdfewshot.reporting.console import loss_progress


@dataclass
class OpenSetResult:
    """One method, shot and score: a value per episode of each measure."""

    method: str
    way: int
    unknown_way: int
    shot: int
    score: str
    closed: list[float] = field(default_factory=list)
    auroc: list[float] = field(default_factory=list)
    false_accepts: list[float] = field(default_factory=list)
    open_accuracy: list[float] = field(default_factory=list)  # empty with one shot: no threshold to suggest
    thresholds: list[float] = field(default_factory=list)
    known_scores: list[float] = field(default_factory=list)  # pooled over episodes, for the histogram
    unknown_scores: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.method}, {self.way}+{self.unknown_way}-way {self.shot}-shot, {self.score}"

    def summary(self, values: list[float]) -> tuple[float, float] | None:
        return (float(np.mean(values)), confidence_interval(np.array(values))) if values else None

    def to_json(self) -> dict[str, Any]:
        measures = {
            "closed_accuracy": self.closed, "auroc": self.auroc, "false_accepts_at_95": self.false_accepts,
            "open_accuracy": self.open_accuracy,
        }  # fmt: skip
        return {
            "method": self.method, "way": self.way, "unknown_way": self.unknown_way, "shot": self.shot,
            "score": self.score, "episodes": len(self.closed),
            **{name: (None if (s := self.summary(v)) is None else {"mean": s[0], "interval95": s[1]})
               for name, v in measures.items()},
            "mean_threshold": float(np.mean(self.thresholds)) if self.thresholds else None,
        }  # fmt: skip


def check_unknown_way(config: EvaluateConfig, labels: np.ndarray) -> int:
    """``--unknown-way`` (default: the known way), checked against the classes the episodes can draw."""
    unknown_way = config.way if config.unknown_way is None else config.unknown_way
    if unknown_way < 1:
        raise PdfewshotError(f"{unknown_way}: must be at least 1", "unknown_way")
    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    eligible = int(np.sum(counts >= max(config.shot) + config.query))
    if config.way + unknown_way > eligible:
        raise PdfewshotError(
            f"{unknown_way}: only {max(eligible - config.way, 0)} classes are left after the {config.way} known ones "
            f"(with {max(config.shot) + config.query} images each)",
            "unknown_way",
        )
    return unknown_way


def evaluate_open_set(
    config: EvaluateConfig, imageset: ImageSet, features: ViewedFeatures, methods: dict[str, FewShotClassifier]
) -> list[OpenSetResult]:
    """Every embedding method and score on the same seeded open-set episodes (see the module doc)."""
    unknown_way = check_unknown_way(config, imageset.labels)
    way = config.way
    episodes = sample_episodes(
        imageset.labels, way + unknown_way, max(config.shot), config.query, config.episodes, config.seed
    )
    query_index = np.stack([episode.query.ravel() for episode in episodes])
    query_labels = np.repeat(np.arange(way + unknown_way), config.query)
    known = query_labels < way
    queries = features.queries(query_index)  # [E, q, d]
    results: list[OpenSetResult] = []
    shots = sorted(set(config.shot))
    chosen = {name: method for name, method in methods.items() if method.uses_embedding}
    label = f"{DEFAULT_REJECT_SCORE} AUROC"
    with loss_progress("open set", len(chosen) * len(shots), config.show_progress, label=label) as progress:
        for shot in shots:
            support_index = np.stack([episode.support[:way, :shot].ravel() for episode in episodes])
            support_labels = np.repeat(np.arange(way), shot)
            support, labels = features.support(support_index, np.tile(support_labels, (len(episodes), 1)))
            for name, method in chosen.items():
                scores = method.episode_scores(support, labels, way, queries)
                logits = scores if method.scores_are_logits else config.scale * scores
                # A fitted classifier's logit scores take their threshold from fits without each fold (every
                # episode's support has the same layout, so the folds are the same and fit together).
                folds = held_out_folds(labels[0], way) if method.scores_are_logits else []
                fold_logits = [method.episode_scores(support[:, ~out], labels[:, ~out], way, support[:, out])
                               for out in folds]  # fmt: skip
                rows = {score: OpenSetResult(name, way, unknown_way, shot, score) for score in UNKNOWN_SCORES}
                for e in range(len(episodes)):
                    vectors = prototypes_of(support[e], labels[e], way)
                    evidence = Evidence(logits[e], queries[e], vectors, support[e], labels[e])
                    right = logits[e].argmax(axis=1) == query_labels
                    fitted = [fold[e] for fold in fold_logits] if folds else None
                    for score, row in rows.items():
                        values = UNKNOWN_SCORES[score](evidence)
                        row.closed.append(float(right[known].mean()))
                        row.auroc.append(auroc(values[known], values[~known]))
                        row.false_accepts.append(false_accept_rate(values[known], values[~known]))
                        row.known_scores += values[known].tolist()
                        row.unknown_scores += values[~known].tolist()
                        threshold = suggest_threshold(score, support[e], labels[e], way, config.scale,
                                                      config.reject_rate, fitted)  # fmt: skip
                        if threshold is not None:
                            accepted = values >= threshold
                            hits = np.where(known, accepted & right, ~accepted)
                            row.open_accuracy.append(float(hits.mean()))
                            row.thresholds.append(threshold)
                results += rows.values()
                progress.update(float(np.mean(rows[DEFAULT_REJECT_SCORE].auroc)))
    return results

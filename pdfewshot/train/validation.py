"""Validation during pretraining: few-shot episodes on classes kept out of the gradient steps.

What pretraining is for is telling apart classes it has not seen from a few images each, so that is
what is measured: seeded N-way K-shot episodes on the validation classes, scored by the nearest
prototype (Snell et al. 2017) on embeddings of the validation images. The episodes are drawn once, so
every evaluation during a run scores the very same ones.

Training follows the mean log-probability of the right class (a softmax over the cosines to the
prototypes at the cosine classifier's scale, the classifier ``finetune`` starts from), not the accuracy:
on a few validation classes accuracy reaches 1.0 early and then cannot tell a better embedding from a
worse one, while the right class's probability keeps moving. The accuracy is reported beside it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from paddle import nn

from pdfewshot.data.episodes import sample_episodes
from pdfewshot.data.imageset import LabelledRows
from pdfewshot.methods.prototype import PrototypeClassifier
from pdfewshot.nets.classifier import COSINE_SCALE

MEASURE = "mean log-probability of the right class"

Embedder = Callable[[nn.Layer, Any], np.ndarray]  # (network, its input rows: images or features) -> embeddings


@dataclass(frozen=True)
class ValidationScore:
    """One validation: ``log_prob`` (what best weights and patience follow; at most 0) and the accuracy."""

    log_prob: float
    accuracy: float


def right_class_log_prob(scores: np.ndarray, labels: np.ndarray, scale: float = COSINE_SCALE) -> float:
    """Mean log-probability of the right class under a softmax over ``scale`` times the cosines ``scores``
    (``[..., classes]``; ``labels`` of the leading shape)."""
    logits = scale * scores.astype(np.float64)
    peak = logits.max(axis=-1, keepdims=True)
    log_norm = peak[..., 0] + np.log(np.exp(logits - peak).sum(axis=-1))
    right = np.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return float(np.mean(right - log_norm))


@dataclass
class EpisodeValidator:
    """The prototype method on fixed episodes of ``images``' classes: mean log-probability of the right
    class and accuracy."""

    images: LabelledRows
    embedder: Embedder
    way: int = 5
    shot: int = 1
    query: int = 5
    episodes: int = 200
    seed: int = 0
    _support: np.ndarray = field(init=False, repr=False)
    _support_labels: np.ndarray = field(init=False, repr=False)
    _queries: np.ndarray = field(init=False, repr=False)
    _query_labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.bincount(self.images.labels, minlength=self.images.num_classes)
        usable = int(np.sum(counts >= self.shot + 1))
        self.way = min(self.way, usable)
        self.query = max(1, min(self.query, int(np.min(counts[counts >= self.shot + 1])) - self.shot))
        drawn = sample_episodes(self.images.labels, self.way, self.shot, self.query, self.episodes, self.seed)
        self._support = np.stack([e.support_at(self.shot)[0] for e in drawn])
        self._support_labels = np.stack([e.support_at(self.shot)[1] for e in drawn])
        self._queries = np.stack([e.queries()[0] for e in drawn])
        self._query_labels = np.stack([e.queries()[1] for e in drawn])

    @property
    def description(self) -> str:
        return f"{self.way}-way {self.shot}-shot, {len(self._support)} episodes of {self.images.num_classes} classes"

    def __call__(self, net: nn.Layer) -> ValidationScore:
        embeddings = self.embedder(net, self.images.images)
        scores = PrototypeClassifier().episode_scores(
            embeddings[self._support], self._support_labels, self.way, embeddings[self._queries]
        )
        accuracy = float(np.mean(scores.argmax(axis=2) == self._query_labels))
        return ValidationScore(right_class_log_prob(scores, self._query_labels), accuracy)

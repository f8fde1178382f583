"""The contract every few-shot method keeps (the shape of easyfsl's ``FewShotClassifier``)."""

from abc import ABC, abstractmethod

import numpy as np


def class_maxima(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[queries, classes]``: for each class, the best of its support images' ``scores [queries, support]``
    (-inf for a class without support images)."""
    result = np.full((len(scores), num_classes), -np.inf, dtype=np.float32)
    for c in range(num_classes):
        members = labels == c
        if members.any():
            result[:, c] = scores[:, members].max(axis=1)
    return result


class FewShotClassifier(ABC):
    """Fit on the support set's features, then score query features: ``[queries, classes]``.

    ``uses_embedding`` says whether the features are the embedding network's outputs (True) or the
    raw pixels (False), so an evaluator can feed each method what it needs; ``scores_are_logits``
    whether the scores are logits.
    """

    uses_embedding: bool = True
    # Whether scores are a classifier's logits (their softmax is its class probabilities); the
    # prototype method's are cosines, which the cosine classifier scales before its softmax.
    scores_are_logits: bool = True

    @abstractmethod
    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        """Learns from support features ``[n, d]`` with labels in ``0..num_classes-1``."""

    @abstractmethod
    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Higher is more likely: one row per query, one column per class."""

    def predict(self, queries: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores(queries).argmax(axis=1))

    def episode_scores(
        self, support: np.ndarray, labels: np.ndarray, num_classes: int, queries: np.ndarray
    ) -> np.ndarray:
        """Scores ``[E, q, classes]`` of many episodes (``support [E, n, d]``, ``queries [E, q, d]``).

        Fits each episode in turn; methods that can fit episodes together override this.
        """
        rows = []
        for episode_support, episode_labels, episode_queries in zip(support, labels, queries, strict=True):
            self.fit(episode_support, episode_labels, num_classes)
            rows.append(self.scores(episode_queries))
        return np.stack(rows)

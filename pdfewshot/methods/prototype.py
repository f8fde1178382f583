"""Nearest normalised prototype (Snell et al. 2017, "Prototypical Networks for Few-shot Learning").

With cosine similarity on L2-normalised embeddings, as the cosine classifier uses before training.
"""

import numpy as np

from pdfewshot.methods.base import FewShotClassifier


def normalise(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12))


class PrototypeClassifier(FewShotClassifier):
    """Scores a query by its cosine to each class's normalised mean support embedding."""

    scores_are_logits = False

    def __init__(self) -> None:
        self.prototypes = np.zeros((0, 0), dtype=np.float32)

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        sums = np.zeros((num_classes, support.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, support)
        self.prototypes = normalise(sums)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        return np.asarray(normalise(queries) @ self.prototypes.T)

"""1-nearest-neighbour on raw pixels: the classic baseline (21.7% on Omniglot's 20 runs, Koch et al. 2015)."""

import numpy as np

from pdfewshot.methods.base import FewShotClassifier, class_maxima


class PixelNearestNeighbour(FewShotClassifier):
    """Scores a query by minus its Euclidean distance to the nearest support image of each class."""

    uses_embedding = False
    scores_are_logits = False

    def __init__(self) -> None:
        self.support = np.zeros((0, 0), dtype=np.float32)
        self.labels = np.zeros(0, dtype=np.int64)
        self.num_classes = 0

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self.support = support.reshape(len(support), -1).astype(np.float32)
        self.labels, self.num_classes = labels, num_classes

    def scores(self, queries: np.ndarray) -> np.ndarray:
        flat = queries.reshape(len(queries), -1).astype(np.float32)
        squared = (flat**2).sum(1)[:, None] - 2 * flat @ self.support.T + (self.support**2).sum(1)[None, :]
        return class_maxima(-np.sqrt(np.maximum(squared, 0.0)), self.labels, self.num_classes)

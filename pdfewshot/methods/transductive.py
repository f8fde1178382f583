"""Transductive fine-tuning (Dhillon et al. 2020, "A Baseline for Few-Shot Image Classification").

The prototype-initialised cosine classifier of ``finetune``, trained with cross-entropy on the
support set plus the entropy of its predictions on the episode's unlabelled queries: the queries
pull the class weights towards where they cluster. It needs the queries to fit, so ``fit`` only
keeps the support set and the fitting happens in ``scores``.
"""

import numpy as np
import paddle

from pdfewshot.methods.finetune import FinetuneClassifier


class TransductiveFinetuneClassifier(FinetuneClassifier):
    """``entropy_weight`` weighs the entropy of the predictions on the episode's queries."""

    def __init__(self, steps: int = 100, lr: float = 0.01, entropy_weight: float = 0.1, scale: float = 10.0) -> None:
        super().__init__(steps, lr, entropy_weight, scale)
        self.support: tuple[np.ndarray, np.ndarray, int] | None = None

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self.support = (support, labels, num_classes)

    def entropy_points(self, queries: paddle.Tensor) -> paddle.Tensor | None:
        return queries

    def scores(self, queries: np.ndarray) -> np.ndarray:
        if self.support is None:
            raise RuntimeError("fit before scores")
        support, labels, num_classes = self.support
        return np.asarray(self.episode_scores(support[None], labels[None], num_classes, queries[None])[0])

"""One-shot classification with a learnt pair head (Koch, Zemel and Salakhutdinov 2015, "Siamese
Neural Networks for One-shot Image Recognition"): each query is scored against each support image,
and a class scores as its most similar support image."""

import numpy as np
import paddle

from pdfewshot.methods.base import FewShotClassifier, class_maxima
from pdfewshot.nets.pair_head import PairHead


class PairHeadClassifier(FewShotClassifier):
    def __init__(self, head: PairHead) -> None:
        self.head = head
        self.support = np.zeros((0, 0), dtype=np.float32)
        self.labels = np.zeros(0, dtype=np.int64)
        self.num_classes = 0

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self.support, self.labels, self.num_classes = support.astype(np.float32), labels, num_classes

    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def scores(self, queries: np.ndarray) -> np.ndarray:
        logits = self.head.pairwise(paddle.to_tensor(queries.astype(np.float32)), paddle.to_tensor(self.support))
        return class_maxima(logits.numpy(), self.labels, self.num_classes)

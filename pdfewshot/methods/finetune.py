"""The prototype-initialised cosine classifier, fine-tuned on the support set per episode.

The same classifier and loss as ``pdfewshot finetune`` (cross-entropy plus entropy; Dhillon et al.
2020), on frozen embeddings.
"""

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.finetuning import fit_episodes, fit_on_features
from pdfewshot.methods.base import FewShotClassifier
from pdfewshot.nets.classifier import CosineClassifier


class FinetuneClassifier(FewShotClassifier):
    transductive = False  # whether the entropy term is taken on the episode's queries (see subclass)

    def __init__(self, steps: int = 100, lr: float = 0.01, entropy_weight: float = 0.1, scale: float = 10.0) -> None:
        self.steps, self.lr, self.entropy_weight, self.scale = steps, lr, entropy_weight, scale
        self.classifier: CosineClassifier | None = None

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        features = paddle.to_tensor(support.astype(np.float32))
        self.classifier, _ = fit_on_features(
            features, labels, num_classes, self.steps, self.lr, self.entropy_weight, self.scale
        )

    def episode_scores(
        self, support: np.ndarray, labels: np.ndarray, num_classes: int, queries: np.ndarray
    ) -> np.ndarray:
        """All episodes fitted at once (see :func:`fit_episodes`): the same result, many times faster."""
        queries_tensor = paddle.to_tensor(queries.astype(np.float32))
        weight, bias, _ = fit_episodes(
            paddle.to_tensor(support.astype(np.float32)), labels, num_classes,
            self.steps, self.lr, self.entropy_weight, self.scale,
            unlabelled=queries_tensor if self.transductive else None,
        )  # fmt: skip
        logits = self.scale * paddle.bmm(F.normalize(queries_tensor, axis=2), weight.transpose([0, 2, 1]))
        return np.asarray((logits + bias[:, None, :]).numpy())

    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def scores(self, queries: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError("fit before scores")
        return np.asarray(self.classifier(paddle.to_tensor(queries.astype(np.float32))).numpy())

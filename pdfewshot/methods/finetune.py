"""The prototype-initialised cosine classifier, fine-tuned on the support set per episode.

The same classifier and loss as ``pdfewshot finetune`` (cross-entropy plus entropy; Dhillon et al.
2020, "A Baseline for Few-Shot Image Classification"), on frozen embeddings.
"""

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.methods.base import FewShotClassifier
from pdfewshot.methods.fitting import FitSettings, fit_episodes, fit_on_features
from pdfewshot.nets.classifier import CosineClassifier


class FinetuneClassifier(FewShotClassifier):
    """Cosine classifier, W started at the prototypes, ``steps`` Adam steps of cross-entropy plus
    ``entropy_weight`` times the support set's softmax entropy."""

    def __init__(self, steps: int = 100, lr: float = 0.01, entropy_weight: float = 0.1, scale: float = 10.0) -> None:
        self.settings = FitSettings(steps=steps, lr=lr, entropy_weight=entropy_weight, scale=scale)
        self.classifier: CosineClassifier | None = None

    def fit(self, support: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        features = paddle.to_tensor(support.astype(np.float32))
        self.classifier, _ = fit_on_features(features, labels, num_classes, settings=self.settings)

    def entropy_points(self, queries: paddle.Tensor) -> paddle.Tensor | None:
        """Features whose softmax entropy the fit lowers besides the support's cross-entropy: None means
        the support set itself (inductive fine-tuning)."""
        return None

    def episode_scores(
        self, support: np.ndarray, labels: np.ndarray, num_classes: int, queries: np.ndarray
    ) -> np.ndarray:
        """All episodes fitted at once (see :func:`fit_episodes`): the same result, many times faster."""
        queries_tensor = paddle.to_tensor(queries.astype(np.float32))
        weight, bias, _ = fit_episodes(
            paddle.to_tensor(support.astype(np.float32)),
            labels,
            num_classes,
            settings=self.settings,
            unlabelled=self.entropy_points(queries_tensor),
        )
        logits = self.settings.scale * paddle.bmm(F.normalize(queries_tensor, axis=2), weight.transpose([0, 2, 1]))
        return np.asarray((logits + bias[:, None, :]).numpy())

    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def scores(self, queries: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError("fit before scores")
        return np.asarray(self.classifier(paddle.to_tensor(queries.astype(np.float32))).numpy())

"""Fitting the prototype-initialised cosine classifier to a support set.

With the embedding frozen (the default) the support embeddings are computed once and only W and b
train, on those cached features; with the backbone unfrozen the images go through the network at
every step, batch-norm statistics kept fixed because a few-shot support set is too small to estimate
them.
"""

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.losses import softmax_entropy
from pdfewshot.nets.classifier import CosineClassifier, prototypes
from pdfewshot.nets.embedding import EmbeddingNet, embed, to_input
from pdfewshot.report import loss_progress


def classifier_loss(logits: paddle.Tensor, labels: paddle.Tensor, entropy_weight: float) -> paddle.Tensor:
    """Cross-entropy plus ``entropy_weight`` times the mean softmax entropy."""
    loss = F.cross_entropy(logits, labels)
    if entropy_weight:
        loss = loss + entropy_weight * softmax_entropy(logits)
    return loss


def fit_on_features(
    features: paddle.Tensor,
    labels: np.ndarray,
    num_classes: int,
    steps: int,
    lr: float,
    entropy_weight: float,
    scale: float,
    show_progress: bool = False,
) -> tuple[CosineClassifier, list[float]]:
    """A cosine classifier started at the class prototypes, then trained for ``steps`` full-batch steps."""
    label_tensor = paddle.to_tensor(labels, dtype="int64")
    classifier = CosineClassifier.from_prototypes(prototypes(features, label_tensor, num_classes), scale)
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=classifier.parameters())
    losses: list[float] = []
    with loss_progress("finetune", steps, show_progress) as progress:
        for _ in range(steps):
            loss = classifier_loss(classifier(features), label_tensor, entropy_weight)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(loss.item())
            progress.update(losses[-1])
    return classifier, losses


def fit_with_backbone(
    net: EmbeddingNet,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    steps: int,
    lr: float,
    backbone_lr: float,
    entropy_weight: float,
    scale: float,
    show_progress: bool = False,
) -> tuple[CosineClassifier, list[float]]:
    """Like :func:`fit_on_features`, but the embedding network trains too (at ``backbone_lr``)."""
    label_tensor = paddle.to_tensor(labels, dtype="int64")
    classifier = CosineClassifier.from_prototypes(prototypes(embed(net, images), label_tensor, num_classes), scale)
    optimizer = paddle.optimizer.Adam(
        learning_rate=lr,
        parameters=[
            {"params": classifier.parameters()},
            {"params": net.parameters(), "learning_rate": backbone_lr / lr},
        ],
    )
    inputs = to_input(images)
    net.eval()  # batch-norm statistics stay fixed; gradients still flow
    losses: list[float] = []
    with loss_progress("finetune", steps, show_progress) as progress:
        for _ in range(steps):
            loss = classifier_loss(classifier(net(inputs)), label_tensor, entropy_weight)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(loss.item())
            progress.update(losses[-1])
    return classifier, losses

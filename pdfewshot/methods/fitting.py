"""Fitting the prototype-initialised cosine classifier to a support set.

With the embedding frozen (the default) the support embeddings are computed once and only W and b
train, on those cached features; with the backbone unfrozen the images go through the network at
every step, batch-norm statistics kept fixed because a few-shot support set is too small to estimate
them. Progress is reported through an optional callback (one call per step with its loss), so this
room knows nothing of how it is shown.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.methods.unknown import held_out_folds
from pdfewshot.nets.classifier import COSINE_SCALE, CosineClassifier, prototypes, softmax_entropy
from pdfewshot.nets.embedding import EmbeddingNet, embed, to_input

StepCallback = Callable[[float], None]


@dataclass(frozen=True)
class FitSettings:
    """How the cosine classifier is fitted (Dhillon et al. 2020's fine-tuning on the support set).

    ``scale`` fixes the logits' scale: ``logits = scale * cos(w, q) + b``; cosines lie in [-1, 1], and
    without it the softmax is too flat to train (Chen et al. 2019).
    """

    steps: int = 100
    lr: float = 0.01
    entropy_weight: float = 0.1
    scale: float = COSINE_SCALE
    backbone_lr: float = 1e-4  # with fit_with_backbone only


def classifier_loss(logits: paddle.Tensor, labels: paddle.Tensor, entropy_weight: float) -> paddle.Tensor:
    """Cross-entropy plus ``entropy_weight`` times the mean softmax entropy."""
    loss = F.cross_entropy(logits, labels)
    if entropy_weight:
        loss = loss + entropy_weight * softmax_entropy(logits)
    return loss


def fit_episodes(
    features: paddle.Tensor,
    labels: np.ndarray,
    num_classes: int,
    *,
    settings: FitSettings,
    unlabelled: paddle.Tensor | None = None,
    on_step: StepCallback | None = None,
) -> tuple[paddle.Tensor, paddle.Tensor, list[float]]:
    """Fits one cosine classifier per episode, all at once: ``features [E, n, d]``, ``labels [E, n]``.

    Returns W ``[E, classes, d]`` (normalised), b ``[E, classes]`` and the mean loss per step. The loss
    is the sum over episodes of each episode's loss, so each episode's W and b get exactly the
    gradient they would get alone, and Adam, being elementwise, moves them exactly as alone.

    With ``unlabelled`` features ``[E, m, d]`` (an episode's queries) the entropy term is taken on
    their predictions instead of the support's: Dhillon et al. (2020)'s transductive fine-tuning.
    """
    episodes = features.shape[0]
    label_tensor = paddle.to_tensor(labels, dtype="int64")
    one_hot = F.one_hot(label_tensor, num_classes).astype(features.dtype)  # [E, n, C]
    weight = paddle.create_parameter([episodes, num_classes, features.shape[2]], "float32")
    weight.set_value(F.normalize(paddle.bmm(one_hot.transpose([0, 2, 1]), features), axis=2))
    bias = paddle.create_parameter([episodes, num_classes], "float32", is_bias=True)
    bias.set_value(paddle.zeros([episodes, num_classes]))
    support = F.normalize(features, axis=2)
    others = None if unlabelled is None else F.normalize(unlabelled, axis=2)
    optimizer = paddle.optimizer.Adam(learning_rate=settings.lr, parameters=[weight, bias])

    def logits_of(points: paddle.Tensor) -> paddle.Tensor:
        logits = settings.scale * paddle.bmm(points, F.normalize(weight, axis=2).transpose([0, 2, 1]))
        return (logits + bias[:, None, :]).reshape([-1, num_classes])

    losses: list[float] = []
    for _ in range(settings.steps):
        if others is None:
            loss = classifier_loss(logits_of(support), label_tensor.reshape([-1]), settings.entropy_weight)
        else:
            loss = F.cross_entropy(logits_of(support), label_tensor.reshape([-1]))
            loss = loss + settings.entropy_weight * softmax_entropy(logits_of(others))
        (loss * episodes).backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(losses[-1])
    return F.normalize(weight.detach(), axis=2), bias.detach(), losses


def fit_on_features(
    features: paddle.Tensor,
    labels: np.ndarray,
    num_classes: int,
    *,
    settings: FitSettings,
    on_step: StepCallback | None = None,
) -> tuple[CosineClassifier, list[float]]:
    """A cosine classifier started at the class prototypes, then trained for ``settings.steps`` full-batch steps."""
    weight, bias, losses = fit_episodes(features[None], labels[None], num_classes, settings=settings, on_step=on_step)
    classifier = CosineClassifier.from_prototypes(weight[0], settings.scale)
    classifier.bias.set_value(bias[0])
    return classifier, losses


def fit_with_backbone(
    net: EmbeddingNet,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    settings: FitSettings,
    on_step: StepCallback | None = None,
) -> tuple[CosineClassifier, list[float]]:
    """Like :func:`fit_on_features`, but the embedding network trains too (at ``settings.backbone_lr``)."""
    label_tensor = paddle.to_tensor(labels, dtype="int64")
    classifier = CosineClassifier.from_prototypes(
        prototypes(embed(net, images), label_tensor, num_classes), settings.scale
    )
    optimizer = paddle.optimizer.Adam(
        learning_rate=settings.lr,
        parameters=[
            {"params": classifier.parameters()},
            {"params": net.parameters(), "learning_rate": settings.backbone_lr / settings.lr},
        ],
    )
    inputs = to_input(images)
    net.eval()  # batch-norm statistics stay fixed; gradients still flow
    losses: list[float] = []
    for _ in range(settings.steps):
        loss = classifier_loss(classifier(net(inputs)), label_tensor, settings.entropy_weight)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(losses[-1])
    return classifier, losses


def held_out_logits(
    features: np.ndarray, labels: np.ndarray, num_classes: int, *, settings: FitSettings
) -> list[np.ndarray]:
    """For each fold of :func:`~pdfewshot.methods.unknown.held_out_folds`, the logits of its images by a
    classifier fitted as :func:`fit_on_features` fits one, on the other images: what a logit score's
    threshold is chosen from (:func:`~pdfewshot.methods.unknown.suggest_threshold`)."""
    logits = []
    for out in held_out_folds(labels, num_classes):
        classifier, _ = fit_on_features(
            paddle.to_tensor(features[~out].astype(np.float32)), labels[~out], num_classes, settings=settings
        )
        with paddle.no_grad():
            logits.append(np.asarray(classifier(paddle.to_tensor(features[out].astype(np.float32))).numpy()))
    return logits

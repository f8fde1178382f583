"""The cosine classifier whose weights start as class prototypes.

logits_i = scale * cos(w_i, q) + b_i. With W set to the normalised mean embedding of each support
class (its prototype, Snell et al. 2017) and b = 0 it classifies as nearest prototype before any
training; fine-tuning then moves W and b with cross-entropy plus an entropy penalty (Dhillon et al.
2020, "A Baseline for Few-Shot Image Classification"). Cosine scores lie in [-1, 1], so a fixed
``scale`` (default 10) sharpens the softmax enough for cross-entropy to train (Chen et al. 2019).
"""

import paddle
import paddle.nn.functional as F
from paddle import nn

COSINE_SCALE = 10.0  # logits = scale * cosine: enough for cross-entropy to train


def softmax_entropy(logits: paddle.Tensor) -> paddle.Tensor:
    """Mean Shannon entropy (nats) of the softmax of each row: low when predictions are confident."""
    log_probs = F.log_softmax(logits, axis=1)
    return -(log_probs.exp() * log_probs).sum(axis=1).mean()


def prototypes(embeddings: paddle.Tensor, labels: paddle.Tensor, num_classes: int) -> paddle.Tensor:
    """The L2-normalised mean embedding of each class, ``[num_classes, dim]``."""
    one_hot = F.one_hot(labels.astype("int64"), num_classes).astype(embeddings.dtype)
    sums = one_hot.t() @ embeddings
    return F.normalize(sums, axis=1)


class CosineClassifier(nn.Layer):  # type: ignore[misc]
    """Scores embeddings against one weight vector per class by cosine similarity, plus a bias."""

    def __init__(self, num_classes: int, embedding_dim: int, scale: float = COSINE_SCALE) -> None:
        super().__init__()
        self.scale = scale
        self.weight = self.create_parameter([num_classes, embedding_dim])
        self.bias = self.create_parameter([num_classes], is_bias=True)

    @classmethod
    def from_prototypes(cls, prototype_matrix: paddle.Tensor, scale: float = COSINE_SCALE) -> "CosineClassifier":
        """A classifier with W = the given (normalised) prototypes and b = 0."""
        classifier = cls(prototype_matrix.shape[0], prototype_matrix.shape[1], scale)
        classifier.weight.set_value(F.normalize(prototype_matrix, axis=1))
        classifier.bias.set_value(paddle.zeros_like(classifier.bias))
        return classifier

    def cosines(self, embeddings: paddle.Tensor) -> paddle.Tensor:
        return F.normalize(embeddings, axis=1) @ F.normalize(self.weight, axis=1).t()

    def forward(self, embeddings: paddle.Tensor) -> paddle.Tensor:
        return self.scale * self.cosines(embeddings) + self.bias


class Predictor(nn.Layer):  # type: ignore[misc]
    """Embedding network + cosine classifier: images in, class logits out.

    It also keeps each class's prototype (the normalised mean support embedding), which fine-tuning
    leaves as it is: the largest cosine of an image to a prototype tells known classes from unknown
    ones better than anything the tuned weights give (CHANGELOG.md, 0.3.0:
    rejecting unknown classes).
    """

    def __init__(
        self, embedding: nn.Layer, classifier: CosineClassifier, class_prototypes: paddle.Tensor | None = None
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.classifier = classifier
        start = F.normalize(classifier.weight.detach(), axis=1) if class_prototypes is None else class_prototypes
        self.register_buffer("prototypes", start.clone())

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.embedding(images))

    def scored(self, images: paddle.Tensor) -> paddle.Tensor:
        """``[N, classes + 1]``: the logits, then the largest cosine to a class prototype."""
        embeddings = self.embedding(images)
        cosines = F.normalize(embeddings, axis=1) @ F.normalize(self.prototypes, axis=1).t()
        return paddle.concat([self.classifier(embeddings), cosines.max(axis=1, keepdim=True)], axis=1)


class ScoredPredictor(nn.Layer):  # type: ignore[misc]
    """A predictor whose output also carries its known-class score: what ``predict`` and the export run."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.predictor.scored(images)


class PairPredictor(nn.Layer):  # type: ignore[misc]
    """Koch et al. (2015)'s one-shot classifier: each query against each stored support embedding
    through the pair head; a class scores as the logit of its most similar support image."""

    def __init__(self, embedding: nn.Layer, support: paddle.Tensor, labels: paddle.Tensor, num_classes: int) -> None:
        super().__init__()
        self.embedding = embedding
        self.num_classes = num_classes
        self.register_buffer("support", support)
        self.register_buffer("support_labels", labels.astype("int64"))

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        pair_logits = self.embedding.pair_head.pairwise(self.embedding(images), self.support)  # [q, n]
        member = F.one_hot(self.support_labels, self.num_classes).astype("bool")  # [n, C]
        masked = paddle.where(member[None], pair_logits[:, :, None], paddle.full([1], -1e9, pair_logits.dtype))
        return masked.max(axis=1)


def scoring_network(predictor: nn.Layer) -> tuple[nn.Layer, bool]:
    """What ``predict`` and the export run: a cosine-classifier predictor with its known-class score after
    the logits (and True), or a pair-head predictor as it is (and False: it keeps no prototypes)."""
    if isinstance(predictor, Predictor):
        return ScoredPredictor(predictor), True
    return predictor, False

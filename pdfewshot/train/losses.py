"""Losses as small functions of tensors, each tested on hand-made inputs."""

import paddle
import paddle.nn.functional as F


def cosine_mse_triples(anchor: paddle.Tensor, positive: paddle.Tensor, negative: paddle.Tensor) -> paddle.Tensor:
    """Mean squared error between [cos(a, p), cos(a, n)] and [1, 0], averaged over the batch.

    Pulls an anchor towards another image of its class and makes it orthogonal to an image of
    another class. Zero exactly when cos(a, p) = 1 and cos(a, n) = 0.
    """
    cos_ap = F.cosine_similarity(anchor, positive, axis=1)
    cos_an = F.cosine_similarity(anchor, negative, axis=1)
    return 0.5 * (((cos_ap - 1.0) ** 2).mean() + (cos_an**2).mean())


def _squared_distance(x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    return ((F.normalize(x, axis=1) - F.normalize(y, axis=1)) ** 2).sum(axis=1)


def triplet_margin(
    anchor: paddle.Tensor, positive: paddle.Tensor, negative: paddle.Tensor, margin: float = 0.2
) -> paddle.Tensor:
    """Mean of max(0, d(a, p) - d(a, n) + margin), d the squared L2 distance of normalised embeddings.

    Schroff et al. 2015 (FaceNet). Zero once every negative is ``margin`` farther than its positive.
    """
    return F.relu(_squared_distance(anchor, positive) - _squared_distance(anchor, negative) + margin).mean()


def contrastive(first: paddle.Tensor, second: paddle.Tensor, same: paddle.Tensor, margin: float = 1.0) -> paddle.Tensor:
    """Hadsell, Chopra and LeCun 2006: mean of y * d^2 + (1 - y) * max(margin - d, 0)^2.

    ``d`` is the L2 distance of the normalised embeddings, ``same`` (y) is 1 for pairs of one class and
    0 otherwise: like pairs are pulled together, unlike ones pushed to at least ``margin`` apart.
    """
    y = same.astype(first.dtype)
    squared = _squared_distance(first, second)
    distance = paddle.sqrt(squared + 1e-12)
    return (y * squared + (1.0 - y) * F.relu(margin - distance) ** 2).mean()


def pair_bce(logits: paddle.Tensor, same: paddle.Tensor) -> paddle.Tensor:
    """Binary cross-entropy of Koch et al. (2015)'s pair scores: ``logits`` are the pre-sigmoid
    sum_j alpha_j |h1_j - h2_j| + b, ``same`` is 1 for pairs of one class.

    Written as softplus(-x) * y + softplus(x) * (1 - y): Paddle 3.3's binary_cross_entropy_with_logits
    returns a gradient off by 0.5 at a logit of exactly 0 (measured), where a new pair head starts.
    """
    x = logits.reshape([-1])
    y = same.astype(logits.dtype).reshape([-1])
    return (F.softplus(-x) * y + F.softplus(x) * (1.0 - y)).mean()


def prototype_episode(supports: paddle.Tensor, queries: paddle.Tensor, scale: paddle.Tensor) -> paddle.Tensor:
    """Cross-entropy of an episode (Snell et al. 2017) read by cosine: ``supports`` has one embedding per class,
    ``queries`` rows of the classes in the same order, repeated (``[q1 of every class, q2 of every class, ...]``);
    the logits are ``scale`` times the cosines, as the prototype method scores.
    """
    ways = supports.shape[0]
    logits = scale * paddle.matmul(F.normalize(queries, axis=1), F.normalize(supports, axis=1), transpose_y=True)
    labels = paddle.tile(paddle.arange(ways, dtype="int64"), [queries.shape[0] // ways])
    return F.cross_entropy(logits, labels)

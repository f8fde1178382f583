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


def softmax_entropy(logits: paddle.Tensor) -> paddle.Tensor:
    """Mean Shannon entropy (nats) of the softmax of each row: low when predictions are confident."""
    log_probs = F.log_softmax(logits, axis=1)
    return -(log_probs.exp() * log_probs).sum(axis=1).mean()

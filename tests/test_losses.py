import math

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.losses import cosine_mse_triples, softmax_entropy


def t(rows: list[list[float]]) -> paddle.Tensor:
    return paddle.to_tensor(np.array(rows, dtype="float32"))


def test_cosine_mse_is_zero_when_positive_aligned_and_negative_orthogonal() -> None:
    anchor = t([[1, 0, 0], [0, 2, 0]])
    positive = t([[3, 0, 0], [0, 1, 0]])  # same direction, other length: cosine 1
    negative = t([[0, 1, 0], [0, 0, -5]])  # orthogonal: cosine 0
    assert cosine_mse_triples(anchor, positive, negative).item() == 0.0


def test_cosine_mse_value_on_hand_computed_case() -> None:
    # cos(a, p) = 0 -> (0 - 1)^2 = 1 ; cos(a, n) = 1 -> 1^2 = 1 ; mean of the two = 1
    loss = cosine_mse_triples(t([[1, 0]]), t([[0, 1]]), t([[1, 0]]))
    assert math.isclose(loss.item(), 1.0, rel_tol=1e-6)
    # cos(a, p) = cos(a, n) = 1/sqrt(2): ((1 - 0.7071)^2 + 0.5) / 2
    loss = cosine_mse_triples(t([[1, 0]]), t([[1, 1]]), t([[1, 1]]))
    assert math.isclose(loss.item(), ((1 - 2**-0.5) ** 2 + 0.5) / 2, rel_tol=1e-5)


def test_cosine_mse_gradient_pulls_positive_in_and_pushes_negative_away() -> None:
    anchor = t([[1.0, 0.2, 0.1]])
    anchor.stop_gradient = False
    positive, negative = t([[0.3, 1.0, 0.0]]), t([[1.0, 0.0, 0.5]])
    before_p = F.cosine_similarity(anchor, positive).item()
    before_n = F.cosine_similarity(anchor, negative).item()
    cosine_mse_triples(anchor, positive, negative).backward()
    stepped = anchor.detach() - 0.1 * anchor.grad
    assert F.cosine_similarity(stepped, positive).item() > before_p
    assert abs(F.cosine_similarity(stepped, negative).item()) < abs(before_n)


def test_softmax_entropy_uniform_and_confident() -> None:
    assert math.isclose(softmax_entropy(t([[0, 0, 0, 0]])).item(), math.log(4), rel_tol=1e-6)
    assert softmax_entropy(t([[50, 0, 0, 0]])).item() < 1e-6
    # a batch averages its rows
    both = softmax_entropy(t([[0, 0, 0, 0], [50, 0, 0, 0]])).item()
    assert math.isclose(both, math.log(4) / 2, rel_tol=1e-5)

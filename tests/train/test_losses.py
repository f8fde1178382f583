import math

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.nets.classifier import softmax_entropy
from pdfewshot.train.losses import contrastive, cosine_mse_triples, pair_bce, prototype_episode, triplet_margin


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


def test_triplet_margin_value_and_margin_behaviour() -> None:
    a, p = t([[1, 0]]), t([[1, 0]])
    far, near = t([[-1, 0]]), t([[0, 1]])
    # d(a,p) = 0, d(a,far) = 4: satisfied with room, zero loss
    assert triplet_margin(a, p, far, margin=0.2).item() == 0.0
    # d(a,near) = 2: loss = max(0, 0 - 2 + 3) = 1 with margin 3, zero with margin 1
    assert math.isclose(triplet_margin(a, p, near, margin=3.0).item(), 1.0, rel_tol=1e-6)
    assert triplet_margin(a, p, near, margin=1.0).item() == 0.0


def test_triplet_margin_gradient_moves_anchor_to_positive() -> None:
    anchor = t([[1.0, 1.0]])
    anchor.stop_gradient = False
    positive, negative = t([[1.0, 0.0]]), t([[0.0, 1.0]])
    before = F.cosine_similarity(anchor, positive).item()
    triplet_margin(anchor, positive, negative, margin=1.0).backward()
    stepped = anchor.detach() - 0.1 * anchor.grad
    assert F.cosine_similarity(stepped, positive).item() > before


def test_contrastive_values() -> None:
    x, same_dir, opposite = t([[1, 0]]), t([[2, 0]]), t([[-1, 0]])
    one, zero = paddle.to_tensor([1]), paddle.to_tensor([0])
    assert contrastive(x, same_dir, one).item() < 1e-6  # like pair at distance 0
    assert math.isclose(contrastive(x, opposite, one).item(), 4.0, rel_tol=1e-5)  # d^2 = 4
    assert contrastive(x, opposite, zero, margin=1.0).item() < 1e-6  # unlike pair beyond the margin
    # unlike pair at distance 0 with margin 1: (1 - 0)^2
    assert math.isclose(contrastive(x, same_dir, zero, margin=1.0).item(), 1.0, rel_tol=1e-5)


def test_contrastive_gradient_pushes_unlike_pairs_apart() -> None:
    first = t([[1.0, 0.2]])
    first.stop_gradient = False
    second = t([[1.0, 0.0]])
    contrastive(first, second, paddle.to_tensor([0]), margin=1.0).backward()
    stepped = first.detach() - 0.5 * first.grad
    assert F.cosine_similarity(stepped, second).item() < F.cosine_similarity(first.detach(), second).item()


def test_pair_bce_values_and_direction() -> None:
    logits = t([[0.0], [0.0]]).reshape([-1])
    assert math.isclose(pair_bce(logits, paddle.to_tensor([1, 0])).item(), math.log(2), rel_tol=1e-6)
    confident = t([[10.0], [-10.0]]).reshape([-1])
    assert pair_bce(confident, paddle.to_tensor([1, 0])).item() < 1e-4
    logits.stop_gradient = False
    pair_bce(logits, paddle.to_tensor([1, 0])).backward()
    assert logits.grad.numpy().tolist() == [-0.25, 0.25]  # raise the like pair's score, lower the unlike one's


def test_pair_head_scores_l1_distances() -> None:
    from pdfewshot.nets.pair_head import PairHead

    head = PairHead(2)
    head.weigh.weight.set_value(paddle.to_tensor([[-1.0], [-2.0]]))
    head.weigh.bias.set_value(paddle.to_tensor([3.0]))
    logits = head(t([[0, 0], [1, 1]]), t([[0, 0], [0, 0]]))
    np.testing.assert_allclose(logits.numpy(), [3.0, 0.0])
    grid = head.pairwise(t([[0, 0], [1, 1]]), t([[0, 0], [1, 0], [1, 1]]))
    np.testing.assert_allclose(grid.numpy(), [[3.0, 2.0, 0.0], [0.0, 1.0, 3.0]])


def test_prototype_episode_is_the_cross_entropy_of_scaled_cosines_to_the_supports() -> None:
    supports = t([[1.0, 0.0], [0.0, 2.0]])
    queries = t([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])  # q1 of both classes, then q2 of both
    loss = prototype_episode(supports, queries, paddle.to_tensor([2.0])).item()
    cosines = np.array([[1.0, 0.0], [0.0, 1.0], [0.5**0.5, 0.5**0.5], [-1.0, 0.0]])
    logits = 2.0 * cosines
    chosen = logits[np.arange(4), [0, 1, 0, 1]]
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - chosen)
    assert math.isclose(loss, expected, rel_tol=1e-5)
    aligned = prototype_episode(supports, t([[1.0, 0.0], [0.0, 1.0]]), paddle.to_tensor([30.0])).item()
    assert aligned < 1e-6

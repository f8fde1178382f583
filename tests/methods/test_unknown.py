"""Scores of how known a query looks, their support-set thresholds, and the measures of telling known
from unknown queries."""

import numpy as np
import pytest

from pdfewshot.methods.unknown import (
    UNKNOWN_SCORES,
    Evidence,
    auroc,
    class_distance,
    class_spread,
    energy,
    false_accept_rate,
    fold_scores,
    held_out_folds,
    max_cosine,
    max_softmax,
    suggest_threshold,
)


def test_auroc_is_the_chance_a_known_query_scores_higher() -> None:
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count half
    assert auroc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5


def test_false_accepts_at_95_percent_of_known_accepted() -> None:
    known = np.arange(100.0)  # the threshold accepting 95 of them is about 4.95
    assert false_accept_rate(known, np.array([0.0, 1.0, 10.0, 50.0])) == 0.5


def evidence(logits: list[list[float]]) -> Evidence:
    rows = np.array(logits)
    return Evidence(rows, np.eye(len(rows), 2), np.eye(2), np.eye(2), np.arange(2))


def test_softmax_and_energy_read_the_logits() -> None:
    scores = evidence([[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(max_softmax(scores), [np.exp(2) / (np.exp(2) + 1), 0.5])
    np.testing.assert_allclose(energy(scores), [np.log(np.exp(2) + 1), np.log(2)])
    # Energy keeps the magnitude that softmax loses: the same ratio of logits, farther from every class.
    far = evidence([[0.2, 0.0], [0.0, 0.0]])
    assert energy(far)[0] < energy(scores)[0]


def test_max_cosine_is_the_best_class_cosine() -> None:
    scores = Evidence(np.zeros((1, 2)), np.array([[1.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 5.0]]),
                      np.eye(2), np.arange(2))  # fmt: skip
    np.testing.assert_allclose(max_cosine(scores), [np.sqrt(0.5)])


def test_class_distance_measures_a_query_in_its_class_spread() -> None:
    rng = np.random.default_rng(0)
    tight = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(5, 3))
    loose = np.array([0.0, 1.0, 0.0]) + 0.4 * rng.normal(size=(5, 3))
    support, labels = np.concatenate([tight, loose]), np.repeat([0, 1], 5)
    means, spreads = class_spread(support, labels, 2)
    assert spreads[0] < spreads[1] and means[0] > means[1]
    # The same cosine (0.9) to each class's direction is far out for the tight class, ordinary for the loose.
    near_tight = np.array([[0.9, 0.0, np.sqrt(1 - 0.81)]])
    near_loose = np.array([[0.0, 0.9, np.sqrt(1 - 0.81)]])

    def score(query: np.ndarray) -> float:
        return float(class_distance(Evidence(np.zeros((1, 2)), query, np.eye(3)[:2], support, labels))[0])

    assert score(near_tight) < score(near_loose)


def test_one_shot_class_distance_is_the_max_cosine() -> None:
    support, labels = np.eye(3), np.arange(3)
    queries = np.array([[0.6, 0.8, 0.0]])
    scores = Evidence(np.zeros((1, 3)), queries, support, support, labels)
    np.testing.assert_allclose(class_distance(scores), max_cosine(scores))


def clusters(spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 5)
    return centres[labels] + spread * rng.normal(size=(20, 16)), labels


def test_a_softmax_threshold_is_a_probability_above_chance_and_higher_for_tighter_classes() -> None:
    support, labels = clusters(1.0, 0)
    threshold = suggest_threshold("max-softmax", support, labels, 4, 10.0, 0.05)
    assert threshold is not None and 1 / 4 < threshold <= 1.0
    tight = suggest_threshold("max-softmax", *clusters(0.2, 1), 4, 10.0, 0.05)
    loose = suggest_threshold("max-softmax", *clusters(2.0, 1), 4, 10.0, 0.05)
    assert tight is not None and loose is not None and tight > loose


@pytest.mark.parametrize("score", sorted(UNKNOWN_SCORES))
def test_thresholds_reject_about_the_stated_share_of_left_out_images(score: str) -> None:
    support, labels = clusters(1.0, 2)
    low = suggest_threshold(score, support, labels, 4, 10.0, 0.05)
    high = suggest_threshold(score, support, labels, 4, 10.0, 0.5)
    assert low is not None and high is not None and low < high
    assert suggest_threshold(score, np.eye(3), np.arange(3), 3, 10.0, 0.05) is None  # one shot: nothing to leave out


def test_folds_hold_out_the_jth_image_of_every_class_that_can_spare_one() -> None:
    labels = np.array([0, 1, 0, 1, 1, 2])  # class 2 has one image: never held out
    folds = held_out_folds(labels, 3)
    assert [np.flatnonzero(fold).tolist() for fold in folds] == [[0, 1], [2, 3], [4]]
    assert held_out_folds(np.arange(3), 3) == []  # one shot everywhere: nothing to hold out


def test_a_fitted_classifier_s_logit_threshold_reads_its_own_held_out_logits() -> None:
    support, labels = clusters(1.0, 2)
    folds = held_out_folds(labels, 4)
    # Stand-in fitted logits: each held-out image confidently in its own class, at twice a prototype's scale.
    fitted = [20.0 * np.eye(4)[labels[out]] for out in folds]
    values, own = fold_scores("energy", support, labels, 4, fitted)
    assert own.all() and len(values) == sum(int(out.sum()) for out in folds)
    np.testing.assert_allclose(values, 20.0 + np.log(1 + 3 * np.exp(-20.0)))
    from_prototypes = suggest_threshold("energy", support, labels, 4, 10.0, 0.05)
    from_fits = suggest_threshold("energy", support, labels, 4, 10.0, 0.05, fitted)
    assert from_prototypes is not None and from_prototypes < 12.0 and from_fits == pytest.approx(20.0, abs=1e-6)
    # max-cosine reads the prototypes, which fitting leaves as they are: the fitted logits do not matter.
    assert suggest_threshold("max-cosine", support, labels, 4, 10.0, 0.05, fitted) == suggest_threshold(
        "max-cosine", support, labels, 4, 10.0, 0.05
    )
    with pytest.raises(ValueError, match="1 sets of logits for"):
        fold_scores("energy", support, labels, 4, fitted[:1])

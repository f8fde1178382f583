import numpy as np
import pytest

from pdfewshot.errors import PdfewshotError
from pdfewshot.methods.verification import (
    accuracy_at,
    best_threshold,
    cosine_similarity,
    equal_error_rate,
    roc_auc,
    sample_pairs,
)


def test_pairs_are_seeded_distinct_and_half_of_one_class() -> None:
    labels = np.repeat(np.arange(5), 4)
    pairs = sample_pairs(labels, 31, seed=3)
    assert len(pairs) == 31 and pairs.same.sum() == 15
    assert np.array_equal(pairs.same, labels[pairs.first] == labels[pairs.second])
    assert np.all(pairs.first != pairs.second)
    assert len({(a, b) for a, b in zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)}) == 31
    again = sample_pairs(labels, 31, seed=3)
    assert np.array_equal(pairs.first, again.first) and np.array_equal(pairs.second, again.second)
    assert not np.array_equal(sample_pairs(labels, 31, seed=4).first, pairs.first)


def test_asking_for_more_pairs_than_the_data_gives_says_how_many_it_gives() -> None:
    labels = np.repeat(np.arange(3), 2)  # 3 same-class pairs, 12 different
    assert len(sample_pairs(labels, 6, 0)) == 6
    with pytest.raises(PdfewshotError, match="gives 3 same-class and 12 different-class pairs; ask for at most 6"):
        sample_pairs(labels, 8, 0)
    with pytest.raises(PdfewshotError, match="must be at least 2"):
        sample_pairs(labels, 1, 0)


def test_threshold_accuracy_auc_and_equal_error_rate() -> None:
    same = np.array([True, True, True, False, False, False])
    separable = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    threshold, accuracy = best_threshold(separable, same)
    assert accuracy == 1.0 and 0.3 < threshold <= 0.7 and accuracy_at(separable, same, threshold) == 1.0
    assert roc_auc(separable, same) == 1.0 and equal_error_rate(separable, same) == 0.0
    swapped = separable[::-1].copy()  # every same pair less similar than every different one
    assert roc_auc(swapped, same) == 0.0 and equal_error_rate(swapped, same) == 1.0
    one_wrong = np.array([0.9, 0.8, 0.2, 0.7, 0.3, 0.1])  # one same pair below one different pair
    assert best_threshold(one_wrong, same)[1] == pytest.approx(5 / 6)
    assert roc_auc(one_wrong, same) == pytest.approx(7 / 9)
    assert equal_error_rate(one_wrong, same) == pytest.approx(1 / 3)


def test_cosine_similarity_is_row_wise() -> None:
    first = np.array([[1.0, 0.0], [1.0, 1.0]])
    second = np.array([[2.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(cosine_similarity(first, second), [1.0, -1.0])

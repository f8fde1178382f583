import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdfewshot.data.episodes import confidence_interval, sample_episodes
from pdfewshot.errors import PdfewshotError


def test_confidence_interval_on_hand_computed_case() -> None:
    # mean 0.75, population std 0.25, n = 2: 1.96 * 0.25 / sqrt(2)
    assert math.isclose(confidence_interval(np.array([0.5, 1.0])), 1.96 * 0.25 / math.sqrt(2))
    assert math.isclose(confidence_interval(np.array([0.8, 0.8, 0.8])), 0.0, abs_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(4, 9), min_size=3, max_size=10),
    st.integers(2, 3),
    st.integers(1, 2),
    st.integers(1, 2),
    st.integers(0, 999),
)
def test_episodes_never_share_an_image_between_support_and_query(
    counts: list[int], way: int, shot: int, query: int, seed: int
) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    for episode in sample_episodes(labels, way, shot, query, episodes=5, seed=seed):
        support, support_labels = episode.support_at(shot)
        queries, query_labels = episode.queries()
        assert not set(support.tolist()) & set(queries.tolist())
        assert len(set(episode.classes.tolist())) == way
        assert (labels[support] == episode.classes[support_labels]).all()
        assert (labels[queries] == episode.classes[query_labels]).all()


def test_same_seed_same_episodes_and_smaller_shots_are_prefixes() -> None:
    labels = np.repeat(np.arange(8), 10)
    first = sample_episodes(labels, 5, 5, 3, episodes=4, seed=1)
    again = sample_episodes(labels, 5, 5, 3, episodes=4, seed=1)
    other = sample_episodes(labels, 5, 5, 3, episodes=4, seed=2)
    for a, b in zip(first, again, strict=True):
        assert (a.classes == b.classes).all() and (a.support == b.support).all() and (a.query == b.query).all()
    assert any((a.support != b.support).any() for a, b in zip(first, other, strict=True))
    one_shot, _ = first[0].support_at(1)
    np.testing.assert_array_equal(one_shot, first[0].support[:, 0])


def test_impossible_episodes_are_clear_errors() -> None:
    labels = np.repeat(np.arange(4), [10, 10, 10, 3])
    with pytest.raises(PdfewshotError, match="way 4: only 3 classes have the 6 images"):
        sample_episodes(labels, 4, 1, 5, episodes=1, seed=0)
    with pytest.raises(PdfewshotError, match="shot 0: must be at least 1"):
        sample_episodes(labels, 2, 0, 5, episodes=1, seed=0)

"""Validation episodes: the log-probability of the right class keeps discriminating where accuracy is 1."""

import numpy as np
import pytest

from pdfewshot.data.imageset import ImageSet
from pdfewshot.storage.pixels import Pixels
from pdfewshot.train.validation import EpisodeValidator, right_class_log_prob


def test_right_class_log_prob_is_the_softmax_of_scaled_cosines() -> None:
    scores = np.array([[[0.9, 0.1], [0.2, 0.4]]])  # one episode, two queries, two classes
    labels = np.array([[0, 1]])
    expected = np.mean([np.log(1 / (1 + np.exp(-8.0))), np.log(1 / (1 + np.exp(-2.0)))])
    assert right_class_log_prob(scores, labels) == pytest.approx(expected)


def _separated(spread: float) -> ImageSet:
    """Two classes of 4 images whose 'embeddings' (the pixels) are ``spread`` apart around a shared point."""
    rng = np.random.default_rng(0)
    base = np.full((8, 1, 1, 2), 100.0)
    base[:4, 0, 0, 0] += spread
    base[4:, 0, 0, 1] += spread
    base += rng.uniform(0, 1, size=base.shape)
    return ImageSet(base.astype(np.uint8), np.repeat([0, 1], 4), ("a", "b"), tuple(f"{i}.png" for i in range(8)))


def test_both_embeddings_score_all_right_but_the_better_separated_has_the_higher_log_prob() -> None:
    def flat(net: object, images: Pixels) -> np.ndarray:
        return np.asarray(images).reshape(len(images), -1).astype(np.float32) - 99.0

    close = EpisodeValidator(_separated(20), flat, way=2, episodes=20)(None)
    far = EpisodeValidator(_separated(120), flat, way=2, episodes=20)(None)
    assert close.accuracy == far.accuracy == 1.0
    assert close.log_prob < far.log_prob < 0

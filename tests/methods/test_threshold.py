import numpy as np

from pdfewshot.methods.threshold import leave_one_out_threshold


def test_threshold_accepts_most_left_out_images() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 5)
    embeddings = centres[labels] + rng.normal(size=(20, 16))
    threshold = leave_one_out_threshold(embeddings, labels, 4, scale=10.0)
    assert threshold is not None and 1 / 4 < threshold <= 1.0


def test_tighter_classes_give_a_higher_threshold() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 8)) * 3
    labels = np.repeat(np.arange(3), 4)
    noise = rng.normal(size=(12, 8))
    tight = leave_one_out_threshold(centres[labels] + 0.2 * noise, labels, 3, 10.0)
    loose = leave_one_out_threshold(centres[labels] + 2.0 * noise, labels, 3, 10.0)
    assert tight is not None and loose is not None and tight > loose


def test_one_shot_has_nothing_to_leave_out() -> None:
    assert leave_one_out_threshold(np.eye(3), np.arange(3), 3, 10.0) is None

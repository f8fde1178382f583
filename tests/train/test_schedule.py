import itertools
import math

import pytest

from pdfewshot.train.schedule import scheduled_lr


def test_constant_keeps_the_rate() -> None:
    assert [scheduled_lr(0.1, "constant", step, 10) for step in (0, 5, 9)] == [0.1, 0.1, 0.1]


def test_cosine_starts_at_the_rate_halves_midway_and_falls_towards_zero() -> None:
    rates = [scheduled_lr(2.0, "cosine", step, 100) for step in range(100)]
    assert rates[0] == 2.0
    assert rates[50] == pytest.approx(1.0)
    assert rates[99] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert all(later < earlier for earlier, later in itertools.pairwise(rates))


def test_one_step_runs_at_the_rate_and_unknown_names_fail() -> None:
    assert scheduled_lr(0.3, "cosine", 0, 1) == 0.3
    with pytest.raises(ValueError, match="step-decay"):
        scheduled_lr(0.3, "step-decay", 0, 10)

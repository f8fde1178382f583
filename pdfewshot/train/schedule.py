"""Learning-rate schedules for pretraining, as pure functions of the step.

A schedule that depends only on (step, total) needs no saved state, so ``--resume`` continues it
exactly. ``cosine`` is the half-cosine annealing of Loshchilov and Hutter (2017, SGDR, without
restarts): from the base rate at the first step down towards zero at the last.
"""

import math

SCHEDULES = ("constant", "cosine")


def scheduled_lr(base_lr: float, schedule: str, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps``."""
    if schedule == "constant" or total_steps <= 1:
        return base_lr
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown schedule {schedule!r}")

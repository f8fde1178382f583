"""Training batches assembled, and distorted for augmentation, where ``paddle.io.DataLoader`` makes them:
in its worker processes (``--workers``) or, with none, in the training process.

A batch's distortions are drawn from a generator seeded by its place in training (seed, phase, epoch,
step, and the data-parallel rank), not by the process that happens to make it, so any number of workers,
a resumed run and an uninterrupted one all draw the same. To know that place, the batch sampler's indices
travel tagged with their epoch and step (:class:`StepSampler`, :class:`StepDataset`).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import paddle

from pdfewshot.data.augment import augment_batch

Tagged = tuple[Any, int, int]  # (the sampler's item, epoch, step)


class BatchSampler(Protocol):
    epoch: int
    start_step: int

    def __iter__(self) -> Iterator[list[Any]]: ...

    def __len__(self) -> int: ...


class StepSampler(paddle.io.Sampler):  # type: ignore[misc]
    """The batches of ``sampler`` with each item tagged by the batch's epoch and step."""

    def __init__(self, sampler: BatchSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[Tagged]]:
        for step, batch in enumerate(self.sampler, self.sampler.start_step):
            yield [(item, self.sampler.epoch, step) for item in batch]

    def __len__(self) -> int:
        return len(self.sampler)


class StepDataset(paddle.io.Dataset):  # type: ignore[misc]
    """``dataset``'s sample of a tagged item, with the tags."""

    def __init__(self, dataset: paddle.io.Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: Tagged) -> tuple[Any, int, int]:
        item, epoch, step = key
        return self.dataset[item], epoch, step

    def __len__(self) -> int:
        return len(self.dataset)


@dataclass(frozen=True)
class DistortingCollate:
    """Stacks the samples field by field and distorts the first ``image_fields`` fields' images together,
    in field order (as the task feeds them to the network), with ``augment``."""

    augment: str
    image_fields: int
    seed: int
    phase: int
    rank: int = 0

    def __call__(self, samples: list[tuple[Any, int, int]]) -> list[np.ndarray]:
        _, epoch, step = samples[0]
        fields = [np.stack(field) for field in zip(*(sample for sample, _, _ in samples), strict=True)]
        if self.augment == "none":
            return fields
        stream = [self.seed, self.phase, epoch, step, 3] + ([self.rank] if self.rank else [])
        images = np.concatenate(fields[: self.image_fields])
        distorted = augment_batch(images, self.augment, np.random.default_rng(stream))
        return [*np.split(distorted, self.image_fields), *fields[self.image_fields :]]

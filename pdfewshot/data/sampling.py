"""Samplers: triples for pretraining, support/query selection for the few-shot stages."""

from collections.abc import Collection, Iterator, Sequence

import numpy as np
import paddle

from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.pixels import Pixels

Triple = tuple[int, int, int]


class TripleBatchSampler(paddle.io.Sampler):  # type: ignore[misc]
    """Batches of (anchor, positive, negative) image indices for :class:`paddle.io.DataLoader`.

    The anchor's class is drawn uniformly from the classes with at least two images; the positive is
    another image of that class and the negative an image of any other class. One epoch is
    ``steps`` batches; epoch ``e`` is seeded by ``(seed, e)`` so an epoch can be replayed alone. In
    data-parallel training process ``rank`` > 0 draws from its own stream ``(seed, e, rank)``.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, steps: int, seed: int, rank: int = 0) -> None:
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self.start_step = 0
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._counts = counts
        self._order = order
        self._anchor_classes = np.flatnonzero(counts >= 2)
        if len(self._anchor_classes) == 0 or np.count_nonzero(counts) < 2:
            raise PdfewshotError("triples need two classes and a class with two images")
        self._total = len(labels)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Selects epoch ``epoch``; its first ``start_step`` batches are drawn but not yielded (resume)."""
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return self.steps - self.start_step

    def sample_batch(self, rng: np.random.Generator) -> list[Triple]:
        classes = rng.choice(self._anchor_classes, size=self.batch_size)
        counts, starts = self._counts[classes], self._starts[classes]
        anchor_pos = rng.integers(0, counts)
        # A positive distinct from the anchor: shift by 1..count-1 within the class.
        positive_pos = (anchor_pos + rng.integers(1, counts)) % counts
        # A negative outside the anchor's class: draw from all images but the class's own block.
        draw = rng.integers(0, self._total - counts)
        negative = np.where(draw < starts, draw, draw + counts)
        anchors = self._order[starts + anchor_pos]
        positives = self._order[starts + positive_pos]
        negatives = self._order[negative]
        return list(zip(anchors.tolist(), positives.tolist(), negatives.tolist(), strict=True))

    def __iter__(self) -> Iterator[list[Triple]]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank] if self.rank else [self.seed, self.epoch])
        for step in range(self.steps):
            batch = self.sample_batch(rng)
            if step >= self.start_step:
                yield batch


class TripleDataset(paddle.io.Dataset):  # type: ignore[misc]
    """Maps an (anchor, positive, negative) index triple to its three uint8 images."""

    def __init__(self, images: Pixels) -> None:
        self.images = images

    def __getitem__(self, triple: Triple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        anchor, positive, negative = triple
        return self.images[anchor], self.images[positive], self.images[negative]

    def __len__(self) -> int:
        return len(self.images)


def split_support_query(
    imageset: ImageSet, shot: int, rng: np.random.Generator, short: Collection[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded support (``shot`` images per class) and query (the rest) indices; never overlapping. A class
    named in ``short`` (one that lost images, say) may have ``shot`` or fewer: all of them are its support."""
    if shot < 1:
        raise PdfewshotError(f"{shot}: must be at least 1", "shot")
    support, query = [], []
    for class_id, indices in enumerate(imageset.indices_by_class()):
        name = imageset.class_names[class_id]
        if len(indices) < shot + 1 and not (name in short and len(indices)):
            raise PdfewshotError(
                f"{shot} needs at least {shot + 1} images per class (support plus one query); "
                f"class {name} has {len(indices)}",
                "shot",
            )
        chosen = rng.permutation(indices)
        support.append(np.sort(chosen[:shot]))
        query.append(np.sort(chosen[shot:]))
    return np.concatenate(support), np.concatenate(query)


class ShuffledBatchSampler(paddle.io.Sampler):  # type: ignore[misc]
    """``steps`` full batches per epoch, taken in order from seeded permutations of all indices.

    With ``steps = ceil(count / batch_size)`` an epoch sees every index once (the last batch is
    topped up from the next permutation). Epoch ``e`` is seeded by ``(seed, e)``, so runs are
    reproducible without Paddle's global RNG. In data-parallel training the ``world_size`` processes
    share the permutations and process ``rank`` takes every ``world_size``-th batch from ``rank`` on.
    """

    def __init__(self, count: int, batch_size: int, steps: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.count, self.batch_size, self.steps, self.seed = count, batch_size, steps, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Selects epoch ``epoch``; its first ``start_step`` batches are skipped (resume)."""
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        needed = self.steps * self.world_size * self.batch_size
        order = np.concatenate([rng.permutation(self.count) for _ in range(-(-needed // self.count))])
        for step in range(self.start_step, self.steps):
            start = (step * self.world_size + self.rank) * self.batch_size
            yield order[start : start + self.batch_size].tolist()


def class_groups(class_names: Sequence[str]) -> np.ndarray:
    """A group id per class: the folder above it with any rotation suffix (``Greek/character01@rot90`` is in
    ``Greek@rot90``), so an Omniglot alphabet at one orientation is a group; classes with no folder share one."""
    keys = [name.rpartition("/")[0] + (name[name.rfind("@") :] if "@" in name else "") for name in class_names]
    return np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)


class EpisodeBatchSampler(TripleBatchSampler):
    """Episodes of ``batch_size`` classes, three images each (a support and two queries): items
    (support, query, query) of distinct classes, the class being the item's place in the batch.

    An episode's classes are the classes of its groups (:func:`class_groups`) taken whole in a seeded order
    until it is full, so that it asks the network to tell apart characters of one alphabet, as Omniglot's runs
    do. A class of fewer than three images repeats some. Seeded per epoch as :class:`TripleBatchSampler`.
    """

    def __init__(
        self, labels: np.ndarray, groups: np.ndarray, batch_size: int, steps: int, seed: int, rank: int = 0
    ) -> None:
        super().__init__(labels, batch_size, steps, seed, rank)
        usable = self._anchor_classes
        self._group_classes = [usable[groups[usable] == group] for group in np.unique(groups[usable])]

    def sample_batch(self, rng: np.random.Generator) -> list[Triple]:
        order = rng.permutation(len(self._group_classes))
        classes = np.concatenate([rng.permutation(self._group_classes[g]) for g in order])[: self.batch_size]
        episode = []
        for class_id in classes.tolist():
            count, start = int(self._counts[class_id]), int(self._starts[class_id])
            picks = rng.choice(count, size=3, replace=count < 3)
            support, first, second = self._order[start + picks].tolist()
            episode.append((support, first, second))
        return episode


class LabelledImages(paddle.io.Dataset):  # type: ignore[misc]
    """(uint8 image, class id) pairs for supervised batches."""

    def __init__(self, images: Pixels, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]

    def __len__(self) -> int:
        return len(self.images)


Pair = tuple[int, int, int]


class PairBatchSampler(TripleBatchSampler):
    """Batches of (first, second, same) pairs, half of one class (same = 1) and half not (same = 0).

    Drawn as triples, each giving either its (anchor, positive) or its (anchor, negative) pair, in
    alternation, so the classes and images are distributed as in :class:`TripleBatchSampler`.
    """

    def __iter__(self) -> Iterator[list[Pair]]:
        for batch in super().__iter__():
            yield [(a, p, 1) if i % 2 == 0 else (a, n, 0) for i, (a, p, n) in enumerate(batch)]


class PairDataset(paddle.io.Dataset):  # type: ignore[misc]
    """Maps a (first, second, same) pair to its two uint8 images and the label."""

    def __init__(self, images: Pixels) -> None:
        self.images = images

    def __getitem__(self, pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        first, second, same = pair
        return self.images[first], self.images[second], np.array(same, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

"""ImageSet: labelled images decoded once, as uint8 arrays in memory or rows of a decoded file
(:mod:`pdfewshot.storage.pixels`) read when indexed."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pdfewshot.storage.pixels import Pixels, take_rows


class LabelledRows(Protocol):
    """What training batches and validation episodes are drawn from: rows the network takes (an
    :class:`ImageSet`'s images, or a frozen backbone's features of them) with a class id each."""

    @property
    def images(self) -> Pixels | np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class ImageSet:
    """Images ``[n, h, w, c]`` (uint8) with a class id each.

    ``class_names`` are relative class paths (``"Greek/character01"`` for nested layouts) and
    ``keys`` name each image uniquely across merged sources (its relative path), so that a manifest of
    keys can pick the same images again in a later stage.
    """

    images: Pixels
    labels: np.ndarray
    class_names: tuple[str, ...]
    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [n, h, w, c], got {self.images.dtype} {self.images.shape}")
        if not (len(self.images) == len(self.labels) == len(self.keys)):
            raise ValueError("images, labels and keys differ in length")

    @classmethod
    def empty(cls, image_size: int, channels: int) -> "ImageSet":
        """No images, no classes: what a stage that was given no data works on."""
        images = np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
        return cls(images=images, labels=np.zeros(0, dtype=np.int64), class_names=(), keys=())

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def class_group(self, class_name: str) -> str:
        """The alphabet of a nested class path (``"Greek"`` for ``"Greek/character01"``), else ``""``."""
        return class_name.rsplit("/", 1)[0] if "/" in class_name else ""

    def count(self, class_name: str) -> int:
        """How many images of ``class_name`` there are (0 for a class not here)."""
        if class_name not in self.class_names:
            return 0
        return int(np.sum(self.labels == self.class_names.index(class_name)))

    def indices_by_class(self) -> list[np.ndarray]:
        """For each class id, the indices of its images in ascending order."""
        order = np.argsort(self.labels, kind="stable")
        bounds = np.searchsorted(self.labels[order], np.arange(self.num_classes + 1))
        return [order[bounds[c] : bounds[c + 1]] for c in range(self.num_classes)]

    def subset_classes(self, class_names: Sequence[str]) -> "ImageSet":
        """The images of the named classes, relabelled 0..len(class_names)-1 in the order given."""
        position = {name: i for i, name in enumerate(self.class_names)}
        missing = [name for name in class_names if name not in position]
        if missing:
            raise KeyError(", ".join(missing[:5]))
        new_label = np.full(self.num_classes, -1, dtype=np.int64)
        for new, name in enumerate(class_names):
            new_label[position[name]] = new
        mapped = new_label[self.labels]
        keep = np.flatnonzero(mapped >= 0)
        return ImageSet(
            images=take_rows(self.images, keep),
            labels=mapped[keep],
            class_names=tuple(class_names),
            keys=tuple(self.keys[i] for i in keep),
        )

    def subset_indices(self, indices: Sequence[int] | np.ndarray) -> "ImageSet":
        """The given images, keeping every class name (some classes may end up empty)."""
        index = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            images=take_rows(self.images, index),
            labels=self.labels[index],
            class_names=self.class_names,
            keys=tuple(self.keys[i] for i in index),
        )

    def with_rotations(self) -> "ImageSet":
        """Adds 90, 180 and 270 degree copies of every image as new classes (``name@rot90`` ...).

        The standard Omniglot augmentation (Santoro et al. 2016; Vinyals et al. 2016): a rotated
        character is a different character, so it widens the set of classes to learn from.
        """
        pixels = np.asarray(self.images)  # rotated copies are made in memory (Omniglot-sized sets)
        images = [pixels]
        labels = [self.labels]
        names = list(self.class_names)
        keys = list(self.keys)
        for quarter in (1, 2, 3):
            images.append(np.rot90(pixels, k=quarter, axes=(1, 2)))
            labels.append(self.labels + quarter * self.num_classes)
            names.extend(f"{name}@rot{90 * quarter}" for name in self.class_names)
            keys.extend(f"{key}@rot{90 * quarter}" for key in self.keys)
        return ImageSet(
            images=np.ascontiguousarray(np.concatenate(images)),
            labels=np.concatenate(labels),
            class_names=tuple(names),
            keys=tuple(keys),
        )

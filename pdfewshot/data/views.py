"""Test-time augmentation: each image is also embedded as ``views`` randomly distorted copies.

With one or a few examples per class, a class's prototype rests on very little. Embedding affine-
distorted copies (Koch et al. 2015's distortions, :mod:`pdfewshot.data.augment`) and using them as
further support examples, and averaging a query's copies into its embedding, smooths both over the
small shifts and slants that separate two drawings of one character (test-time augmentation, as in
Krizhevsky et al. 2012's ten-crop evaluation). The copies are drawn from a seeded generator, so the
same seed gives the same views.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdfewshot.data.augment import augment_batch


@dataclass(frozen=True)
class ViewedFeatures:
    """Features of a set of images ``[n, d]`` and of their distorted copies ``[views, n, d]``."""

    original: np.ndarray
    copies: np.ndarray

    @classmethod
    def without_views(cls, original: np.ndarray) -> "ViewedFeatures":
        return cls(original, np.empty((0, *original.shape), original.dtype))

    @property
    def views(self) -> int:
        return len(self.copies)

    def support(self, index: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features ``[..., n * (1 + views), d]`` and labels ``[..., n * (1 + views)]`` of the support images
        at ``index [..., n]`` followed by their copies, each copy labelled as its image."""
        if not self.views:
            return self.original[index], labels
        copies = np.moveaxis(self.copies[:, index], 0, -3)  # [..., views, n, d]
        copies = copies.reshape(*index.shape[:-1], self.views * index.shape[-1], copies.shape[-1])
        features = np.concatenate([self.original[index], copies], axis=-2)
        return features, np.concatenate([labels] * (1 + self.views), axis=-1)

    def queries(self, index: np.ndarray) -> np.ndarray:
        """Features ``[..., q, d]`` of the queries at ``index``: each the normalised mean of its own
        (unit-length) embedding and its copies'; without views, the features unchanged."""
        if not self.views:
            return np.asarray(self.original[index])
        mean = (self.original[index] + self.copies[:, index].sum(axis=0)) / (1 + self.views)
        return np.asarray(mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12))


def distorted_copies(images: np.ndarray, views: int, seed: int) -> np.ndarray:
    """``[views, n, h, w, c]`` affine-distorted copies of uint8 images ``[n, h, w, c]``, seeded."""
    rng = np.random.default_rng([seed, 7])
    copies = [augment_batch(images, "affine", rng) for _ in range(views)]
    return np.stack(copies) if copies else np.empty((0, *images.shape), images.dtype)


def view_features(
    features: Callable[[np.ndarray], np.ndarray], images: np.ndarray, views: int, seed: int
) -> ViewedFeatures:
    """``features`` (images ``[n, ...]`` -> ``[n, d]``) of the images and of ``views`` distorted copies of each,
    computed in one call so that a batched or compiled feature path sees them all at once."""
    every = np.concatenate([images[None], distorted_copies(images, views, seed)])
    embedded = features(every.reshape(-1, *images.shape[1:]))
    embedded = embedded.reshape(1 + views, len(images), *embedded.shape[1:])
    return ViewedFeatures(embedded[0], embedded[1:])

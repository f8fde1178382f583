"""N-way K-shot episodes: seeded draws of classes, support images and query images."""

from dataclasses import dataclass

import numpy as np

from pdfewshot.errors import PdfewshotError


@dataclass(frozen=True)
class Episode:
    """One episode: ``classes[i]`` is episode class i; ``support[i]`` and ``query[i]`` its image indices.

    ``support`` holds the largest shot asked for; a K-shot view takes its first K columns, so several
    shot counts are compared on the very same classes and queries.
    """

    classes: np.ndarray  # [way] class ids
    support: np.ndarray  # [way, max_shot] image indices
    query: np.ndarray  # [way, query] image indices

    def support_at(self, shot: int) -> tuple[np.ndarray, np.ndarray]:
        """Support indices and episode labels (0..way-1) for a ``shot``-shot view."""
        indices = self.support[:, :shot]
        return indices.ravel(), np.repeat(np.arange(len(self.classes)), shot)

    def queries(self) -> tuple[np.ndarray, np.ndarray]:
        """Query indices and their episode labels."""
        return self.query.ravel(), np.repeat(np.arange(len(self.classes)), self.query.shape[1])


def sample_episodes(labels: np.ndarray, way: int, shot: int, query: int, episodes: int, seed: int) -> list[Episode]:
    """``episodes`` seeded episodes drawn from the classes with at least ``shot + query`` images."""
    for parameter, value, least in (("way", way, 2), ("shot", shot, 1), ("query", query, 1), ("episodes", episodes, 1)):
        if value < least:
            raise PdfewshotError(f"{value}: must be at least {least}", parameter)
    by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)] if len(labels) else []
    eligible = [c for c, indices in enumerate(by_class) if len(indices) >= shot + query]
    if len(eligible) < way:
        raise PdfewshotError(
            f"{way}: only {len(eligible)} classes have the {shot + query} images that {shot} support "
            f"and {query} query images per class need",
            "way",
        )
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(episodes):
        classes = rng.choice(eligible, size=way, replace=False)
        picks = np.stack([rng.choice(by_class[c], size=shot + query, replace=False) for c in classes])
        drawn.append(Episode(classes=classes, support=picks[:, :shot], query=picks[:, shot:]))
    return drawn


def confidence_interval(accuracies: np.ndarray) -> float:
    """Half-width of the 95% interval of the mean: 1.96 * std / sqrt(n) (population std, as is usual)."""
    return float(1.96 * np.std(accuracies) / np.sqrt(len(accuracies))) if len(accuracies) else 0.0

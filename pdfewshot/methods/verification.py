"""Pair verification: are two images of the same class? Similarities, the threshold that answers it,
and how well it does (accuracy, ROC AUC, equal error rate), as face-verification work measures it
(e.g. Chopra, Hadsell and LeCun 2005, "Learning a similarity metric discriminatively, with
application to face verification"; Koch, Zemel and Salakhutdinov 2015 for the learnt pair head).

A pair is "same" when its similarity is at or above the threshold.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdfewshot.errors import PdfewshotError
from pdfewshot.methods.unknown import auroc
from pdfewshot.nets.embedding import EmbeddingNet

COSINE = "cosine"  # of the two embeddings
PAIR_PROBABILITY = "pair-probability"  # the pair head's p(same) (pair-bce embeddings)


@dataclass(frozen=True)
class Pairs:
    """Pairs of images by index, and whether each pair's two images are of one class."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.same)

    def part(self, rows: np.ndarray) -> "Pairs":
        return Pairs(self.first[rows], self.second[rows], self.same[rows])


def pair_counts(labels: np.ndarray) -> tuple[int, int]:
    """How many distinct pairs of distinct images the labels give: of one class, and of two."""
    sizes = np.bincount(labels)
    same = int((sizes * (sizes - 1) // 2).sum())
    return same, len(labels) * (len(labels) - 1) // 2 - same


def sample_pairs(labels: np.ndarray, count: int, seed: int) -> Pairs:
    """``count`` distinct seeded pairs of distinct images, half of one class (the odd one out different)."""
    if count < 2:
        raise PdfewshotError(f"{count}: must be at least 2 (half same-class pairs, half different)", "pairs")
    same_available, different_available = pair_counts(labels)
    same_wanted = count // 2
    if same_wanted > same_available or count - same_wanted > different_available:
        raise PdfewshotError(
            f"{count}: the data gives {same_available} same-class and {different_available} different-class "
            f"pairs; ask for at most {2 * min(same_available, different_available)}",
            "pairs",
        )
    rng = np.random.default_rng([seed, 21])
    members = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    pairable = [c for c, m in enumerate(members) if len(m) >= 2]
    chosen: dict[tuple[int, int], bool] = {}

    def draw(same: bool, wanted: int) -> None:
        while sum(1 for v in chosen.values() if v == same) < wanted:
            if same:
                a, b = rng.choice(members[pairable[rng.integers(len(pairable))]], 2, replace=False)
            else:
                a, b = rng.integers(len(labels), size=2)
                if labels[a] == labels[b]:
                    continue
            key = (int(min(a, b)), int(max(a, b)))
            chosen.setdefault(key, same)

    draw(True, same_wanted)
    draw(False, count - same_wanted)
    keys = list(chosen)
    order = rng.permutation(len(keys))
    first = np.array([keys[i][0] for i in order])
    second = np.array([keys[i][1] for i in order])
    return Pairs(first, second, labels[first] == labels[second])


def cosine_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two ``[n, d]`` arrays."""
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.asarray((first * second).sum(axis=1) / np.maximum(norms, 1e-12), dtype=np.float64)


def similarity_kind(net: EmbeddingNet) -> str:
    """How ``net`` scores a pair: its pair head's probability when it has one, else the cosine."""
    return PAIR_PROBABILITY if net.pair_head is not None else COSINE


def similarities(net: EmbeddingNet, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Similarity of each pair of embeddings (rows of ``first`` and ``second``), by :func:`similarity_kind`."""
    if net.pair_head is None:
        return cosine_similarity(first, second)
    import paddle
    import paddle.nn.functional as F

    with paddle.no_grad():
        logits = net.pair_head(paddle.to_tensor(first), paddle.to_tensor(second))
        return np.asarray(F.sigmoid(logits).numpy(), dtype=np.float64)


def accuracy_at(similarity: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs answered right when "same" means similarity >= ``threshold``."""
    return float(np.mean((similarity >= threshold) == same))


def best_threshold(similarity: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold that answers the most pairs right (midway between two neighbouring similarities),
    and that accuracy."""
    values = np.unique(similarity)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    # Right answers at each candidate: same pairs at or above it plus different pairs below it.
    same_sorted = np.sort(similarity[same])
    different_sorted = np.sort(similarity[~same])
    right = (len(same_sorted) - np.searchsorted(same_sorted, candidates, side="left")) + np.searchsorted(
        different_sorted, candidates, side="left"
    )
    best = int(np.argmax(right))
    return float(candidates[best]), float(right[best] / len(similarity))


def roc_points(similarity: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-accept and true-accept rates over every threshold, from accepting nothing to everything."""
    thresholds = np.concatenate([[np.inf], np.sort(np.unique(similarity))[::-1]])
    same_count, different_count = max(int(same.sum()), 1), max(int((~same).sum()), 1)
    accepted_same = np.array([(similarity[same] >= t).sum() for t in thresholds]) / same_count
    accepted_different = np.array([(similarity[~same] >= t).sum() for t in thresholds]) / different_count
    return accepted_different, accepted_same


def equal_error_rate(similarity: np.ndarray, same: np.ndarray) -> float:
    """The error rate where false accepts equal false rejects (interpolated along the ROC curve)."""
    false_accept, true_accept = roc_points(similarity, same)
    false_reject = 1.0 - true_accept
    gap = false_accept - false_reject  # rises from -1 (accept nothing) to +1 (accept everything)
    cross = int(np.argmax(gap >= 0))
    if cross == 0:
        return float(false_accept[0])
    before, after = gap[cross - 1], gap[cross]
    weight = 0.0 if after == before else -before / (after - before)
    return float(false_accept[cross - 1] + weight * (false_accept[cross] - false_accept[cross - 1]))


def roc_auc(similarity: np.ndarray, same: np.ndarray) -> float:
    """Chance that a random same-class pair is more similar than a random different-class one."""
    return auroc(similarity[same], similarity[~same])


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    similarity: np.ndarray,
    same: np.ndarray,
    seed: int,
    resamples: int = 200,
) -> float:
    """Half-width of the 95% bootstrap interval of ``statistic`` over the pairs (seeded resamples)."""
    rng = np.random.default_rng([seed, 22])
    values = []
    for _ in range(resamples):
        rows = rng.integers(len(same), size=len(same))
        if same[rows].all() or not same[rows].any():
            continue
        values.append(statistic(similarity[rows], same[rows]))
    if not values:
        return 0.0
    low, high = np.percentile(values, [2.5, 97.5])
    return float((high - low) / 2)


__all__ = [
    "COSINE",
    "PAIR_PROBABILITY",
    "Pairs",
    "accuracy_at",
    "best_threshold",
    "bootstrap_interval",
    "cosine_similarity",
    "equal_error_rate",
    "pair_counts",
    "roc_auc",
    "roc_points",
    "sample_pairs",
    "similarities",
    "similarity_kind",
]

"""How much a query looks like one of the known classes: scores for rejecting images of none of them.

Each score is higher for a query that looks known. They read what a fitted classifier already has:

- ``max-softmax``: the largest softmax probability of the logits (Hendrycks and Gimpel 2017).
- ``energy``: log-sum-exp of the logits, the negative free energy (Liu et al. 2020): unlike the
  softmax it keeps the logits' magnitude, which a query far from every class lacks.
- ``max-cosine``: the largest cosine between the query's embedding and a class vector (the cosine
  classifier's weights, or the prototypes).
- ``class-distance``: that cosine measured in each class's own spread, from the support set alone: each
  support image's cosine to the prototype of its class's other images (leave-one-out) gives the class
  a mean and a standard deviation, and the query's cosine to the class becomes a z-score; the best class
  counts. A class with one image takes the spread pooled over the classes that have more; with one shot
  everywhere it is ``max-cosine``. A relative distance in the spirit of Ren et al. (2021).

:func:`suggest_threshold` picks a threshold from the support set alone for a stated share of known images
to reject (:func:`between_class_threshold` one where no image can be left out), and :func:`auroc` /
:func:`false_accept_rate` measure a score on known and unknown queries.
A logit score of a *fitted* classifier (fine-tuned weights and bias) is read from that classifier's
logits, whose scale the prototypes' do not share; its threshold comes from folds of the support set,
each held out of a fit on the rest (:func:`held_out_folds`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdfewshot.methods.prototype import normalise

MIN_SPREAD = 0.02  # a class whose images agree perfectly still gets some width


def prototypes_of(support: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The normalised mean of each class's unit-length support embeddings."""
    sums = np.zeros((num_classes, support.shape[1]))
    np.add.at(sums, labels, normalise(support))
    return normalise(sums)


@dataclass(frozen=True)
class Evidence:
    """What the scores read for a set of queries: the classifier's logits, the queries' embeddings, the
    class vectors it compares them with, and the support set those came from."""

    logits: np.ndarray  # [q, classes]
    queries: np.ndarray  # [q, d]
    class_vectors: np.ndarray  # [classes, d]
    support: np.ndarray  # [n, d]
    labels: np.ndarray  # [n]


def max_softmax(evidence: Evidence) -> np.ndarray:
    shifted = np.exp(evidence.logits - evidence.logits.max(axis=1, keepdims=True))
    return np.asarray((shifted / shifted.sum(axis=1, keepdims=True)).max(axis=1))


def energy(evidence: Evidence) -> np.ndarray:
    top = evidence.logits.max(axis=1)
    return np.asarray(top + np.log(np.exp(evidence.logits - top[:, None]).sum(axis=1)))


def max_cosine(evidence: Evidence) -> np.ndarray:
    return np.asarray((normalise(evidence.queries) @ normalise(evidence.class_vectors).T).max(axis=1))


def class_spread(support: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class's mean and standard deviation of its support images' leave-one-out cosines to the
    prototype of the class's other images; pooled values for classes with one image (0 and 1 when no
    class has two)."""
    units = normalise(support)
    sums = np.zeros((num_classes, units.shape[1]))
    np.add.at(sums, labels, units)
    counts = np.bincount(labels, minlength=num_classes)
    cosines: list[list[float]] = [[] for _ in range(num_classes)]
    for unit, label in zip(units, labels, strict=True):
        if counts[label] >= 2:
            others = sums[label] - unit
            cosines[label].append(float(unit @ others / max(np.linalg.norm(others), 1e-12)))
    pooled = [c for values in cosines for c in values]
    pooled_mean = float(np.mean(pooled)) if pooled else 0.0
    pooled_std = max(float(np.std(pooled)), MIN_SPREAD) if len(pooled) >= 2 else 1.0
    means = np.array([np.mean(v) if v else pooled_mean for v in cosines])
    spreads = np.array([max(float(np.std(v)), MIN_SPREAD) if len(v) >= 2 else pooled_std for v in cosines])
    return means, spreads


def class_distance(evidence: Evidence) -> np.ndarray:
    num_classes = len(evidence.class_vectors)
    means, spreads = class_spread(evidence.support, evidence.labels, num_classes)
    cosines = normalise(evidence.queries) @ normalise(evidence.class_vectors).T
    return np.asarray(((cosines - means) / spreads).max(axis=1))


LOGIT_SCORES = ("max-softmax", "energy")  # the scores a classifier's logits alone give

UNKNOWN_SCORES: dict[str, Callable[[Evidence], np.ndarray]] = {
    "max-softmax": max_softmax,
    "energy": energy,
    "max-cosine": max_cosine,
    "class-distance": class_distance,
}


def scores_from_logits(score: str, logits: np.ndarray) -> np.ndarray:
    """A score of :data:`LOGIT_SCORES` for logits ``[q, classes]``."""
    if score not in LOGIT_SCORES:
        raise ValueError(f"{score} needs more than logits")
    empty = np.zeros((len(logits), 0))
    return UNKNOWN_SCORES[score](Evidence(logits, empty, empty, empty, np.zeros(0, dtype=np.int64)))


def leave_one_out_scores(
    score: str, support: np.ndarray, labels: np.ndarray, num_classes: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each support image of a class with two or more, scored as a query against the support set without
    it (prototypes, logits ``scale * cos`` as the prototype-initialised cosine classifier gives, spreads):
    its ``score`` and whether it lands in its own class."""
    counts = np.bincount(labels, minlength=num_classes)
    values, own = [], []
    for i in np.flatnonzero(counts[labels] >= 2):
        rest = np.ones(len(labels), dtype=bool)
        rest[i] = False
        prototypes = prototypes_of(support[rest], labels[rest], num_classes)
        logits = scale * (normalise(support[i : i + 1]) @ prototypes.T)
        evidence = Evidence(logits, support[i : i + 1], prototypes, support[rest], labels[rest])
        values.append(float(UNKNOWN_SCORES[score](evidence)[0]))
        own.append(bool(logits.argmax() == labels[i]))
    return np.array(values), np.array(own, dtype=bool)


def held_out_folds(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """Masks of the support images to hold out together: fold ``j`` holds the ``j``-th image of every class
    that has two or more, so that the rest still has every class (cross-fitting with as many fits as the
    largest class has images, not one per image)."""
    counts = np.bincount(labels, minlength=num_classes)
    position = np.zeros(len(labels), dtype=np.int64)
    seen = np.zeros(num_classes, dtype=np.int64)
    for i, label in enumerate(labels):
        position[i], seen[label] = seen[label], seen[label] + 1
    eligible = counts[labels] >= 2
    folds = [eligible & (position == j) for j in range(int(counts.max(initial=0)))]
    return [fold for fold in folds if fold.any()]


def fold_scores(
    score: str, support: np.ndarray, labels: np.ndarray, num_classes: int, fitted_logits: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The held-out images of :func:`held_out_folds` scored from ``fitted_logits`` (for each fold, the
    logits of its images by the classifier fitted on the rest): their ``score`` and whether each lands in
    its own class."""
    folds = held_out_folds(labels, num_classes)
    if len(fitted_logits) != len(folds):
        raise ValueError(f"{len(fitted_logits)} sets of logits for {len(folds)} folds")
    values, own = [], []
    for out, logits in zip(folds, fitted_logits, strict=True):
        rest = ~out
        prototypes = prototypes_of(support[rest], labels[rest], num_classes)
        evidence = Evidence(logits, support[out], prototypes, support[rest], labels[rest])
        values.append(UNKNOWN_SCORES[score](evidence))
        own.append(logits.argmax(axis=1) == labels[out])
    if not values:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(values), np.concatenate(own)


def suggest_threshold(
    score: str,
    support: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    scale: float,
    reject_rate: float,
    fitted_logits: list[np.ndarray] | None = None,
) -> float | None:
    """The ``score`` below which about ``reject_rate`` of genuine images of the support classes fall,
    from the support set alone, among the held-out images that land in their own class; None when no
    class has two images.

    Images are left out one at a time and scored against the prototypes of the rest, or, for a logit
    score of a fitted classifier, held out in the folds of :func:`held_out_folds` and scored from
    ``fitted_logits`` (see :func:`fold_scores`).
    """
    if fitted_logits is not None and score in LOGIT_SCORES:
        values, own = fold_scores(score, support, labels, num_classes, fitted_logits)
    else:
        values, own = leave_one_out_scores(score, support, labels, num_classes, scale)
    if not own.any():
        return None
    return float(np.quantile(values[own], reject_rate))


def between_class_threshold(prototypes: np.ndarray) -> float | None:
    """The largest cosine between two classes' prototypes: a query no closer than that to its best class
    looks no more like it than two known classes look like each other. For one image a class (where no
    image can be left out) the threshold of max-cosine; None with fewer than two classes."""
    if len(prototypes) < 2:
        return None
    unit = normalise(prototypes)
    cosines = unit @ unit.T
    np.fill_diagonal(cosines, -np.inf)
    return float(cosines.max())


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of telling known (positive) from unknown queries by the score: the chance
    that a random known query scores above a random unknown one, ties counting half."""
    if not len(known) or not len(unknown):
        return float("nan")
    both = np.concatenate([known, unknown])
    order = both.argsort(kind="stable")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks of ties
        tied = both == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(known)].sum() - len(known) * (len(known) + 1) / 2) / (len(known) * len(unknown)))


def false_accept_rate(known: np.ndarray, unknown: np.ndarray, accepted: float = 0.95) -> float:
    """The share of unknown queries accepted at the threshold that accepts ``accepted`` of the known ones."""
    threshold = np.quantile(known, 1.0 - accepted)
    return float(np.mean(unknown >= threshold))

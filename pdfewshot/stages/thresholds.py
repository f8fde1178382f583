"""The threshold below which a classifier answers "unknown", which every predictor stores and ``predict``, the
page and the Python API apply by default.

Chosen by what the classifier has (measured in docs/results.md, "Unknown by default"):

1. two or more images of some class: the score of its support images left out one at a time, at the share
   ``--reject-rate`` of them that it may reject (:func:`pdfewshot.methods.unknown.suggest_threshold`);
2. else (one image a class, or classes taught one by one) for max-cosine, the embedding's pair threshold:
   the cosine at which ``pretrain`` told two images of one class from two of different classes;
3. else the largest cosine between two classes' prototypes (:func:`between_class_threshold`).

Each is stored with where it came from, which ``predict`` says when it answers "unknown".
"""

import numpy as np

from pdfewshot.methods.unknown import between_class_threshold
from pdfewshot.storage.metadata import EmbeddingMeta

LEAVE_ONE_OUT = "the support images left out one at a time (finetune)"
PAIR = "the embedding's pair threshold (pretrain)"
BETWEEN_CLASSES = "the cosine between the two closest classes"


def pair_threshold(meta: EmbeddingMeta) -> float | None:
    """The embedding's cosine pair threshold (``compare``'s), when ``pretrain`` chose one."""
    verification = meta.verification
    if verification is None or verification.similarity != "cosine":
        return None
    return verification.threshold


def stored_threshold(
    score: str, leave_one_out: float | None, embedding: EmbeddingMeta, prototypes: np.ndarray
) -> tuple[float | None, str | None]:
    """The threshold of ``score`` a predictor stores, and its origin (None, None: none can be chosen)."""
    if leave_one_out is not None:
        return leave_one_out, LEAVE_ONE_OUT
    if score != "max-cosine":
        return None, None
    pair = pair_threshold(embedding)
    if pair is not None:
        return pair, PAIR
    between = between_class_threshold(prototypes)
    return (between, BETWEEN_CLASSES) if between is not None else (None, None)


def after_classes_change(
    score: str, threshold: float | None, origin: str | None, prototypes: np.ndarray | None
) -> tuple[float | None, str | None]:
    """The threshold once classes are taught or removed: one that holds for any classes (the embedding's, the
    support images' spread, or one an older predictor stored without its origin) is kept; one chosen from the
    classes, or none, is chosen again from the class ``prototypes`` now (None: a predictor without them)."""
    if (threshold is not None and origin != BETWEEN_CLASSES) or score != "max-cosine" or prototypes is None:
        return threshold, origin
    between = between_class_threshold(prototypes)
    return between, BETWEEN_CLASSES if between is not None else None

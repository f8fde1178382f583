"""A rejection threshold suggested from the support set alone, by leave-one-out.

Each support image is scored against class prototypes built without it, through the predictor's
cosine-softmax (its scale, zero bias). Among the left-out images that land in their own class, the
5th percentile of the winning probability is the suggestion: about 95% of genuine images of the
support classes clear it. It needs two or more images per class; with one shot there is nothing to
leave out.
"""

import numpy as np

ACCEPTED_SHARE = 0.95


def leave_one_out_threshold(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, scale: float) -> float | None:
    """The suggested ``--reject-below`` probability, or None when no class has two support images."""
    units = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sums = np.zeros((num_classes, units.shape[1]))
    np.add.at(sums, labels, units)
    counts = np.bincount(labels, minlength=num_classes)
    winners = []
    for unit, label in zip(units, labels, strict=True):
        if counts[label] < 2:
            continue
        held_out = sums.copy()
        held_out[label] -= unit
        prototypes = held_out / np.maximum(np.linalg.norm(held_out, axis=1, keepdims=True), 1e-12)
        logits = scale * prototypes @ unit
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        if probabilities.argmax() == label:
            winners.append(probabilities.max())
    if not winners:
        return None
    return float(np.quantile(winners, 1.0 - ACCEPTED_SHARE))

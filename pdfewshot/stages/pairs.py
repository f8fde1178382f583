"""``evaluate --pairs N``: verification of seeded pairs (half of one class) by an embedding checkpoint.

Reports accuracy at the checkpoint's threshold, ROC AUC and the equal error rate, each with a 95%
bootstrap interval over the pairs. A checkpoint without a threshold gets one here: it is chosen on the
first half of the pairs (the best accuracy there), the accuracy is measured on the other half, and the
threshold is stored in the checkpoint for ``compare``.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import EvaluateConfig
from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import about
from pdfewshot.methods.verification import (
    Pairs,
    accuracy_at,
    best_threshold,
    bootstrap_interval,
    equal_error_rate,
    pair_counts,
    roc_auc,
    roc_points,
    sample_pairs,
    similarities,
    similarity_kind,
)
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.inference import run_fast
from pdfewshot.storage.checkpoint import checkpoint_lock, read_checkpoint, save_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, Verification


@dataclass
class PairsResult:
    similarity: str
    pairs: int
    threshold: float
    threshold_from: str
    stored: bool  # whether the threshold was chosen here and stored in the checkpoint
    accuracy: float
    accuracy_interval: float
    auc: float
    auc_interval: float
    eer: float
    eer_interval: float
    measured_on: int  # pairs the accuracy was measured on
    false_accept: list[float] = field(default_factory=list)  # the ROC curve, for the picture
    true_accept: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "similarity": self.similarity, "pairs": self.pairs, "threshold": self.threshold,
            "threshold_from": self.threshold_from, "stored": self.stored, "accuracy": self.accuracy,
            "accuracy_interval95": self.accuracy_interval, "accuracy_measured_on": self.measured_on,
            "roc_auc": self.auc, "roc_auc_interval95": self.auc_interval, "eer": self.eer,
            "eer_interval95": self.eer_interval,
        }  # fmt: skip


def choose_threshold(net: EmbeddingNet, embeddings: np.ndarray, pairs: Pairs, where: str) -> Verification:
    """The threshold with the best verification accuracy on ``pairs`` (indices into ``embeddings``)."""
    scores = similarities(net, embeddings[pairs.first], embeddings[pairs.second])
    threshold, accuracy = best_threshold(scores, pairs.same)
    return Verification(threshold, similarity_kind(net), where, round(accuracy, 4))


VALIDATION_PAIRS = 1000  # pairs that pretrain chooses its threshold on, at most


def threshold_on(net: EmbeddingNet, images: ImageSet, seed: int, where: str, optimistic: bool) -> Verification | None:
    """The threshold chosen on up to :data:`VALIDATION_PAIRS` seeded pairs of ``images`` (None when they give no
    pairs of both kinds); ``where`` says what the images are, after "N pairs of images of M ".
    ``optimistic``: its accuracy there flatters it (see :class:`Verification`)."""
    labels = images.labels
    count = min(VALIDATION_PAIRS, 2 * min(pair_counts(labels))) if len(labels) else 0
    if count < 2:
        return None
    pairs = sample_pairs(labels, count, seed)
    used, positions = np.unique(np.concatenate([pairs.first, pairs.second]), return_inverse=True)
    embeddings = run_fast(net, images.images[used])  # only the images in pairs: the set may be large
    pairs = replace(pairs, first=positions[: len(pairs)], second=positions[len(pairs) :])
    classes = len(np.unique(labels[used]))
    verification = choose_threshold(net, embeddings, pairs, f"{count} pairs of images of {classes} {where}")
    return replace(verification, optimistic=optimistic)


def store_verification(model: Path, net: EmbeddingNet, verification: Verification) -> None:
    """Writes ``verification`` into the embedding checkpoint (under its lock, atomically)."""
    with about("model"), checkpoint_lock(model):
        _, meta = read_checkpoint(model, EmbeddingMeta)
        save_checkpoint(model, net, replace(meta, verification=verification))


def evaluate_pairs(
    config: EvaluateConfig,
    model: Path,
    net: EmbeddingNet,
    meta: EmbeddingMeta,
    imageset: ImageSet,
    embeddings: np.ndarray,
) -> PairsResult:
    """Verification of ``config.pairs`` seeded pairs of ``imageset`` (embedded as ``embeddings``)."""
    assert config.pairs is not None
    pairs = sample_pairs(imageset.labels, config.pairs, config.seed)
    scores = similarities(net, embeddings[pairs.first], embeddings[pairs.second])
    kind = similarity_kind(net)
    stored = meta.verification if meta.verification is not None and meta.verification.similarity == kind else None
    if stored is not None and stored.optimistic:
        stored = None  # chosen on classes the network learned: classes it did not learn choose better
    measured = np.arange(len(pairs))
    if stored is None:
        half = len(pairs) // 2
        where = f"{half} pairs of {imageset.num_classes} classes (evaluate --pairs {config.pairs}, seed {config.seed})"
        stored = choose_threshold(net, embeddings, pairs.part(np.arange(half)), where)
        store_verification(model, net, stored)
        measured, chosen_here = np.arange(half, len(pairs)), True
    else:
        chosen_here = False
    same, held = pairs.same[measured], scores[measured]
    threshold = stored.threshold

    def accuracy(values: np.ndarray, truth: np.ndarray) -> float:
        return accuracy_at(values, truth, threshold)

    false_accept, true_accept = roc_points(scores, pairs.same)
    return PairsResult(
        similarity=kind, pairs=len(pairs), threshold=threshold, threshold_from=stored.chosen_on, stored=chosen_here,
        accuracy=accuracy(held, same), accuracy_interval=bootstrap_interval(accuracy, held, same, config.seed),
        auc=roc_auc(scores, pairs.same), auc_interval=bootstrap_interval(roc_auc, scores, pairs.same, config.seed),
        eer=equal_error_rate(scores, pairs.same),
        eer_interval=bootstrap_interval(equal_error_rate, scores, pairs.same, config.seed),
        measured_on=len(measured), false_accept=false_accept.tolist(), true_accept=true_accept.tolist(),
    )  # fmt: skip

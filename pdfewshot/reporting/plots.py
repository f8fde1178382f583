"""Pictures of results: confusion matrix, per-class accuracy, loss curve (matplotlib, an optional extra).

Each function writes one PNG atomically and returns its path. Install with ``pip install ".[plots]"``.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.atomic import atomic_write


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise PdfewshotError(': needs matplotlib; install it with: pip install "pdfewshot[plots]"', "plots") from None
    return plt


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(figure: Any, path: Path) -> Path:
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight"))
    _pyplot().close(figure)
    return path


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Rows: true class; columns: predicted class; cells: share of the row's queries."""
    plt = _pyplot()
    count = len(class_names)
    matrix = np.zeros((count, count))
    np.add.at(matrix, (labels, predictions), 1)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.25 * count, 24)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(count)
    if count <= 60:
        axes.set_xticks(ticks, class_names, rotation=90, fontsize=6)
        axes.set_yticks(ticks, class_names, fontsize=6)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(
        f"confusion matrix ({int(matrix.sum())} queries, accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f})"
    )
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class's queries")
    return _save(figure, path)


def class_accuracy_bars(names: Sequence[str], accuracies: Sequence[float], path: Path, title: str) -> Path:
    """One bar per class, sorted from worst to best, with the mean as a line."""
    plt = _pyplot()
    order = np.argsort(accuracies, kind="stable")
    figure, axes = plt.subplots(figsize=(min(4 + 0.18 * len(names), 30), 4))
    axes.bar(np.arange(len(names)), np.asarray(accuracies)[order], color="tab:blue")
    axes.axhline(float(np.mean(accuracies)), color="tab:red", linewidth=1, label=f"mean {np.mean(accuracies):.3f}")
    if len(names) <= 80:
        axes.set_xticks(np.arange(len(names)), [names[i] for i in order], rotation=90, fontsize=6)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, path)


def loss_curve(losses: Sequence[float], path: Path, title: str) -> Path:
    """The loss at each step and its moving average over 20 steps."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    axes.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=0.8, label="loss per step")
    if len(losses) >= 20:
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        axes.plot(steps[19:], smooth, color="tab:blue", linewidth=1.6, label="mean of 20 steps")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    return _save(figure, path)


def accuracy_pictures(
    labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], stem: Path, title: str
) -> list[Path]:
    """``<stem>.confusion.png`` and ``<stem>.per_class.png`` (classes that have queries) for predictions
    of class ids into ``class_names``."""
    counts = np.bincount(labels, minlength=len(class_names))
    hits = np.bincount(labels[labels == predictions], minlength=len(class_names))
    queried = np.flatnonzero(counts)
    return [
        confusion_matrix(labels, predictions, class_names, stem.with_name(stem.name + ".confusion.png")),
        class_accuracy_bars(
            [class_names[c] for c in queried.tolist()],
            (hits[queried] / counts[queried]).tolist(),
            stem.with_name(stem.name + ".per_class.png"),
            f"{title}: accuracy per class",
        ),
    ]


def score_histogram(
    known: Sequence[float], unknown: Sequence[float], threshold: float | None, path: Path, title: str
) -> Path:
    """Histograms of an unknown score for known and unknown queries, with the rejection threshold."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    both = np.concatenate([np.asarray(known), np.asarray(unknown)])
    bins = np.linspace(float(both.min()), float(both.max()), 50) if len(both) else 10
    axes.hist(known, bins=bins, alpha=0.6, color="tab:blue", label=f"known classes ({len(known)} queries)")
    axes.hist(unknown, bins=bins, alpha=0.6, color="tab:red", label=f"unknown classes ({len(unknown)} queries)")
    if threshold is not None:
        axes.axvline(threshold, color="black", linewidth=1.2, label=f"mean suggested threshold {threshold:.3f}")
    axes.set_xlabel("score (higher: looks known)")
    axes.set_ylabel("queries")
    axes.set_title(title)
    axes.legend()
    return _save(figure, path)


def roc_curve(false_accept: Sequence[float], true_accept: Sequence[float], path: Path, title: str) -> Path:
    """The ROC curve of pair verification: same-class pairs accepted against different-class ones."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(false_accept, true_accept, color="tab:blue", linewidth=1.5)
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="chance")
    axes.set_xlabel("different-class pairs called same (false accept rate)")
    axes.set_ylabel("same-class pairs called same (true accept rate)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, path)

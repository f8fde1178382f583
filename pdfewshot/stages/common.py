"""What several stages share: opening checkpoints by their sidecars and reloading their data."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paddle
from paddle import nn

from pdfewshot.checkpoint import load_weights, read_checkpoint
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sources import LoadReport, load_sources, resolve_source
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.report import err_console


def open_embedding(path: Path, option: str = "--model") -> tuple[EmbeddingNet, dict[str, Any]]:
    """The embedding network of a ``pretrain`` checkpoint, with its sidecar."""
    state, meta = read_checkpoint(path, "embedding", option)
    net = EmbeddingNet(
        meta["backbone"], meta["channels"], meta["embedding_dim"], meta["image_size"], meta["loss"] == "pair-bce"
    )
    load_weights(net, state, path, option)
    net.eval()
    return net, meta


def open_predictor(path: Path, option: str = "--model") -> tuple[nn.Layer, dict[str, Any]]:
    """The predictor of a ``finetune`` checkpoint (images in, class logits out), with its metadata."""
    state, meta = read_checkpoint(path, "predictor", option)
    pair = meta.get("method") == "pair"
    embedding = EmbeddingNet(meta["backbone"], meta["channels"], meta["embedding_dim"], meta["image_size"], pair)
    predictor: nn.Layer
    if pair:
        support = paddle.zeros([meta["support_count"], meta["embedding_dim"]])
        labels = paddle.zeros([meta["support_count"]], dtype="int64")
        predictor = PairPredictor(embedding, support, labels, len(meta["class_names"]))
    else:
        classifier = CosineClassifier(len(meta["class_names"]), meta["embedding_dim"], meta["scale"])
        predictor = Predictor(embedding, classifier)
    load_weights(predictor, state, path, option)
    predictor.eval()
    return predictor, meta


def warn_skipped(report: LoadReport) -> None:
    """One line on stderr when unreadable images were skipped."""
    if report.skipped:
        path, reason = report.skipped[0]
        err_console.print(
            f"warning: skipped {len(report.skipped)} unreadable images (first: {path}: {reason}); "
            "--strict makes this an error",
            markup=False,
        )


def load_checkpoint_data(
    meta: dict[str, Any], override: Sequence[str] = (), strict: bool = False
) -> tuple[ImageSet, list[str]]:
    """The images a checkpoint was made from (or ``override``), at its image size and channels."""
    sources = [resolve_source(s) for s in override] if override else list(meta["data"])
    option = "--data" if override else "checkpoint data source"
    imageset, report = load_sources(sources, meta["image_size"], meta["channels"], option=option, strict=strict)
    warn_skipped(report)
    return imageset, sources


def require_classes(imageset: ImageSet, class_names: Sequence[str], what: str) -> None:
    """Fails clearly when classes that a checkpoint names are not in the data."""
    missing = sorted(set(class_names) - set(imageset.class_names))
    if missing:
        raise PdfewshotError(f"{what}: {len(missing)} classes are not in the data, e.g. {missing[0]}")


def few_shot_classes(meta: dict[str, Any], imageset: ImageSet, other_data: bool) -> list[str]:
    """The classes an embedding may be tested on: its held-out (novel) classes, or with ``--data``
    every class of that data that it was not trained on; an error when there are none."""
    if other_data:
        base = set(meta["split"]["base"])
        classes = [name for name in imageset.class_names if name not in base]
        if not classes:
            raise PdfewshotError("--data: no novel classes (all are base classes of the embedding)")
        return classes
    present = set(imageset.class_names)
    classes = [name for name in meta["split"]["novel"] if name in present]
    if not meta["split"]["novel"]:
        raise PdfewshotError(
            "--model: the embedding holds out no classes (pretrained with --novel-fraction 0); give --data"
        )
    if not classes:
        raise PdfewshotError("--model: none of the embedding's held-out classes are in the data")
    return classes

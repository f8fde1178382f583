"""What several stages share: opening checkpoints and reloading the data they were made from."""

from collections.abc import Sequence
from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sources import LoadReport, load_sources, resolve_source
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.reporting.console import err_console
from pdfewshot.storage.checkpoint import load_weights, read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, PredictorMeta


def embedding_net(meta: EmbeddingMeta | PredictorMeta) -> EmbeddingNet:
    """An untrained network of the shape a checkpoint describes."""
    return EmbeddingNet(
        meta.backbone,
        meta.channels,
        meta.embedding_dim,
        meta.image_size,
        meta.pair_head,
        meta.normalisation,
        meta.readout,
    )


def open_embedding(path: Path) -> tuple[EmbeddingNet, EmbeddingMeta]:
    """The embedding network of a ``pretrain`` checkpoint, with its metadata."""
    state, meta = read_checkpoint(path, EmbeddingMeta)
    net = embedding_net(meta)
    load_weights(net, state, path)
    net.eval()
    return net, meta


def open_predictor(path: Path) -> tuple[nn.Layer, PredictorMeta]:
    """The predictor of a ``finetune`` checkpoint (images in, class logits out), with its metadata."""
    state, meta = read_checkpoint(path, PredictorMeta)
    embedding = embedding_net(meta)
    predictor: nn.Layer
    if meta.pair_head:
        support = paddle.zeros([meta.support_count, embedding.output_dim])
        labels = paddle.zeros([meta.support_count], dtype="int64")
        predictor = PairPredictor(embedding, support, labels, len(meta.class_names))
    else:
        classifier = CosineClassifier(len(meta.class_names), embedding.output_dim, meta.scale)
        predictor = Predictor(embedding, classifier)
        if "prototypes" not in state and "classifier.weight" in state:
            # Written before predictors kept their prototypes: the weights are the nearest there is.
            state["prototypes"] = F.normalize(paddle.to_tensor(state["classifier.weight"]), axis=1)
    load_weights(predictor, state, path)
    predictor.eval()
    return predictor, meta


def warn_skipped(report: LoadReport) -> None:
    """One line on stderr for each note about the decoded cache, and when unreadable images were skipped."""
    for note in report.notes:
        err_console.print(note, markup=False, soft_wrap=True)
    if report.skipped:
        path, reason = report.skipped[0]
        err_console.print(
            f"warning: skipped {len(report.skipped)} unreadable images (first: {path}: {reason}); "
            "--strict makes this an error",
            markup=False,
        )


def load_checkpoint_data(
    meta: EmbeddingMeta | PredictorMeta, override: Sequence[str] = (), strict: bool = False
) -> tuple[ImageSet, list[str]]:
    """The images a checkpoint was made from (or ``override``, the ``data`` setting), at its image size
    and channels."""
    if override:
        with about("data"):
            sources = [resolve_source(s) for s in override]
            imageset, report = load_sources(sources, meta.image_size, meta.channels, strict=strict)
    elif not meta.data:
        raise PdfewshotError(": made from no data (pretrain --epochs 0); give --data with the classes to use", "model")
    else:
        sources = list(meta.data)
        try:
            imageset, report = load_sources(sources, meta.image_size, meta.channels, strict=strict)
        except PdfewshotError as error:
            raise PdfewshotError(f"the checkpoint's data source {error}") from None
    warn_skipped(report)
    return imageset, sources


def require_classes(imageset: ImageSet, class_names: Sequence[str], what: str) -> None:
    """Fails clearly when classes that a checkpoint names are not in the data."""
    missing = sorted(set(class_names) - set(imageset.class_names))
    if missing:
        raise PdfewshotError(f"{what}: {len(missing)} classes are not in the data, e.g. {missing[0]}")


def few_shot_classes(meta: EmbeddingMeta, imageset: ImageSet, other_data: bool) -> list[str]:
    """The classes an embedding may be tested on: its held-out (novel) classes, or with ``--data``
    every class of that data that it was not trained on; an error when there are none."""
    if other_data:
        trained = set(meta.split.base) | set(meta.split.validation)
        classes = [name for name in imageset.class_names if name not in trained]
        if not classes:
            raise PdfewshotError(": no novel classes (all are base classes of the embedding)", "data")
        return classes
    present = set(imageset.class_names)
    classes = [name for name in meta.split.novel if name in present]
    if not meta.split.novel:
        raise PdfewshotError(
            ": the embedding holds out no classes (pretrained with --novel-fraction 0, the default for your own "
            "data); give --data with the classes to fine-tune or evaluate on",
            "model",
        )
    if not classes:
        raise PdfewshotError(": none of the embedding's held-out classes are in the data", "model")
    return classes

"""What several stages share: opening checkpoints and reloading the data they were made from."""

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sources import LoadReport, load_sources, resolve_source
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.faces.finder import NO_FACE, FaceChips
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
        face_finder=meta.face_alignment is not None,
    )


def face_chips(layer: nn.Layer, meta: EmbeddingMeta | PredictorMeta) -> FaceChips | None:
    """What makes images into rows for a face checkpoint's network (``layer``: an embedding, or a predictor
    holding one): the aligned chip of each image's largest face; None for other checkpoints."""
    net = layer if isinstance(layer, EmbeddingNet) else getattr(layer, "embedding", None)
    if meta.face_alignment is None or net is None or net.face_finder is None:
        return None
    return FaceChips(net.face_finder, meta.face_alignment)


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


def checkpoint_chips(state: dict[str, Any], meta: EmbeddingMeta | PredictorMeta) -> FaceChips | None:
    """The face chips a checkpoint's own face finder cuts, from its state (an embedding's or a predictor's);
    None for a checkpoint that is not on the face route."""
    if meta.face_alignment is None:
        return None
    prefix = next((p for p in ("face_finder.", "embedding.face_finder.") if any(k.startswith(p) for k in state)), None)
    if prefix is None:
        raise PdfewshotError("a face checkpoint without its face finder's weights")
    finder = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return FaceChips.from_weights(finder, meta.face_alignment, "the checkpoint's face finder")


SHOWN_CLASSES = 20  # classes named one line each when images lost their faces; the rest are counted


def warn_skipped(report: LoadReport, imageset: ImageSet, shaper: FaceChips | None = None) -> None:
    """One line on stderr for each note about the decoded cache, one for the unreadable images, and on the face
    route one for each class with images in which no face was found (how many of its images, which, and
    whether the class is left out: counted against ``imageset``, the images kept), and one for images in which
    several faces were found."""
    for note in report.notes:
        err_console.print(note, markup=False, soft_wrap=True)
    unreadable = [(path, reason) for path, reason in report.skipped if reason != NO_FACE]
    if unreadable:
        path, reason = unreadable[0]
        _warn(
            f"warning: skipped {len(unreadable)} unreadable images (first: {path}: {reason}); "
            "--strict makes this an error"
        )
    lost = faceless_by_class(report)
    for class_name in sorted(lost)[:SHOWN_CLASSES]:
        _warn(_faceless_line(class_name, lost[class_name], imageset.count(class_name)))
    if len(lost) > SHOWN_CLASSES:
        _warn(f"warning: and {len(lost) - SHOWN_CLASSES} more classes with images in which no face was found")
    if lost:
        total = sum(len(files) for files in lost.values())
        _warn(
            f"warning: skipped {total} images with no face found in {len(lost)} classes; --strict makes this an error"
        )
    if shaper is not None and shaper.several:
        _warn(f"note: {shaper.several} images show several faces; the largest face of each is used")


def _warn(line: str) -> None:
    err_console.print(line, markup=False, soft_wrap=True)


def faceless_by_class(report: LoadReport) -> dict[str, list[str]]:
    """The images of each class in which no face was found (relative paths)."""
    lost: dict[str, list[str]] = {}
    for class_name, skipped in report.by_class.items():
        faceless = [relative for relative, why in skipped if why == NO_FACE]
        if faceless:
            lost[class_name] = faceless
    return lost


def first_few(names: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` names, and how many more there are."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _faceless_line(class_name: str, faceless: list[str], kept: int) -> str:
    names = first_few([PurePosixPath(relative).name for relative in faceless])
    left_out = "; the class is left out" if kept == 0 else ""
    total = len(faceless) + kept
    return f"warning: class {class_name}: no face found in {len(faceless)} of {total} images ({names}){left_out}"


def load_checkpoint_data(
    meta: EmbeddingMeta | PredictorMeta,
    override: Sequence[str] = (),
    strict: bool = False,
    shaper: FaceChips | None = None,
) -> tuple[ImageSet, list[str], LoadReport]:
    """The images a checkpoint was made from (or ``override``, the ``data`` setting), at its image size
    and channels (face chips, with ``shaper``), and what loading skipped (said on stderr)."""
    if override:
        with about("data"):
            sources = [resolve_source(s) for s in override]
            imageset, report = load_sources(sources, meta.image_size, meta.channels, strict, shaper)
    elif not meta.data:
        raise PdfewshotError(": made from no data (pretrain --epochs 0); give --data with the classes to use", "model")
    else:
        sources = list(meta.data)
        try:
            imageset, report = load_sources(sources, meta.image_size, meta.channels, strict, shaper)
        except PdfewshotError as error:
            raise PdfewshotError(f"the checkpoint's data source {error}") from None
    warn_skipped(report, imageset, shaper)
    return imageset, sources, report


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

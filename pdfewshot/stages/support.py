"""Teaching a predictor a class from a few images, or more images of one it has, or dropping one,
without retraining.

A new class gets a row of W equal to its prototype (the normalised mean embedding of its images) and a
zero bias, so it is scored exactly as ``finetune`` starts a class; the other rows keep their tuned
values. More images of a class it has move its row and prototype towards theirs, weighted by how many
images each side stands for. A pair-head predictor (pair-bce) simply stores the new images'
embeddings. Every change is a read-modify-write under the checkpoint's lock, so the CLI and servers
changing one predictor at the same time all keep their changes.

A predictor can also start with no classes from an embedding checkpoint (``serve --model`` an
embedding): its first class is taught into a classifier made then, and dropping its last class removes
the predictor's files, which is the same empty state again.
"""

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.config import DEFAULT_REJECT_SCORE, FinetuneConfig
from pdfewshot.data.sources import load_image_files
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import embed
from pdfewshot.nets.faces.finder import FaceChips
from pdfewshot.reporting.console import err_console
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import checkpoint_chips, first_few, open_embedding, open_predictor
from pdfewshot.stages.predict import collect_images
from pdfewshot.stages.test import manifest_path, read_manifest
from pdfewshot.stages.thresholds import after_classes_change, stored_threshold
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import checkpoint_lock, read_checkpoint, save_checkpoint, sidecar_path
from pdfewshot.storage.metadata import PredictorMeta, QueryManifest


@dataclass(frozen=True)
class Taught:
    """What a ``teach`` did: the class, whether it is new, the images it took and the class's total."""

    name: str
    new: bool
    images: int
    total: int | None  # support images of the class now (None: not known, the predictor has no manifest)


def _save(model: Path, predictor: paddle.nn.Layer, meta: PredictorMeta, manifest: QueryManifest) -> None:
    with about("model"):
        save_checkpoint(model, predictor, meta)
        write_json(manifest_path(model, meta), manifest.to_json())


def _manifest_if_there(model: Path, meta: PredictorMeta) -> QueryManifest | None:
    """The predictor's manifest, or None when the file is missing (a class can be added to or dropped
    from a predictor copied without it: there are just no held-out queries to keep in step)."""
    if not manifest_path(model, meta).is_file():
        return None
    with about("model"):
        return read_manifest(model, meta)


def support_counts(meta: PredictorMeta, manifest: QueryManifest | None) -> dict[str, int | None]:
    """Support images per class: finetune's (from the manifest) plus those taught since."""
    finetuned = Counter(item.class_name for item in manifest.support) if manifest is not None else None
    counts: dict[str, int | None] = {}
    for name in meta.class_names:
        added = int(meta.added_classes.get(name, {}).get("images", 0))
        taught_only = name in meta.added_classes and meta.added_classes[name].get("new", True)
        if taught_only:
            counts[name] = added
        elif finetuned is not None:
            counts[name] = finetuned[name] + added
        else:
            counts[name] = None
    return counts


def example_folders(meta: PredictorMeta, name: str) -> list[Path]:
    """The folders a taught class's images came from (newest last); empty for finetune's classes."""
    record = meta.added_classes.get(name, {})
    folders = record.get("folders") or ([record["folder"]] if "folder" in record else [])
    return [Path(folder) for folder in folders]


def _open_locked(
    model: Path, locked: ExitStack, embedding: Path | None = None
) -> tuple[paddle.nn.Layer, PredictorMeta]:
    """Takes the checkpoint's lock (held until ``locked`` closes), then opens the predictor; when there is
    none yet and ``embedding`` is given, a predictor of no classes over that embedding."""
    with about("model"):
        locked.enter_context(checkpoint_lock(model))
        if embedding is not None and not model.exists():
            return empty_predictor(embedding, model)
        return open_predictor(model)


def empty_predictor(embedding: Path, model: Path) -> tuple[Predictor, PredictorMeta]:
    """A cosine classifier of no classes over the embedding checkpoint ``embedding``, to be saved as ``model``:
    what a page started from an embedding teaches its first class into."""
    net, meta = open_embedding(embedding)
    if meta.pair_head:
        raise PdfewshotError(f"{embedding}: a pair-bce embedding classifies through stored pairs; finetune it first")
    scale = FinetuneConfig().scale
    threshold, origin = stored_threshold(DEFAULT_REJECT_SCORE, None, meta, np.zeros((0, net.output_dim)))
    classifier = CosineClassifier(0, net.output_dim, scale)
    predictor = Predictor(net, classifier, paddle.zeros([0, net.output_dim]))
    predictor_meta = PredictorMeta(
        backbone=meta.backbone, image_size=meta.image_size, channels=meta.channels, embedding_dim=meta.embedding_dim,
        readout=meta.readout, class_names=[], scale=scale, method="cosine", loss=meta.loss, support_count=0, data=[],
        embedding_checkpoint=str(embedding.resolve()), embedding_config=meta.config, shot=0, seed=0,
        queries_manifest=model.stem + ".queries.json", suggested_reject_below=threshold, config={},
        normalisation=meta.normalisation, reject_score=DEFAULT_REJECT_SCORE, face_alignment=meta.face_alignment,
        reject_origin=origin,
    )  # fmt: skip
    return predictor, predictor_meta


def add_class(model: Path, name: str, folder: Path, strict: bool = False) -> Taught:
    """Teaches class ``name`` from the images in ``folder`` (a new class, or more images of one the
    predictor has); ``strict``: an image with no face found is an error rather than skipped."""
    set_paddle_threads()
    with about("model"):
        state, meta = read_checkpoint(model, PredictorMeta)  # for the image size; read again under the lock
    images = support_images(collect_images([folder]), name, meta, checkpoint_chips(state, meta), strict)
    return teach(model, name, images, folder)


def support_images(
    paths: list[Path], name: str, meta: PredictorMeta, chips: FaceChips | None, strict: bool = False
) -> np.ndarray:
    """The support images of class ``name`` as the predictor takes them. On the face route an image with no
    face (or unreadable) is skipped with a warning naming it and why (an error under ``strict``), and a class
    left with none is an error naming it and its images."""
    images, read, skipped = load_image_files(paths, meta.image_size, meta.channels, chips is None or strict, chips)
    if skipped:
        shown = first_few(skipped)
        if not read:
            raise PdfewshotError(f"class {name}: none of its {len(skipped)} images can be used ({shown})")
        err_console.print(
            f"warning: class {name}: skipped {len(skipped)} of {len(paths)} images ({shown}); "
            f"taught from the other {len(read)}",
            markup=False,
            soft_wrap=True,
        )
    return images


def teach(model: Path, name: str, images: np.ndarray, folder: Path, embedding: Path | None = None) -> Taught:
    """Teaches class ``name`` from uint8 ``images`` (of the predictor's size and channels), which were
    read from ``folder`` (recorded in the checkpoint), under the checkpoint's lock. With ``embedding``, a
    predictor that does not exist yet is made over that embedding checkpoint."""
    if len(images) == 0:
        raise PdfewshotError(": no images to teach from", "folder")
    with ExitStack() as locked:
        predictor, meta = _open_locked(model, locked, embedding)
        expected = (meta.image_size, meta.image_size, meta.channels)
        if images.shape[1:] != expected:
            raise ValueError(f"images of shape {images.shape[1:]}, the predictor takes {expected}")
        embeddings = embed(predictor.embedding, images)
        manifest = _manifest_if_there(model, meta)
        new = name not in meta.class_names
        if new:
            updated = _with_new_class(predictor, meta, embeddings)
        else:
            before = support_counts(meta, manifest)[name]
            updated = _extended(predictor, meta.class_names.index(name), embeddings, before or meta.shot)
        record: dict[str, Any] = dict(meta.added_classes.get(name, {"new": new}))
        folders = [str(f) for f in example_folders(meta, name)]
        record["folders"] = folders + [str(folder.resolve())] * (str(folder.resolve()) not in folders)
        record["images"] = int(record.get("images", 0)) + len(embeddings)
        record.pop("folder", None)
        classes = [*meta.class_names, name] if new else list(meta.class_names)
        support_count = meta.support_count + len(embeddings) if meta.pair_head else meta.support_count
        meta = replace(meta, class_names=classes, added_classes={**meta.added_classes, name: record},
                       support_count=support_count)  # fmt: skip
        if manifest is None:
            manifest = QueryManifest(list(meta.class_names), [], [])
        manifest.classes = list(meta.class_names)
        _save(model, updated, _rethresholded(meta, updated), manifest)
        total = support_counts(meta, manifest)[name]
        return Taught(name, new, len(embeddings), total)


def _with_support(predictor: PairPredictor, embeddings: paddle.Tensor, label: int, classes: int) -> PairPredictor:
    """A pair-head predictor that also stores ``embeddings`` as support images of class ``label``."""
    support = paddle.concat([predictor.support, embeddings])
    labels = paddle.concat([predictor.support_labels, paddle.full([len(embeddings)], label, "int64")])
    return PairPredictor(predictor.embedding, support, labels, classes)


def _with_new_class(predictor: paddle.nn.Layer, meta: PredictorMeta, embeddings: paddle.Tensor) -> paddle.nn.Layer:
    count = len(meta.class_names)
    if isinstance(predictor, PairPredictor):
        return _with_support(predictor, embeddings, count, count + 1)
    old = predictor.classifier
    classifier = CosineClassifier(count + 1, predictor.embedding.output_dim, old.scale)
    prototype = F.normalize(embeddings.mean(axis=0, keepdim=True), axis=1)
    classifier.weight.set_value(paddle.concat([old.weight, prototype]))
    classifier.bias.set_value(paddle.concat([old.bias, paddle.zeros([1])]))
    return Predictor(predictor.embedding, classifier, paddle.concat([predictor.prototypes, prototype]))


def _extended(predictor: paddle.nn.Layer, index: int, embeddings: paddle.Tensor, before: int) -> paddle.nn.Layer:
    """The predictor with class ``index`` moved towards ``embeddings``: its row of W and its prototype
    become the mean of their old direction (standing for ``before`` images) and the new images'
    prototype (standing for theirs)."""
    if isinstance(predictor, PairPredictor):
        return _with_support(predictor, embeddings, index, predictor.num_classes)
    new_prototype = F.normalize(embeddings.mean(axis=0), axis=0).numpy()
    weights = predictor.classifier.weight.numpy().copy()
    prototypes = predictor.prototypes.numpy().copy()
    for rows in (weights, prototypes):
        old = rows[index] / max(float(np.linalg.norm(rows[index])), 1e-12)
        mixed = before * old + len(embeddings) * new_prototype
        rows[index] = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
    old_classifier = predictor.classifier
    classifier = CosineClassifier(len(weights), weights.shape[1], old_classifier.scale)
    classifier.weight.set_value(paddle.to_tensor(weights))
    classifier.bias.set_value(old_classifier.bias)
    return Predictor(predictor.embedding, classifier, paddle.to_tensor(prototypes))


def remove_class(model: Path, name: str, last_too: bool = False) -> None:
    """Drops class ``name`` (its row of W, or its stored support images) and its queries, under the
    checkpoint's lock. The only class is refused, unless ``last_too``: then the predictor's files go
    (a page started from an embedding is back where it began)."""
    set_paddle_threads()
    with ExitStack() as locked:
        predictor, meta = _open_locked(model, locked)
        _remove_class(model, name, predictor, meta, last_too)


def _remove_files(model: Path, meta: PredictorMeta) -> None:
    """Removes a predictor: its checkpoint first (what says it exists), then its sidecar and manifest."""
    for path in (model, sidecar_path(model), manifest_path(model, meta)):
        path.unlink(missing_ok=True)


def _remove_class(model: Path, name: str, predictor: paddle.nn.Layer, meta: PredictorMeta, last_too: bool) -> None:
    if name not in meta.class_names:
        raise PdfewshotError(f"{name}: the predictor has no such class", "name")
    if len(meta.class_names) == 1:
        if last_too:
            _remove_files(model, meta)
            return
        raise PdfewshotError(f"{name}: it is the predictor's only class (a predictor needs one)", "name")
    index = meta.class_names.index(name)
    keep = [i for i in range(len(meta.class_names)) if i != index]
    updated: paddle.nn.Layer
    support_count = meta.support_count
    if isinstance(predictor, PairPredictor):
        labels = predictor.support_labels.numpy()
        rows = np.flatnonzero(labels != index)
        relabelled = labels[rows] - (labels[rows] > index)
        support = paddle.to_tensor(predictor.support.numpy()[rows])
        updated = PairPredictor(predictor.embedding, support, paddle.to_tensor(relabelled), len(keep))
        support_count = len(rows)
    else:
        old = predictor.classifier
        classifier = CosineClassifier(len(keep), predictor.embedding.output_dim, old.scale)
        classifier.weight.set_value(paddle.to_tensor(old.weight.numpy()[keep]))
        classifier.bias.set_value(paddle.to_tensor(old.bias.numpy()[keep]))
        updated = Predictor(predictor.embedding, classifier, paddle.to_tensor(predictor.prototypes.numpy()[keep]))
    manifest = _manifest_if_there(model, meta) or QueryManifest(list(meta.class_names), [], [])
    added = {key: value for key, value in meta.added_classes.items() if key != name}
    meta = replace(meta, class_names=[meta.class_names[i] for i in keep], added_classes=added,
                   support_count=support_count)  # fmt: skip
    manifest = QueryManifest(
        list(meta.class_names),
        [item for item in manifest.support if item.class_name != name],
        [item for item in manifest.queries if item.class_name != name],
    )
    _save(model, updated, _rethresholded(meta, updated), manifest)


def _rethresholded(meta: PredictorMeta, predictor: paddle.nn.Layer) -> PredictorMeta:
    """``meta`` with its threshold as :func:`after_classes_change` leaves it for the classes it now has."""
    prototypes = predictor.prototypes.numpy() if isinstance(predictor, Predictor) else None
    threshold, origin = after_classes_change(meta.reject_score, meta.suggested_reject_below, meta.reject_origin,
                                             prototypes)  # fmt: skip
    return replace(meta, suggested_reject_below=threshold, reject_origin=origin)

"""Adding a class to a predictor from a few images, or dropping one, without retraining.

A new class gets a row of W equal to its prototype (the normalised mean embedding of its images) and a
zero bias, so it is scored exactly as ``finetune`` starts a class; the other rows keep their tuned
values. A pair-head predictor (pair-bce) simply stores the new images' embeddings.
"""

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.data.sources import load_image_files
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import embed
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import open_predictor
from pdfewshot.stages.predict import collect_images
from pdfewshot.stages.test import manifest_path, read_manifest
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import checkpoint_lock, save_checkpoint
from pdfewshot.storage.metadata import PredictorMeta, QueryManifest


def _save(model: Path, predictor: paddle.nn.Layer, meta: PredictorMeta, manifest: QueryManifest) -> None:
    with about("model"):
        save_checkpoint(model, predictor, meta)
        write_json(manifest_path(model, meta), manifest.to_json())


def _manifest_or_empty(model: Path, meta: PredictorMeta) -> QueryManifest:
    """The predictor's manifest, or an empty one when the file is missing (a class can be added to or
    dropped from a predictor copied without it: there are just no held-out queries to keep in step)."""
    if not manifest_path(model, meta).is_file():
        return QueryManifest(list(meta.class_names), [], [])
    with about("model"):
        return read_manifest(model, meta)


def _open_locked(model: Path, locked: ExitStack) -> tuple[paddle.nn.Layer, PredictorMeta]:
    """Takes the checkpoint's lock (held until ``locked`` closes), then opens the predictor."""
    with about("model"):
        locked.enter_context(checkpoint_lock(model))
        return open_predictor(model)


def add_class(model: Path, name: str, folder: Path) -> int:
    """Adds class ``name`` from the images in ``folder``; returns how many images it used. The change is
    made under the checkpoint's lock, so concurrent changes by other processes are all kept."""
    set_paddle_threads()
    with ExitStack() as locked:
        predictor, meta = _open_locked(model, locked)
        return _add_class(model, name, folder, predictor, meta)


def _add_class(model: Path, name: str, folder: Path, predictor: paddle.nn.Layer, meta: PredictorMeta) -> int:
    if name in meta.class_names:
        raise PdfewshotError(f"{name}: the predictor already has this class", "name")
    images, _, _ = load_image_files(collect_images([folder]), meta.image_size, meta.channels, strict=True)
    embeddings = embed(predictor.embedding, images)
    count = len(meta.class_names)
    updated: paddle.nn.Layer
    if isinstance(predictor, PairPredictor):
        support = paddle.concat([predictor.support, embeddings])
        labels = paddle.concat([predictor.support_labels, paddle.full([len(embeddings)], count, "int64")])
        updated = PairPredictor(predictor.embedding, support, labels, count + 1)
    else:
        old = predictor.classifier
        classifier = CosineClassifier(count + 1, meta.embedding_dim, old.scale)
        prototype = F.normalize(embeddings.mean(axis=0, keepdim=True), axis=1)
        classifier.weight.set_value(paddle.concat([old.weight, prototype]))
        classifier.bias.set_value(paddle.concat([old.bias, paddle.zeros([1])]))
        updated = Predictor(predictor.embedding, classifier, paddle.concat([predictor.prototypes, prototype]))
    manifest = _manifest_or_empty(model, meta)
    added = {**meta.added_classes, name: {"folder": str(folder.resolve()), "images": len(embeddings)}}
    support_count = meta.support_count + len(embeddings) if meta.pair_head else meta.support_count
    meta = replace(meta, class_names=[*meta.class_names, name], added_classes=added, support_count=support_count)
    manifest.classes = list(meta.class_names)
    _save(model, updated, meta, manifest)
    return len(embeddings)


def remove_class(model: Path, name: str) -> None:
    """Drops class ``name`` (its row of W, or its stored support images) and its queries, under the
    checkpoint's lock."""
    set_paddle_threads()
    with ExitStack() as locked:
        predictor, meta = _open_locked(model, locked)
        _remove_class(model, name, predictor, meta)


def _remove_class(model: Path, name: str, predictor: paddle.nn.Layer, meta: PredictorMeta) -> None:
    if name not in meta.class_names:
        raise PdfewshotError(f"{name}: the predictor has no such class", "name")
    if len(meta.class_names) == 1:
        raise PdfewshotError(f"{name}: it is the predictor's only class", "name")
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
        classifier = CosineClassifier(len(keep), meta.embedding_dim, old.scale)
        classifier.weight.set_value(paddle.to_tensor(old.weight.numpy()[keep]))
        classifier.bias.set_value(paddle.to_tensor(old.bias.numpy()[keep]))
        updated = Predictor(predictor.embedding, classifier, paddle.to_tensor(predictor.prototypes.numpy()[keep]))
    manifest = _manifest_or_empty(model, meta)
    added = {key: value for key, value in meta.added_classes.items() if key != name}
    meta = replace(meta, class_names=[meta.class_names[i] for i in keep], added_classes=added,
                   support_count=support_count)  # fmt: skip
    manifest = QueryManifest(
        list(meta.class_names),
        [item for item in manifest.support if item.class_name != name],
        [item for item in manifest.queries if item.class_name != name],
    )
    _save(model, updated, meta, manifest)

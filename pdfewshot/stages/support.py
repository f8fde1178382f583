"""Adding a class to a predictor from a few images, or dropping one, without retraining.

A new class gets a row of W equal to its prototype (the normalised mean embedding of its images) and a
zero bias, so it is scored exactly as ``finetune`` starts a class; the other rows keep their tuned
values. A pair-head predictor (pair-bce) simply stores the new images' embeddings.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.atomic import atomic_write_text
from pdfewshot.checkpoint import save_checkpoint
from pdfewshot.data.sources import load_image_files
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.classifier import CosineClassifier, PairPredictor, Predictor
from pdfewshot.nets.embedding import embed
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import open_predictor
from pdfewshot.stages.predict import collect_images


def _manifest_path(model: Path, meta: dict[str, Any]) -> Path:
    return model.with_name(meta["queries_manifest"])


def _save(model: Path, predictor: paddle.nn.Layer, meta: dict[str, Any], manifest: dict[str, Any]) -> None:
    save_checkpoint(model, predictor, meta, option="--model")
    atomic_write_text(_manifest_path(model, meta), json.dumps(manifest, indent=1), option="--model")


def _read_manifest(model: Path, meta: dict[str, Any]) -> dict[str, Any]:
    path = _manifest_path(model, meta)
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        manifest = {"classes": list(meta["class_names"]), "support": [], "queries": []}
    return manifest


def add_class(model: Path, name: str, folder: Path) -> int:
    """Adds class ``name`` from the images in ``folder``; returns how many images it used."""
    set_paddle_threads()
    predictor, meta = open_predictor(model)
    if name in meta["class_names"]:
        raise PdfewshotError(f"NAME {name}: the predictor already has this class")
    images, _, _ = load_image_files(collect_images([folder]), meta["image_size"], meta["channels"], strict=True)
    embeddings = embed(predictor.embedding, images)
    count = len(meta["class_names"])
    if isinstance(predictor, PairPredictor):
        support = paddle.concat([predictor.support, embeddings])
        labels = paddle.concat([predictor.support_labels, paddle.full([len(embeddings)], count, "int64")])
        updated: paddle.nn.Layer = PairPredictor(predictor.embedding, support, labels, count + 1)
        meta["support_count"] = int(support.shape[0])
    else:
        old = predictor.classifier
        classifier = CosineClassifier(count + 1, meta["embedding_dim"], old.scale)
        prototype = F.normalize(embeddings.mean(axis=0, keepdim=True), axis=1)
        classifier.weight.set_value(paddle.concat([old.weight, prototype]))
        classifier.bias.set_value(paddle.concat([old.bias, paddle.zeros([1])]))
        updated = Predictor(predictor.embedding, classifier)
    meta["class_names"] = [*meta["class_names"], name]
    meta.setdefault("added_classes", {})[name] = {"folder": str(folder.resolve()), "images": len(embeddings)}
    manifest = _read_manifest(model, meta)
    manifest["classes"] = meta["class_names"]
    _save(model, updated, meta, manifest)
    return len(embeddings)


def remove_class(model: Path, name: str) -> None:
    """Drops class ``name`` (its row of W, or its stored support images) and its queries."""
    set_paddle_threads()
    predictor, meta = open_predictor(model)
    if name not in meta["class_names"]:
        raise PdfewshotError(f"NAME {name}: the predictor has no such class")
    if len(meta["class_names"]) == 1:
        raise PdfewshotError(f"NAME {name}: it is the predictor's only class")
    index = meta["class_names"].index(name)
    keep = [i for i in range(len(meta["class_names"])) if i != index]
    if isinstance(predictor, PairPredictor):
        labels = predictor.support_labels.numpy()
        rows = np.flatnonzero(labels != index)
        relabelled = labels[rows] - (labels[rows] > index)
        support = paddle.to_tensor(predictor.support.numpy()[rows])
        updated: paddle.nn.Layer = PairPredictor(predictor.embedding, support, paddle.to_tensor(relabelled), len(keep))
        meta["support_count"] = len(rows)
    else:
        old = predictor.classifier
        classifier = CosineClassifier(len(keep), meta["embedding_dim"], old.scale)
        classifier.weight.set_value(paddle.to_tensor(old.weight.numpy()[keep]))
        classifier.bias.set_value(paddle.to_tensor(old.bias.numpy()[keep]))
        updated = Predictor(predictor.embedding, classifier)
    meta["class_names"] = [meta["class_names"][i] for i in keep]
    meta.get("added_classes", {}).pop(name, None)
    manifest = _read_manifest(model, meta)
    manifest["classes"] = meta["class_names"]
    for part in ("support", "queries"):
        manifest[part] = [item for item in manifest.get(part, []) if item["class"] != name]
    _save(model, updated, meta, manifest)

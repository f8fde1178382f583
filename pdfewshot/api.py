"""The Python API: the names a notebook or a script uses, over the same stage functions the CLI calls.

    import pdfewshot

    embedding = pdfewshot.pretrain(pretrained="imagenet", epochs=0)   # or pdfewshot.load("models/emb_model.pdparams")
    classifier = pdfewshot.finetune(data="my_classes/", shot=5)
    print(classifier.predict(["new_photo.jpg"])[0].label)
    classifier.add_class("mug", ["mug1.jpg", "mug2.jpg"])              # written to its checkpoint at once

Images may be given as paths, Pillow images or uint8 numpy arrays (``[h, w]`` or ``[h, w, channels]``).
Options are those of the stage's config dataclass in :mod:`pdfewshot.config` (``pdfewshot pretrain --help``
documents each); a name that is not one of them is a ``TypeError``. Bad input raises
:class:`pdfewshot.errors.PdfewshotError` with the one line the CLI would print.
"""

import io
import shutil
from collections.abc import Sequence
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from pdfewshot.config import (
    DEFAULT_EMBEDDING,
    DEFAULT_PREDICTOR,
    EvaluateConfig,
    FinetuneConfig,
    PredictConfig,
    PretrainConfig,
)
from pdfewshot.data.decoding import decode_image, shape_picture
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.faces.finder import FaceChips
from pdfewshot.nets.inference import run_fast
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.serve.service import served_predictor, taught_folder
from pdfewshot.stages.common import face_chips, open_embedding
from pdfewshot.stages.evaluate import EvaluateResult
from pdfewshot.stages.evaluate import evaluate as evaluate_stage
from pdfewshot.stages.faces import every_face
from pdfewshot.stages.finetune import finetune as finetune_stage
from pdfewshot.stages.predict import Prediction, Scorer, label, label_faces, open_scorer, parse_threshold, rejection
from pdfewshot.stages.pretrain import pretrain as pretrain_stage
from pdfewshot.stages.support import Taught, remove_class, teach
from pdfewshot.storage.atomic import atomic_write
from pdfewshot.storage.checkpoint import checkpoint_kind
from pdfewshot.storage.metadata import EmbeddingMeta

ImageLike = str | Path | Image.Image | np.ndarray
Config = TypeVar("Config")


def _config(kind: type[Config], options: dict[str, Any]) -> Config:
    """``kind`` built from keyword options, paths and single data sources taken as the CLI takes them."""
    known = {field.name for field in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{kind.__name__} has no option {unknown[0]!r} (its options: {', '.join(sorted(known))})")
    if isinstance(options.get("data"), str | Path):
        options["data"] = [options["data"]]
    if "data" in options:
        options["data"] = [str(source) for source in options["data"] or []]
    for field in fields(kind):  # type: ignore[arg-type]
        if "Path" in str(field.type) and isinstance(options.get(field.name), str):
            options[field.name] = Path(options[field.name])
    return kind(**options)


def _picture(image: ImageLike) -> tuple[str, Image.Image]:
    """A name and a decoded picture for any image the API takes."""
    if isinstance(image, Image.Image):
        return "image", image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise PdfewshotError(f"an image array must be uint8, not {image.dtype}")
        return "array", decode_image(image.squeeze(-1) if image.ndim == 3 and image.shape[2] == 1 else image)
    path = Path(image)
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    return str(path), decode_image(path.read_bytes())


def _rows(images: Sequence[ImageLike], size: int, channels: int, chips: FaceChips | None) -> np.ndarray:
    """The images as a network takes them (on the face route: each one's largest face)."""
    if isinstance(images, ImageLike):  # one image given alone
        images = [images]
    rows = [shape_picture(_picture(image)[1], size, channels, chips) for image in images]
    if not rows:
        raise PdfewshotError("no images given")
    return np.stack(rows)


class Embedding:
    """An embedding checkpoint (``pretrain``'s): images to unit vectors, compared by cosine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        set_paddle_threads()
        self.net, self.meta = open_embedding(self.path)
        self.chips = face_chips(self.net, self.meta)

    def embed(self, images: Sequence[ImageLike]) -> np.ndarray:
        """float32 ``[n, dim]`` unit vectors of the images (on the face route: of each one's largest face)."""
        return np.asarray(run_fast(self.net, _rows(images, self.meta.image_size, self.meta.channels, self.chips)))

    def similarity(self, first: ImageLike, second: ImageLike) -> float:
        """The cosine of two images' embeddings."""
        a, b = self.embed([first, second])
        return float(a @ b)

    @property
    def threshold(self) -> float | None:
        """The cosine at or above which two images are called one class's (``compare``'s), when one was chosen."""
        return self.meta.verification.threshold if self.meta.verification is not None else None

    def classifier(self, path: str | Path | None = None) -> "Classifier":
        """A classifier over this embedding, with no classes until :meth:`Classifier.add_class` teaches one;
        kept at ``path`` (default: beside the embedding, where ``serve`` keeps it)."""
        return Classifier(Path(path) if path else served_predictor(self.path), embedding=self.path)

    def evaluate(self, data: str | Path | Sequence[str | Path] = (), **options: Any) -> EvaluateResult:
        """``evaluate`` of this embedding: seeded N-way K-shot episodes on ``data`` (default: its held-out
        classes); options as :class:`pdfewshot.config.EvaluateConfig` (``way``, ``shot``, ``episodes``...)."""
        return evaluate(self.path, data, **options)


class Classifier:
    """A predictor checkpoint (``finetune``'s, or one taught class by class): images to class names."""

    def __init__(self, path: str | Path, embedding: str | Path | None = None) -> None:
        self.path = Path(path)
        self.embedding = Path(embedding) if embedding is not None else None
        if self.embedding is None and not self.path.is_file():
            raise PdfewshotError(f"{self.path}: no such file")
        self._scorer: Scorer | None = None

    @property
    def scorer(self) -> Scorer | None:
        """The predictor as it is on disk now (None before a classifier over an embedding is first taught)."""
        if self._scorer is None and self.path.exists():
            set_paddle_threads()
            self._scorer = open_scorer(self.path)
        return self._scorer

    @property
    def classes(self) -> list[str]:
        return list(self.scorer.class_names) if self.scorer is not None else []

    def predict(
        self, images: Sequence[ImageLike], top_k: int = 1, reject_below: float | str | None = None
    ) -> list[Prediction]:
        """The best classes of each image (on the face route: of every face, each with its box, and "no face
        found" for an image without one), "unknown" below the classifier's stored threshold; ``reject_below``:
        another threshold, or "none" to always name a class (as ``predict --reject-below``)."""
        scorer = self.scorer
        if scorer is None:
            raise PdfewshotError(f"{self.path}: no classes yet; teach one with add_class")
        if isinstance(images, ImageLike):
            images = [images]
        threshold = parse_threshold(reject_below) if isinstance(reject_below, str) else reject_below
        rule = rejection(PredictConfig(model=self.path, reject_below=threshold), scorer)
        if scorer.chips is None:
            names = [_picture(image)[0] for image in images]
            rows = _rows(images, scorer.image_size, scorer.channels, None)
            logits, known = scorer.logits_and_known(rows, rule.score if rule else None)
            return label(names, logits, known, scorer.class_names, top_k, rule)
        pictures = [_picture(image) for image in images]
        faces = [(name, every_face(scorer.chips, picture, scorer.image_size)) for name, picture in pictures]
        return label_faces(faces, scorer, top_k, rule)

    def add_class(self, name: str, images: Sequence[ImageLike]) -> Taught:
        """Teaches class ``name`` from ``images`` (a new class, or more images of one), written to the checkpoint
        at once; the images are kept beside it (as ``serve`` keeps what it is taught)."""
        size, channels, chips = self._input()
        rows = _rows(images, size, channels, chips)
        folder = taught_folder(self.path) / name
        if name not in self.classes and folder.exists():
            shutil.rmtree(folder)  # images of an earlier class of this name, since removed
        folder.mkdir(parents=True, exist_ok=True)
        first = len(list(folder.iterdir()))
        for number, row in enumerate(rows, first):
            atomic_write(folder / f"{number:04d}.png", partial(_save_png, row))
        taught = teach(self.path, name, rows, folder, self.embedding)
        self._scorer = None
        return taught

    def remove_class(self, name: str) -> None:
        """Drops class ``name`` (a classifier over an embedding may go back to no classes)."""
        remove_class(self.path, name, last_too=self.embedding is not None)
        self._scorer = None

    def _input(self) -> tuple[int, int, FaceChips | None]:
        scorer = self.scorer
        if scorer is not None:
            return scorer.image_size, scorer.channels, scorer.chips
        assert self.embedding is not None, "a classifier without a checkpoint is one over an embedding"
        embedding = Embedding(self.embedding)
        return embedding.meta.image_size, embedding.meta.channels, embedding.chips


def _save_png(row: np.ndarray, path: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(row.squeeze(-1) if row.shape[2] == 1 else row).save(buffer, format="PNG")
    Path(path).write_bytes(buffer.getvalue())


def pretrain(data: str | Path | Sequence[str | Path] | None = None, **options: Any) -> Embedding:
    """``pdfewshot pretrain``: an embedding learned on ``data`` (default: the built-in set), or a start's weights
    as they are (``epochs=0``, e.g. ``pretrained="imagenet"`` or ``"faces"``); options as
    :class:`pdfewshot.config.PretrainConfig`. Returns the checkpoint written: ``out``, by default
    ``models/emb_model.pdparams`` under the working folder, as the command writes it."""
    config = _config(PretrainConfig, {"data": data, **options} if data is not None else options)
    return Embedding(pretrain_stage(config).checkpoint)


def finetune(
    embedding: str | Path | Embedding = DEFAULT_EMBEDDING,
    data: str | Path | Sequence[str | Path] = (),
    shot: int = 2,
    **options: Any,
) -> Classifier:
    """``pdfewshot finetune``: a cosine classifier over ``embedding`` from ``shot`` images of each class of
    ``data`` (default: the embedding's held-out classes); options as :class:`pdfewshot.config.FinetuneConfig`.
    Written to ``out``, by default ``predictor.pdparams`` beside the embedding."""
    model = embedding.path if isinstance(embedding, Embedding) else Path(embedding)
    options.setdefault("out", model.with_name(DEFAULT_PREDICTOR.name))
    config = _config(FinetuneConfig, {"model": model, "data": data, "shot": shot, **options})
    return Classifier(finetune_stage(config).checkpoint)


def evaluate(
    model: str | Path | Embedding | None = None, data: str | Path | Sequence[str | Path] = (), **options: Any
) -> EvaluateResult:
    """``pdfewshot evaluate``: seeded N-way K-shot episodes (or pairs, open-set episodes); options as
    :class:`pdfewshot.config.EvaluateConfig`. ``result.results[i].mean`` is each method's accuracy."""
    path = model.path if isinstance(model, Embedding) else (Path(model) if model is not None else None)
    options.setdefault("report", None)
    return evaluate_stage(_config(EvaluateConfig, {"model": path, "data": data, **options}))


def load(path: str | Path = DEFAULT_EMBEDDING) -> Embedding | Classifier:
    """The checkpoint at ``path``: an :class:`Embedding` (``pretrain``'s) or a :class:`Classifier`
    (``finetune``'s); an export folder is a :class:`Classifier` that can only predict."""
    path = Path(path)
    if path.is_dir():
        return Classifier(path)
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    return Embedding(path) if checkpoint_kind(path) == EmbeddingMeta.KIND else Classifier(path)


__all__ = ["DEFAULT_EMBEDDING", "DEFAULT_PREDICTOR", "Classifier", "Embedding", "ImageLike", "evaluate", "finetune",
           "load", "pretrain"]  # fmt: skip

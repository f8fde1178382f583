"""Frozen lower layers, computed once: training only what lies above them.

With ``--freeze-backbone`` only the projection head (and the pair head of ``pair-bce``) learns; with
``--freeze-to STAGE`` the backbone's layers up to and including that stage stay as they started and
those above it learn too. Either way what enters the trained layers, the frozen layers' output for an
undistorted image, is the same at every step, so each image goes through them once, by the fast
inference path, and the steps train on those rows: the whole backbone's features (kept in memory), or a
stage's activations (kept in a file of pdfewshot's cache, keyed by the pixels, the stage and
the frozen weights, and memory-mapped, so that memory stays flat and a second run with the same start
reads them again). Distortions would have to be applied below the frozen layers, so these runs train on
undistorted images (``augment`` "none").
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.data.cache import cache_root
from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.nets.inference import FAST_PATH_MIN_PIXELS, InferenceEmbedder, run_fast
from pdfewshot.storage.atomic import atomic_write

BATCH = 64  # images a batch when computing a stage's activations
CACHE_FORMAT = b"activations-2"


class Trunk(nn.Layer):  # type: ignore[misc]
    """Pixels -> an embedding network's backbone features (before the head, not normalised), or with
    ``stage`` the activations after that stage of its backbone."""

    def __init__(self, net: EmbeddingNet, stage: str | None = None) -> None:
        super().__init__()
        self.scaling = net.scaling
        self.backbone = net.backbone if stage is None else net.backbone.split_after(stage)[0]

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        return self.backbone(self.scaling(pixels))


class HeadOverFeatures(nn.Layer):  # type: ignore[misc]
    """The part of ``net`` that a frozen-backbone run trains, taking backbone features as its input. Its
    layers are ``net``'s own, so training this trains ``net``; its readout is the projection's, as a
    frozen backbone's run reads it."""

    def __init__(self, net: "EmbeddingNet | StagesAbove") -> None:
        super().__init__()
        self.head, self.pair_head = net.head, net.pair_head
        self.backbone = nn.Identity()  # nothing to freeze: the loop's call to keep it in eval mode is harmless

    def project(self, features: paddle.Tensor) -> paddle.Tensor:
        return F.normalize(self.head(features), axis=1)

    def forward(self, features: paddle.Tensor) -> paddle.Tensor:
        return self.project(features)


class StagesAbove(nn.Layer):  # type: ignore[misc]
    """The part of ``net`` that a ``--freeze-to STAGE`` run trains, taking that stage's activations as its
    input: the backbone's layers above the stage (as ``backbone``) and the heads, ``net``'s own. Its readout
    is ``net``'s, uncentred (the base set's mean is taken when training ends)."""

    def __init__(self, net: EmbeddingNet, stage: str) -> None:
        super().__init__()
        self.backbone = net.backbone.split_after(stage)[1]
        self.head, self.pair_head = net.head, net.pair_head
        self.reads_backbone = net.readout != "projection"

    def project(self, activations: paddle.Tensor) -> paddle.Tensor:
        return F.normalize(self.head(self.backbone(activations)), axis=1)

    def forward(self, activations: paddle.Tensor) -> paddle.Tensor:
        features = self.backbone(activations)
        return F.normalize(features if self.reads_backbone else self.head(features), axis=1)


def as_features(rows: paddle.Tensor) -> paddle.Tensor:
    """A batch of feature or activation rows as the trained layers' input (what ``to_input`` is for pixels)."""
    return rows.astype("float32")


@paddle.no_grad()  # type: ignore[untyped-decorator]
def embed_features(net: nn.Layer, features: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The readout of :class:`HeadOverFeatures` or :class:`StagesAbove` for rows, in eval mode (validation's
    embedder)."""
    was_training = net.training
    net.eval()
    outputs = [
        net(paddle.to_tensor(np.asarray(features[i : i + batch_size], dtype=np.float32))).numpy()
        for i in range(0, len(features), batch_size)
    ]
    if was_training:
        net.train()
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class FeatureSet:
    """The frozen layers' output for an :class:`ImageSet`'s images, one row each, with their class ids: what
    the training tasks and validation episodes draw from in place of the images (``images`` holds the rows
    the trained layers take)."""

    images: np.ndarray  # float32 [n, feature_dim]; or float32 [n, c, h, w] activations of a stage
    labels: np.ndarray
    class_names: tuple[str, ...]

    @classmethod
    def of(cls, net: EmbeddingNet, images: ImageSet, stage: str | None = None) -> "FeatureSet":
        """The backbone features of ``images`` through ``net`` (or, with ``stage``, its activations there), by
        the fast path for many images."""
        if stage is not None:
            return cls(stage_activations(Trunk(net, stage), images, stage), images.labels, images.class_names)
        features = run_fast(Trunk(net), images.images) if len(images) else np.zeros((0, net.backbone.feature_dim))
        return cls(np.asarray(features, dtype=np.float32), images.labels, images.class_names)

    @classmethod
    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def above(cls, net: StagesAbove, activations: "FeatureSet", batch_size: int = 128) -> "FeatureSet":
        """The backbone features (not normalised) of a stage's activations through the layers above it, in eval
        mode: what LP-FT's probe trains on, and what the base set's mean is taken of."""
        was_training = net.training
        net.eval()
        rows = activations.images
        features = [
            net.backbone(paddle.to_tensor(np.asarray(rows[i : i + batch_size], dtype=np.float32))).numpy()
            for i in range(0, len(rows), batch_size)
        ]
        if was_training:
            net.train()
        stacked = np.concatenate(features) if features else np.zeros((0, 0), dtype=np.float32)
        return cls(stacked.astype(np.float32), activations.labels, activations.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stage_activations(trunk: Trunk, images: ImageSet, stage: str) -> np.ndarray:
    """float32 activations ``[n, c, h, w]`` of ``images`` after ``trunk``: read from pdfewshot's cache when
    made before, else computed (into the cache, written whole or not at all, when it is on)."""
    root = cache_root()
    if root is None or not len(images):
        return _compute(trunk, images, None)
    path = root / "activations" / f"{_cache_key(trunk, images, stage)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r")
            if cached.shape[0] == len(images) and cached.dtype == np.float32:
                return np.asarray(cached)  # a memory map: rows are read when indexed
        except (OSError, ValueError):
            pass  # damaged: computed again below

    def write(temporary: str) -> None:
        _compute(trunk, images, Path(temporary))

    try:
        atomic_write(path, write)
    except PdfewshotError:  # the cache cannot be written: kept in memory
        return _compute(trunk, images, None)
    return np.asarray(np.load(path, mmap_mode="r"))


def _compute(trunk: Trunk, images: ImageSet, into: Path | None) -> np.ndarray:
    """The activations a batch at a time, into the file ``into`` (a memory map) or into memory."""
    trunk.eval()
    pixels = images.images
    fast = pixels.shape[0] * pixels.shape[1] * pixels.shape[2] >= FAST_PATH_MIN_PIXELS
    runner = InferenceEmbedder(trunk, pixels.shape[3], pixels.shape[1]) if fast else None
    rows: np.ndarray | None = None
    for start in range(0, len(images), BATCH):
        batch = np.asarray(pixels[start : start + BATCH])
        if runner is not None:
            output = runner(batch)
        else:
            with paddle.no_grad():
                output = trunk(to_input(batch)).numpy()
        if rows is None:
            shape = (len(images), *output.shape[1:])
            rows = (
                np.lib.format.open_memmap(into, mode="w+", dtype=np.float32, shape=shape)
                if into is not None
                else np.zeros(shape, dtype=np.float32)
            )
        rows[start : start + len(batch)] = output
    assert rows is not None, "called with images"
    if isinstance(rows, np.memmap):
        rows.flush()
    return rows


def _cache_key(trunk: Trunk, images: ImageSet, stage: str) -> str:
    """What the activations depend on: the pixels, the stage and the frozen layers' weights."""
    digest = hashlib.sha256(CACHE_FORMAT + stage.encode() + repr(images.images.shape).encode())
    digest.update(trunk.scaling.normalisation.encode())
    for start in range(0, len(images), 256):
        digest.update(np.ascontiguousarray(images.images[start : start + 256]).tobytes())
    for name, value in trunk.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value.numpy()).tobytes())
    return digest.hexdigest()[:32]


TrainedNet = EmbeddingNet | HeadOverFeatures | StagesAbove  # what the training tasks and the loop train

"""A frozen backbone's features, computed once: training the head alone on them.

With ``--freeze-backbone`` only the projection head (and the pair head of ``pair-bce``) learns. Its
input, the frozen backbone's features of an undistorted image, is the same at every step, so each
base image goes through the backbone once, by the fast inference path, and the steps train the head
on those features: the tutorial's recipe (a frozen ImageNet backbone with a trained head) at the cost
of one pass over the images instead of one per epoch. Distorted images differ at every step, so
training with augmentation runs the backbone at every step instead.
"""

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.data.imageset import ImageSet
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.inference import run_fast


class Trunk(nn.Layer):  # type: ignore[misc]
    """Pixels -> an embedding network's backbone features (before the head, not normalised)."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.scaling, self.backbone = net.scaling, net.backbone

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        return self.backbone(self.scaling(pixels))


class HeadOverFeatures(nn.Layer):  # type: ignore[misc]
    """The part of ``net`` that a frozen-backbone run trains, taking backbone features as its input. Its
    layers are ``net``'s own, so training this trains ``net``; its readout is the projection's, as a
    frozen backbone's run reads it."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.head, self.pair_head = net.head, net.pair_head
        self.backbone = nn.Identity()  # nothing to freeze: the loop's call to keep it in eval mode is harmless

    def project(self, features: paddle.Tensor) -> paddle.Tensor:
        return F.normalize(self.head(features), axis=1)

    def forward(self, features: paddle.Tensor) -> paddle.Tensor:
        return self.project(features)


def as_features(rows: paddle.Tensor) -> paddle.Tensor:
    """A batch of feature rows as the head's input (what ``to_input`` is for pixels)."""
    return rows.astype("float32")


@paddle.no_grad()  # type: ignore[untyped-decorator]
def embed_features(net: nn.Layer, features: np.ndarray) -> np.ndarray:
    """The readout of :class:`HeadOverFeatures` for feature rows, in eval mode (validation's embedder)."""
    was_training = net.training
    net.eval()
    outputs = net(paddle.to_tensor(np.asarray(features, dtype=np.float32))).numpy()
    if was_training:
        net.train()
    return np.asarray(outputs)


@dataclass(frozen=True)
class FeatureSet:
    """Backbone features of an :class:`ImageSet`'s images, one row each, with their class ids: what the
    training tasks and validation episodes draw from in place of the images (``images`` holds the
    rows the network takes)."""

    images: np.ndarray  # float32 [n, feature_dim]
    labels: np.ndarray
    class_names: tuple[str, ...]

    @classmethod
    def of(cls, net: EmbeddingNet, images: ImageSet) -> "FeatureSet":
        """The features of ``images`` through ``net``'s backbone, by the fast path for many images."""
        features = run_fast(Trunk(net), images.images) if len(images) else np.zeros((0, net.backbone.feature_dim))
        return cls(np.asarray(features, dtype=np.float32), images.labels, images.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


TrainedNet = EmbeddingNet | HeadOverFeatures  # what the training tasks and the loop train

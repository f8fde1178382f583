"""The embedding network: backbone + linear projection head, read out as an L2-normalised embedding.

The training losses act on the projection head's output. What the later stages use (the *readout*) is
by default the backbone's features before that head: the layer before a projection head carries more of
what tells classes apart than the head, which the loss shapes to its own task alone (Chen et al. 2020,
"A Simple Framework for Contrastive Learning of Visual Representations", section 4.2; measured here:
CHANGELOG.md, 0.3.0). ``readout="centred"`` reads the backbone's features less the base set's mean feature
(``centre``, which ``pretrain`` sets and the checkpoint keeps) before normalising them: SimpleShot's centring
(Wang et al. 2019), which takes away what every image shares. ``readout="projection"`` reads the head's
output, as checkpoints written before the choice existed do, and as the pair head of ``pair-bce`` needs.

The network takes pixel values (float32 ``[N, C, H, W]`` in 0..255) and scales them itself, so an
exported or fast-path copy of it takes the same input as the eager one. ``symmetric`` scaling maps
pixels to [-1, 1]; ``imagenet`` subtracts ImageNet's channel means and divides by their standard
deviations, as ``paddle.vision``'s ImageNet weights expect; ``lite`` computes (x - 127) / 128, as
EfficientNet-Lite's ImageNet weights expect; ``face`` subtracts the face descriptor's channel
means and divides by 255, as face-api.js does.
"""

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.config import READOUT_NAMES
from pdfewshot.nets.backbones import build_backbone
from pdfewshot.nets.faces.descriptor import MEAN_RGB as FACE_MEAN_RGB
from pdfewshot.nets.faces.finder import FaceFinder
from pdfewshot.nets.pair_head import PairHead

NORMALISATIONS = ("symmetric", "imagenet", "lite", "face")
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
FACE_STD = (255.0, 255.0, 255.0)  # the face descriptor subtracts its own channel means and divides by 255
LITE_MEAN, LITE_STD = (127.0,) * 3, (128.0,) * 3


def to_input(images: np.ndarray | paddle.Tensor) -> paddle.Tensor:
    """uint8 ``[N, H, W, C]`` images -> float32 ``[N, C, H, W]`` pixel values, the networks' input."""
    tensor = paddle.to_tensor(images) if isinstance(images, np.ndarray) else images
    return tensor.astype("float32").transpose([0, 3, 1, 2])


class PixelScaling(nn.Layer):  # type: ignore[misc]
    """Pixel values 0..255 -> the range the backbone was made for (see the module doc)."""

    def __init__(self, normalisation: str, channels: int) -> None:
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {normalisation!r}")
        self.normalisation = normalisation
        if normalisation != "symmetric":
            if channels != 3:
                raise ValueError(f"{normalisation} normalisation needs 3 channels")
            mean, std = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "lite": (LITE_MEAN, LITE_STD),
                         "face": (FACE_MEAN_RGB, FACE_STD)}[normalisation]  # fmt: skip
            # Not persistable: constants, so that checkpoints hold only learnt weights.
            shape = [1, 3, 1, 1]
            self.register_buffer("mean", paddle.to_tensor(mean, "float32").reshape(shape), persistable=False)
            self.register_buffer("std", paddle.to_tensor(std, "float32").reshape(shape), persistable=False)

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        if self.normalisation != "symmetric":
            return (pixels - self.mean) / self.std
        return pixels / 127.5 - 1.0


class EmbeddingNet(nn.Layer):  # type: ignore[misc]
    """Maps images to unit-length vectors (``output_dim`` of them), so that a dot product is a cosine.

    ``embedding_dim`` is the projection head's width; ``output_dim`` is what the readout gives.
    """

    def __init__(
        self,
        backbone: str,
        channels: int,
        embedding_dim: int,
        image_size: int = 28,
        pair_head: bool = False,
        normalisation: str = "symmetric",
        readout: str = "projection",
        face_finder: bool = False,
    ) -> None:
        super().__init__()
        if readout not in READOUT_NAMES:
            raise ValueError(f"unknown readout {readout!r}")
        if pair_head and readout != "projection":
            raise ValueError("the pair head scores projections: it needs readout='projection'")
        self.readout = readout
        self.scaling = PixelScaling(normalisation, channels)
        self.backbone = build_backbone(backbone, channels, image_size)
        if readout == "centred":  # persistable: the checkpoint keeps it
            self.register_buffer("centre", paddle.zeros([self.backbone.feature_dim]), persistable=True)
        self.head = nn.Linear(self.backbone.feature_dim, embedding_dim)
        # Koch et al.'s learnt pair scorer, trained and kept with the pair-bce loss.
        self.pair_head = PairHead(embedding_dim) if pair_head else None
        # The face route: what finds and aligns faces before the network sees them, kept with its weights so
        # that every stage finds faces as the one before did; not part of forward, never trained.
        self.face_finder = FaceFinder() if face_finder else None

    @property
    def output_dim(self) -> int:
        return int(self.head.weight.shape[1] if self.readout == "projection" else self.backbone.feature_dim)

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        """The embedding the few-shot stages use (the readout)."""
        features = self.backbone(self.scaling(pixels))
        if self.readout == "centred":
            features = features - self.centre
        return F.normalize(self.head(features) if self.readout == "projection" else features, axis=1)

    def project(self, pixels: paddle.Tensor) -> paddle.Tensor:
        """The projection head's unit-length output, which the training losses act on."""
        return F.normalize(self.head(self.backbone(self.scaling(pixels))), axis=1)

    def freeze_backbone(self) -> None:
        """Stops gradients into the backbone and keeps its batch-norm statistics fixed."""
        for parameter in self.backbone.parameters():
            parameter.stop_gradient = True
        self.backbone.eval()


@paddle.no_grad()  # type: ignore[untyped-decorator]
def embed(net: nn.Layer, images: np.ndarray, batch_size: int | None = None) -> paddle.Tensor:
    """Embeddings of uint8 images, computed in eval mode in batches (by default as many images as 256 of
    28 px hold pixels, so that large images do not take large memory)."""
    if batch_size is None:
        batch_size = int(np.clip(256 * 28 * 28 // max(1, images.shape[1] * images.shape[2]), 16, 256))
    was_training = net.training
    net.eval()
    outputs = [net(to_input(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    if was_training:
        net.train()
    return paddle.concat(outputs) if outputs else paddle.zeros([0, 0])

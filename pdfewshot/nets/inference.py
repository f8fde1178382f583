"""The fast embedding path: the network saved with ``paddle.jit.save`` and run by ``paddle.inference``.

Paddle's eager mode does not use oneDNN for convolutions on CPU; the inference predictor does. On
this project's 2-core AMD EPYC, ResNet18 at 28 px embedded ~310 img/s eagerly and ~1,700 img/s this
way (see benchmarks/throughput.py). Building the predictor costs a few seconds (saving the static
program and loading it), so :func:`run_fast` uses it only for enough images to pay that back.
"""

import tempfile
from pathlib import Path

import numpy as np
from paddle import nn

from pdfewshot.nets.embedding import embed
from pdfewshot.nets.runner import InferenceRunner, LayerRunner, save_for_inference
from pdfewshot.storage.pixels import Pixels

# Below this many pixels (2048 images of 28 px) the eager path finishes before a predictor would be built.
FAST_PATH_MIN_PIXELS = 2048 * 28 * 28


class InferenceEmbedder(InferenceRunner):
    """A ``paddle.inference`` predictor of an embedding network, built once and reused."""

    def __init__(self, net: nn.Layer, channels: int, image_size: int, threads: int | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="pdfewshot-jit-") as folder:
            prefix = str(Path(folder) / "embedding")
            save_for_inference(net, channels, image_size, prefix)
            super().__init__(prefix, threads)


def run_fast(net: nn.Layer, images: Pixels) -> np.ndarray:
    """Outputs of a network (an embedding, or a predictor's logits) for uint8 images, through the
    fastest path for their number (see module doc); rows of a file are read a batch at a time."""
    if images.shape[0] * images.shape[1] * images.shape[2] < FAST_PATH_MIN_PIXELS:
        return np.asarray(embed(net, np.asarray(images)).numpy())
    return InferenceEmbedder(net, images.shape[3], images.shape[1])(images)


__all__ = [
    "FAST_PATH_MIN_PIXELS", "InferenceEmbedder", "InferenceRunner", "LayerRunner", "run_fast", "save_for_inference",
]  # fmt: skip

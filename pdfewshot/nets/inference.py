"""The fast embedding path: the network saved with ``paddle.jit.save`` and run by ``paddle.inference``.

Paddle's eager mode does not use oneDNN for convolutions on CPU; the inference predictor does. On
this project's 2-core AMD EPYC, ResNet18 at 28 px embedded ~310 img/s eagerly and ~1,700 img/s this
way (see benchmarks/throughput.py). Building the predictor costs a few seconds (saving the static
program and loading it), so :func:`run_fast` uses it only for enough images to pay that back.
"""

import tempfile
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from pdfewshot.nets.embedding import embed
from pdfewshot.runtime import thread_count
from pdfewshot.storage.pixels import Pixels

# Below this many pixels (2048 images of 28 px) the eager path finishes before a predictor would be built.
FAST_PATH_MIN_PIXELS = 2048 * 28 * 28


class _Frozen(nn.Layer):  # type: ignore[misc]
    """A wrapper for ``paddle.jit.save`` to trace, so the wrapped network itself stays an eager layer."""

    def __init__(self, net: nn.Layer) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        return self.net(pixels)


def save_for_inference(layer: nn.Layer, channels: int, image_size: int, prefix: str) -> None:
    """``paddle.jit.save`` of ``layer``, which takes float32 ``[N, channels, image_size, image_size]``
    pixel values in 0..255 (the networks scale them themselves)."""
    was_training = layer.training
    layer.eval()
    spec = [paddle.static.InputSpec([None, channels, image_size, image_size], "float32", "images")]
    paddle.jit.save(_Frozen(layer), prefix, input_spec=spec)
    if was_training:
        layer.train()


class InferenceRunner:
    """A ``paddle.inference`` predictor (oneDNN on CPU) of a model saved by :func:`save_for_inference`."""

    def __init__(self, prefix: str, threads: int | None = None) -> None:
        folder, name = Path(prefix).parent, Path(prefix).name
        program = next(
            (folder / (name + suffix) for suffix in (".json", ".pdmodel") if (folder / (name + suffix)).is_file()),
            None,
        )
        if program is None:
            raise FileNotFoundError(f"{prefix}: no saved program (.json or .pdmodel)")
        config = paddle.inference.Config(str(program), prefix + ".pdiparams")
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or thread_count())
        config.disable_glog_info()
        self.predictor = paddle.inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images: Pixels, batch_size: int = 256) -> np.ndarray:
        """Outputs for uint8 images ``[n, h, w, c]``."""
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[start : start + batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
            self.input.reshape(list(batch.shape))
            self.input.copy_from_cpu(batch)
            self.predictor.run()
            outputs.append(self.output.copy_to_cpu())
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


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


__all__ = ["FAST_PATH_MIN_PIXELS", "InferenceEmbedder", "InferenceRunner", "run_fast", "save_for_inference"]

"""``paddle.inference`` predictors (oneDNN on CPU) of saved layers: the fast path's machinery, with nothing
of the embedding in it (:mod:`pdfewshot.nets.inference` builds the embedding's on it)."""

import tempfile
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from pdfewshot.runtime import thread_count
from pdfewshot.storage.pixels import Pixels

MAX_BATCH = 256
# Pixels a batch holds at most (32 images of 224 px): a larger network's activations for 256 photographs take
# several GB (EfficientNet-Lite2 at 260 px: 14.6 GB), and batches larger than this are not faster on a CPU.
BATCH_PIXELS = 32 * 224 * 224


def batch_size_for(height: int, width: int) -> int:
    """How many images of ``height`` x ``width`` one run of a predictor takes."""
    return max(1, min(MAX_BATCH, BATCH_PIXELS // max(1, height * width)))


class _Frozen(nn.Layer):  # type: ignore[misc]
    """A wrapper for ``paddle.jit.save`` to trace, so the wrapped network itself stays an eager layer."""

    def __init__(self, net: nn.Layer) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: paddle.Tensor) -> paddle.Tensor:
        return self.net(pixels)


def save_for_inference(layer: nn.Layer, channels: int, image_size: int | None, prefix: str) -> None:
    """``paddle.jit.save`` of ``layer``, which takes float32 ``[N, channels, image_size, image_size]``
    pixel values in 0..255 (the networks scale them themselves); ``image_size`` None: any height and width."""
    was_training = layer.training
    layer.eval()
    spec = [paddle.static.InputSpec([None, channels, image_size, image_size], "float32", "images")]
    paddle.jit.save(_Frozen(layer), prefix, input_spec=spec)
    if was_training:
        layer.train()


def saved_program(prefix: Path) -> Path:
    """The program file :func:`save_for_inference` wrote at ``prefix``: ``.json`` (Paddle 3's), else ``.pdmodel``."""
    for suffix in (".json", ".pdmodel"):
        program = prefix.with_name(prefix.name + suffix)
        if program.is_file():
            return program
    raise FileNotFoundError(f"{prefix}: no saved program (.json or .pdmodel)")


class InferenceRunner:
    """A ``paddle.inference`` predictor (oneDNN on CPU) of a model saved by :func:`save_for_inference`."""

    def __init__(self, prefix: str, threads: int | None = None) -> None:
        config = paddle.inference.Config(str(saved_program(Path(prefix))), prefix + ".pdiparams")
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or thread_count())
        config.disable_glog_info()
        self.predictor = paddle.inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images: Pixels, batch_size: int | None = None) -> np.ndarray:
        """Outputs for uint8 images ``[n, h, w, c]``, ``batch_size`` at a time (None: :func:`batch_size_for`)."""
        batch_size = batch_size or batch_size_for(images.shape[1], images.shape[2])
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[start : start + batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
            self.input.reshape(list(batch.shape))
            self.input.copy_from_cpu(batch)
            self.predictor.run()
            outputs.append(self.output.copy_to_cpu())
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


class LayerRunner:
    """A ``paddle.inference`` predictor of any layer of one float32 ``[N, channels, H, W]`` input (H and W free),
    for a network that runs on many small inputs one at a time (the face landmarks net: 18 ms an input
    eagerly, 5 ms this way on 2 cores)."""

    def __init__(self, layer: nn.Layer, channels: int, threads: int | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="pdfewshot-jit-") as folder:
            prefix = str(Path(folder) / "layer")
            save_for_inference(layer, channels, None, prefix)
            self.runner = InferenceRunner(prefix, threads)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        runner = self.runner
        runner.input.reshape(list(inputs.shape))
        runner.input.copy_from_cpu(np.ascontiguousarray(inputs, dtype=np.float32))
        runner.predictor.run()
        return np.asarray(runner.output.copy_to_cpu())

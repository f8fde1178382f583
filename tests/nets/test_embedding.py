import numpy as np
import paddle
import pytest

from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.backbones import build_backbone
from pdfewshot.nets.embedding import IMAGENET_MEAN, IMAGENET_STD, EmbeddingNet, PixelScaling, embed, to_input


@pytest.mark.parametrize(
    ("name", "channels", "size", "features"),
    [
        ("resnet18", 1, 16, 512), ("resnet18", 1, 28, 512), ("resnet18", 3, 28, 512), ("resnet18", 3, 84, 512),
        ("resnet18", 1, 105, 512), ("conv4", 1, 28, 64), ("conv4", 3, 84, 1600), ("conv4", 1, 16, 64),
        ("koch", 1, 105, 4096), ("koch", 3, 84, 4096), ("resnet50", 1, 28, 2048), ("resnet50", 3, 8, 2048),
        ("vgg16", 1, 32, 512), ("vgg16", 3, 105, 512), ("mobilenet_v2", 1, 28, 1280), ("mobilenet_v2", 3, 84, 1280),
    ],
)  # fmt: skip
def test_backbone_shapes(name: str, channels: int, size: int, features: int) -> None:
    backbone = build_backbone(name, channels, size)
    assert backbone.feature_dim == features
    assert backbone(paddle.zeros([2, channels, size, size])).shape == [2, features]


def test_koch_features_are_sigmoid_outputs() -> None:
    paddle.seed(0)
    values = build_backbone("koch", 1, 105)(paddle.randn([1, 1, 105, 105])).numpy()
    assert values.min() >= 0.0 and values.max() <= 1.0 and ((values > 0) & (values < 1)).mean() > 0.5


def test_unknown_backbone_and_too_small_images_are_clear_errors() -> None:
    with pytest.raises(PdfewshotError, match="backbone vgg: unknown"):
        build_backbone("vgg", 1)
    with pytest.raises(PdfewshotError, match="image_size 28: the koch backbone needs at least 64"):
        build_backbone("koch", 1, 28)
    with pytest.raises(PdfewshotError, match="image_size 28: the vgg16 backbone needs at least 32"):
        build_backbone("vgg16", 1, 28)


def test_embeddings_are_unit_length_and_batching_does_not_change_them() -> None:
    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, 8)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 1), dtype=np.uint8)
    whole = embed(net, images, batch_size=5).numpy()
    pieces = embed(net, images, batch_size=2).numpy()
    assert whole.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(whole, pieces, atol=1e-5)


def test_to_input_is_channels_first_pixels_and_the_network_scales_them() -> None:
    images = np.array([[[[0], [255]]]], dtype=np.uint8)  # [1, 1, 2, 1]
    x = to_input(images)
    assert x.shape == [1, 1, 1, 2]
    np.testing.assert_allclose(x.numpy().ravel(), [0.0, 255.0])
    np.testing.assert_allclose(PixelScaling("symmetric", 1)(x).numpy().ravel(), [-1.0, 1.0])
    colour = to_input(np.full((1, 1, 1, 3), 255, dtype=np.uint8))
    expected = [(255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    np.testing.assert_allclose(PixelScaling("imagenet", 3)(colour).numpy().ravel(), expected, rtol=1e-6)


def test_the_backbone_readout_is_the_normalised_features_and_training_sees_the_projection() -> None:
    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 8, 16, readout="backbone")
    net.eval()
    pixels = to_input(np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8))
    features = net.backbone(net.scaling(pixels)).numpy()
    embedded = net(pixels).numpy()
    assert net.output_dim == 64 == embedded.shape[1]
    np.testing.assert_allclose(embedded, features / np.linalg.norm(features, axis=1, keepdims=True), rtol=1e-5)
    projected = net.project(pixels).numpy()
    assert projected.shape == (3, 8)
    np.testing.assert_allclose(projected, EmbeddingNet.forward(_projection_of(net), pixels).numpy(), rtol=1e-5)


def _projection_of(net: EmbeddingNet) -> EmbeddingNet:
    """The same weights read out at the projection head."""
    other = EmbeddingNet("conv4", 1, 8, 16, readout="projection")
    other.set_state_dict(net.state_dict())
    other.eval()
    return other


def test_readouts_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown readout"):
        EmbeddingNet("conv4", 1, 8, 16, readout="middle")
    with pytest.raises(ValueError, match="pair head scores projections"):
        EmbeddingNet("conv4", 1, 8, 16, pair_head=True, readout="backbone")
    assert EmbeddingNet("conv4", 1, 8, 16).output_dim == 8  # the projection, as older checkpoints were read

import numpy as np
import paddle
import pytest

from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.backbones import build_backbone
from pdfewshot.nets.embedding import EmbeddingNet, embed, to_input


@pytest.mark.parametrize(("channels", "size"), [(1, 16), (1, 28), (3, 28), (3, 84)])
def test_resnet18_trunk_shapes(channels: int, size: int) -> None:
    backbone = build_backbone("resnet18", channels)
    features = backbone(paddle.zeros([2, channels, size, size]))
    assert features.shape == [2, 512]


def test_unknown_backbone_is_a_clear_error() -> None:
    with pytest.raises(PdfewshotError, match="--backbone vgg: unknown"):
        build_backbone("vgg", 1)


def test_embeddings_are_unit_length_and_batching_does_not_change_them() -> None:
    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, 8)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 1), dtype=np.uint8)
    whole = embed(net, images, batch_size=5).numpy()
    pieces = embed(net, images, batch_size=2).numpy()
    assert whole.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(whole, pieces, atol=1e-5)


def test_to_input_scales_to_minus_one_one_channels_first() -> None:
    images = np.array([[[[0], [255]]]], dtype=np.uint8)  # [1, 1, 2, 1]
    x = to_input(images)
    assert x.shape == [1, 1, 1, 2]
    np.testing.assert_allclose(x.numpy().ravel(), [-1.0, 1.0])

"""Starting from paddle.vision's ImageNet ResNet18: Paddle's own download (a stand-in here, offline), three
channels and ImageNet normalisation inside the network; offline, a one-line error saying what to do."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle.vision.models import mobilenet_v2, resnet18

from pdfewshot.config import PretrainConfig
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.pretrained import imagenet_url, load_trunk_weights
from pdfewshot.stages.common import open_embedding
from pdfewshot.stages.pretrain import pretrain
from tests.conftest import make_flat


@pytest.fixture
def downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """paddle.vision's ResNet18 state dict saved where a stand-in for Paddle's download finds it."""
    paddle.seed(1)
    weights = tmp_path / "cache" / "resnet18.pdparams"
    weights.parent.mkdir()
    paddle.save(resnet18().state_dict(), str(weights))
    asked: list[str] = []

    def download(url: str, md5: str | None = None) -> str:
        asked.append(url)
        return str(weights)

    monkeypatch.setattr("paddle.utils.download.get_weights_path_from_url", download)
    yield weights
    assert asked and asked[0].endswith("resnet18.pdparams")


def test_imagenet_start_takes_the_weights_three_channels_and_its_normalisation(
    downloaded: Path, tmp_path: Path
) -> None:
    data = make_flat(tmp_path / "grey", classes=3, per_class=3)  # greyscale: replicated to 3 channels
    out = tmp_path / "m.pdparams"
    config = PretrainConfig(data=[str(data)], out=out, pretrained="imagenet", freeze_backbone=True,
                            image_size=32, embedding_dim=8, epochs=1, warmup_epochs=0, steps_per_epoch=1,
                            batch_size=2, show_progress=False)  # fmt: skip
    pretrain(config)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["channels"] == 3 and meta["normalisation"] == "imagenet" and meta["image_size"] == 32
    net, _ = open_embedding(out)
    saved = paddle.load(str(downloaded))
    np.testing.assert_array_equal(net.backbone.net.conv1.weight.numpy(), saved["conv1.weight"].numpy())


def test_offline_imagenet_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, md5: str | None = None) -> str:
        raise RuntimeError("Download failed. Retry limit reached")

    monkeypatch.setattr("paddle.utils.download.get_weights_path_from_url", offline)
    config = PretrainConfig(data=[str(make_flat(tmp_path / "d"))], out=tmp_path / "m.pdparams",
                            pretrained="imagenet", image_size=16, show_progress=False)  # fmt: skip
    with pytest.raises(PdfewshotError) as error:
        pretrain(config)
    message = str(error.value)
    assert message.startswith("pretrained imagenet: cannot download")
    assert "resnet18.pdparams" in message and "--pretrained PATH" in message and "\n" not in message
    assert not (tmp_path / "m.pdparams").exists()


def test_imagenet_weights_are_for_paddle_vision_backbones_only(tmp_path: Path) -> None:
    config = PretrainConfig(data=[str(make_flat(tmp_path / "d"))], out=tmp_path / "m.pdparams",
                            pretrained="imagenet", backbone="conv4", show_progress=False)  # fmt: skip
    with pytest.raises(PdfewshotError, match=r"pretrained imagenet: paddle\.vision has ImageNet weights for resnet18"):
        pretrain(config)


@pytest.mark.parametrize(
    ("backbone", "file"),
    [("resnet50", "resnet50.pdparams"), ("vgg16", "vgg16.pdparams"), ("mobilenet_v2", "mobilenet_v2_x1.0.pdparams")],
)
def test_each_vision_backbone_asks_paddle_for_its_own_weights(backbone: str, file: str) -> None:
    url, md5 = imagenet_url(backbone)
    assert url.endswith(file) and len(md5) == 32


def test_imagenet_start_of_another_backbone_sums_colour_for_greyscale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paddle.seed(2)
    weights = tmp_path / "mobilenet_v2.pdparams"
    paddle.save(mobilenet_v2().state_dict(), str(weights))  # with its classifier, as paddle.vision ships it
    monkeypatch.setattr("paddle.utils.download.get_weights_path_from_url", lambda url, md5=None: str(weights))
    net = EmbeddingNet("mobilenet_v2", 1, 8, 32)
    load_trunk_weights(net, "imagenet", "mobilenet_v2", 1)
    saved = paddle.load(str(weights))
    first = net.backbone.net.features[0][0].weight.numpy()
    np.testing.assert_allclose(first, saved["features.0.0.weight"].numpy().sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(net.backbone.net.features[1].conv[0][0].weight.numpy(),
                                  saved["features.1.conv.0.0.weight"].numpy())  # fmt: skip

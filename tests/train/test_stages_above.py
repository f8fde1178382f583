"""Training above a frozen stage on its activations, computed once and cached: the same as training those
layers on pixels with the lower ones left alone; LP-FT's probe, a lower backbone rate and L2-SP in the loop."""

from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest

from pdfewshot.data.imageset import ImageSet
from pdfewshot.nets.backbones import build_backbone, frozen_stages
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.train import frozen_trunk
from pdfewshot.train.frozen_trunk import FeatureSet, HeadOverFeatures, StagesAbove, as_features, embed_features
from pdfewshot.train.loop import LoopSettings, Phase, train
from pdfewshot.train.resume import Position
from pdfewshot.train.tasks import SoftmaxTask


def colour_images(per_class: int = 4, size: int = 32) -> ImageSet:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), per_class)
    images = rng.integers(0, 256, size=(len(labels), size, size, 3), dtype=np.uint8)
    return ImageSet(images, labels, ("a", "b", "c"), tuple(f"k{i}" for i in range(len(labels))))


def network(readout: str = "backbone") -> EmbeddingNet:
    paddle.seed(0)
    return EmbeddingNet("mobilenet_v2", 3, 8, 32, normalisation="imagenet", readout=readout)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18"])
def test_the_layers_below_and_above_every_stage_compute_the_backbone(backbone: str) -> None:
    paddle.seed(0)
    net = build_backbone(backbone, 3, 32)
    net.eval()
    pixels = paddle.rand([2, 3, 32, 32])
    for stage in frozen_stages(backbone):
        below, above = net.split_after(stage)
        np.testing.assert_allclose(above(below(pixels)).numpy(), net(pixels).numpy(), atol=1e-5, err_msg=stage)
    assert frozen_stages("conv4") == ()


def test_activations_are_computed_once_cached_and_read_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PDFEWSHOT_CACHE", str(tmp_path))
    net, images = network(), colour_images()
    computed: list[int] = []
    compute = frozen_trunk._compute

    def counted(*args: Any) -> np.ndarray:
        computed.append(1)
        return compute(*args)

    monkeypatch.setattr(frozen_trunk, "_compute", counted)
    first = FeatureSet.of(net, images, "block5")
    second = FeatureSet.of(net, images, "block5")
    assert computed == [1] and first.images.dtype == np.float32 and first.images.shape[:2] == (len(images), 96)
    np.testing.assert_array_equal(first.images, second.images)
    assert [path.suffix for path in (tmp_path / "activations").iterdir()] == [".npy"]  # nothing half-written
    FeatureSet.of(net, images, "block4")  # another stage, other weights or other images: computed again
    with paddle.no_grad():
        net.backbone.net.features[0][0].weight.set_value(net.backbone.net.features[0][0].weight * 2)
    FeatureSet.of(net, images, "block5")
    assert computed == [1, 1, 1]
    for path in (tmp_path / "activations").iterdir():
        path.write_bytes(b"damaged")
    FeatureSet.of(net, images, "block5")
    assert len(computed) == 4


def test_the_layers_above_read_what_the_network_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PDFEWSHOT_CACHE", str(tmp_path))
    net, images = network(), colour_images()
    net.eval()
    rows = FeatureSet.of(net, images, "block6")
    from_pixels = net(to_input(images.images)).numpy()
    np.testing.assert_allclose(embed_features(StagesAbove(net, "block6"), rows.images), from_pixels, atol=1e-5)


def test_training_above_a_stage_on_its_activations_trains_the_network_there(tmp_path: Path) -> None:
    images = colour_images()
    net = network()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    above = StagesAbove(net, "block6")
    rows = FeatureSet.of(net, images, "block6")
    position = Position()
    train(above, [Phase(SoftmaxTask(above, rows), 2, 2)], LoopSettings(batch_size=2, lr=1e-2), position,
          prepare=as_features)  # fmt: skip
    assert position.losses[0] != position.losses[-1]
    lower = {f"backbone.net.features.{i}." for i in range(17)}
    for key, value in net.state_dict().items():
        unchanged = np.array_equal(value.numpy(), before[key])
        frozen = any(key.startswith(prefix) for prefix in lower)
        assert unchanged == frozen or key.endswith("_variance") or key.endswith("_mean"), key


def test_a_probe_phase_trains_the_heads_alone_and_hands_its_classifier_on() -> None:
    images = colour_images()
    net = network()
    backbone_before = {k: v.numpy().copy() for k, v in net.backbone.state_dict().items()}
    features = FeatureSet.of(net, images)
    probe = SoftmaxTask(HeadOverFeatures(net), features)
    main = SoftmaxTask(net, images)
    main.head = probe.head
    train(net, [Phase(probe, 3, 2, head_only=True, prepare=as_features)], LoopSettings(batch_size=2, lr=1e-2),
          Position())  # fmt: skip
    for key, value in net.backbone.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), backbone_before[key], err_msg=key)
    assert main.head is probe.head


def _backbone_distance(settings: LoopSettings) -> float:
    images = colour_images()
    net = network()
    start = {name: value.numpy().copy() for name, value in net.backbone.named_parameters()}
    if settings.l2_sp:
        settings = LoopSettings(**{**settings.__dict__, "anchor": {
            name: value.detach().clone() for name, value in net.backbone.named_parameters()}})  # fmt: skip
    train(net, [Phase(SoftmaxTask(net, images), 1, 3)], settings, Position())
    learnt = [(name, value) for name, value in net.backbone.named_parameters() if not value.stop_gradient]
    return float(sum(((value.numpy() - start[name]) ** 2).sum() for name, value in learnt))  # not the statistics


def test_a_lower_backbone_rate_and_l2_sp_keep_the_backbone_nearer_the_start() -> None:
    free = _backbone_distance(LoopSettings(batch_size=2, lr=1e-2))
    slow = _backbone_distance(LoopSettings(batch_size=2, lr=1e-2, backbone_lr=1e-4))
    pulled = _backbone_distance(LoopSettings(batch_size=2, lr=1e-2, l2_sp=1e4))
    assert slow < free / 100 and pulled < free

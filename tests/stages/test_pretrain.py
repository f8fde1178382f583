import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
from PIL import Image

from pdfewshot.config import PretrainConfig
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sources import load_sources
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.reporting.console import LossProgress
from pdfewshot.stages.common import open_embedding
from pdfewshot.stages.pretrain import MAX_EPOCHS, MIN_VALIDATED_STEPS, max_validated_epochs, pretrain
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta
from pdfewshot.train.frozen_trunk import FeatureSet
from pdfewshot.train.resume import resume_path
from tests.conftest import make_nested, write_image


def config(data: Path, out: Path, **changes: object) -> PretrainConfig:
    base = PretrainConfig(
        data=[str(data)], out=out, image_size=16, embedding_dim=8, epochs=1, batch_size=4,
        novel_fraction=0.3, show_progress=False, warmup_epochs=0,  # each test says which phases it wants
        backbone="resnet18", loss="cosine-mse",  # the main path, whatever the data would choose
    )  # fmt: skip
    for key, value in changes.items():
        setattr(base, key, value)
    return base


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nested(tmp_path_factory.mktemp("pre") / "nested", alphabets=4, characters=3, per_class=4)


def test_softmax_warmup_then_triples_counts_both_phases(data: Path, tmp_path: Path) -> None:
    result = pretrain(config(data, tmp_path / "m.pdparams", warmup_epochs=2, epochs=1))
    base_images = result.base_classes * 4  # classes of 4 images keep them all (none held out for the threshold)
    softmax_steps = -(-base_images // 12)
    triple_steps = -(-base_images // 4)
    assert len(result.losses) == 2 * softmax_steps + triple_steps
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["loss"] == "cosine-mse" and meta["warmup_epochs"] == 2
    # the softmax head is not part of the embedding checkpoint
    state, _ = read_checkpoint(tmp_path / "m.pdparams", EmbeddingMeta)
    assert all(key.startswith(("backbone.", "head.")) for key in state)


@pytest.mark.parametrize(("loss", "warmup"), [("cosine-mse", 2), ("proto", 0)])
def test_the_warmup_is_two_softmax_epochs_unless_the_loss_is_unwarmed(
    data: Path, tmp_path: Path, loss: str, warmup: int
) -> None:
    result = pretrain(config(data, tmp_path / "m.pdparams", loss=loss, warmup_epochs=None, backbone="conv4"))
    base_images = result.base_classes * 4
    assert len(result.losses) == warmup * -(-base_images // 12) + -(-base_images // (4 * (3 if loss == "proto" else 1)))
    assert json.loads((tmp_path / "m.json").read_text())["warmup_epochs"] == warmup


def test_softmax_alone_lowers_its_loss(data: Path, tmp_path: Path) -> None:
    result = pretrain(config(data, tmp_path / "m.pdparams", loss="ce", epochs=8, lr=3e-3))
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    assert json.loads((tmp_path / "m.json").read_text())["loss"] == "ce"


def test_cosine_schedule_changes_training_after_the_first_step(data: Path, tmp_path: Path) -> None:
    constant = pretrain(config(data, tmp_path / "c.pdparams", loss="ce", steps_per_epoch=4, lr=3e-3))
    cosine = pretrain(
        config(data, tmp_path / "s.pdparams", loss="ce", steps_per_epoch=4, lr=3e-3, lr_schedule="cosine")
    )
    assert cosine.losses[:2] == constant.losses[:2]  # step 0 runs at --lr in both; its update shows at step 1
    assert cosine.losses[2:] != constant.losses[2:]
    assert json.loads((tmp_path / "s.json").read_text())["config"]["lr_schedule"] == "cosine"
    with pytest.raises(PdfewshotError, match="lr_schedule linear: unknown"):
        pretrain(config(data, tmp_path / "x.pdparams", lr_schedule="linear"))


def test_rotations_quadruple_the_base_classes(data: Path, tmp_path: Path) -> None:
    pretrain(config(data, tmp_path / "m.pdparams", rotations=True, steps_per_epoch=1))
    meta = json.loads((tmp_path / "m.json").read_text())
    assert len(meta["class_names"]) == 4 * len(meta["split"]["base"])
    assert any(name.endswith("@rot270") for name in meta["class_names"])


def test_freeze_backbone_changes_only_the_head(data: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.pdparams"
    pretrain(config(data, first, steps_per_epoch=2))
    second = tmp_path / "second.pdparams"
    pretrain(config(data, second, steps_per_epoch=3, pretrained=str(first), freeze_backbone=True, seed=5))
    before, after = read_checkpoint(first, EmbeddingMeta)[0], read_checkpoint(second, EmbeddingMeta)[0]
    for key in before:
        same = np.array_equal(before[key].numpy(), after[key].numpy())
        assert same != key.startswith("head."), key
    assert read_checkpoint(second, EmbeddingMeta)[1].readout == "projection"  # else training changes nothing


def test_a_frozen_backbone_sees_the_images_once_unless_they_are_distorted(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first.pdparams"
    pretrain(config(data, first, steps_per_epoch=1))
    computed: list[int] = []
    features_of = FeatureSet.of

    def spy(net: EmbeddingNet, images: ImageSet) -> FeatureSet:
        computed.append(len(images))
        return features_of(net, images)

    monkeypatch.setattr(FeatureSet, "of", spy)
    frozen = config(data, tmp_path / "f.pdparams", steps_per_epoch=3, pretrained=str(first), freeze_backbone=True)
    result = pretrain(replace(frozen, validation_fraction=0.3))
    meta = json.loads((tmp_path / "f.json").read_text())
    assert meta["config"]["augment"] == "none"  # the default with a frozen backbone
    base, validation = len(meta["split"]["base"]), len(meta["split"]["validation"])
    assert computed == [4 * base, 4 * validation] and len(result.losses) == 3
    computed.clear()
    pretrain(replace(frozen, augment="affine", out=tmp_path / "a.pdparams"))
    assert computed == []  # distorted images differ at every step: the backbone runs at every step


def test_readout_options_are_checked_before_anything_is_written(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pdparams"
    for changes, message in (
        ({"readout": "middle"}, "readout middle: unknown, choose from backbone, centred, projection"),
        ({"readout": "backbone", "freeze_backbone": True}, "readout backbone: the backbone is frozen"),
        ({"readout": "backbone", "loss": "pair-bce"}, "readout backbone: the pair head of pair-bce scores projections"),
    ):
        with pytest.raises(PdfewshotError, match=message):
            pretrain(config(data, out, **changes))
    assert list(tmp_path.iterdir()) == []


def test_a_projection_readout_embeds_at_the_head_width(data: Path, tmp_path: Path) -> None:
    from pdfewshot.stages.common import open_embedding

    pretrain(config(data, tmp_path / "p.pdparams", readout="projection", steps_per_epoch=1))
    pretrain(config(data, tmp_path / "b.pdparams", steps_per_epoch=1))
    projection, meta = open_embedding(tmp_path / "p.pdparams")
    backbone, _ = open_embedding(tmp_path / "b.pdparams")
    assert (meta.readout, projection.output_dim, backbone.output_dim) == ("projection", 8, 512)


def test_pretrained_that_does_not_fit_and_unknown_loss(data: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pdparams"
    paddle.save({"conv1.weight": paddle.zeros([64, 3, 3, 3])}, str(other))
    with pytest.raises(
        PdfewshotError, match=r"pretrained .* not an ImageNet classifier of the resnet18 backbone: conv1"
    ):
        pretrain(config(data, tmp_path / "m.pdparams", pretrained=str(other)))
    with pytest.raises(PdfewshotError, match="loss hinge: unknown"):
        pretrain(config(data, tmp_path / "m.pdparams", loss="hinge"))
    assert not (tmp_path / "m.pdparams").exists()


def test_pretrained_checkpoint_of_another_backbone_is_named(data: Path, tmp_path: Path) -> None:
    conv4 = tmp_path / "conv4.pdparams"
    pretrain(config(data, conv4, backbone="conv4", steps_per_epoch=1))
    with pytest.raises(PdfewshotError, match="backbone is 'conv4', expected 'resnet18'"):
        pretrain(config(data, tmp_path / "m.pdparams", pretrained=str(conv4)))


def test_resume_after_an_interruption_ends_with_the_same_weights(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both phases, augmentation and an annealed rate: the resumed run must redraw batches and
    # distortions and pick up the schedule exactly.
    options = {
        "warmup_epochs": 1, "epochs": 2, "steps_per_epoch": 5, "augment": "affine", "seed": 3, "lr_schedule": "cosine",
    }  # fmt: skip
    whole = pretrain(config(data, tmp_path / "whole" / "m.pdparams", **options))
    assert len(whole.losses) == 15

    out = tmp_path / "cut" / "m.pdparams"
    original = LossProgress.update

    calls = []

    def interrupt_after_eleven(self: LossProgress, loss: float, advance: int = 1) -> None:
        original(self, loss, advance)
        calls.append(loss)
        if len(calls) == 11:
            raise KeyboardInterrupt

    monkeypatch.setattr(LossProgress, "update", interrupt_after_eleven)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config(data, out, save_every=4, **options))
    monkeypatch.setattr(LossProgress, "update", original)
    assert not out.exists() and resume_path(out).is_file()  # saved at step 8, inside the second phase

    resumed = pretrain(config(data, out, save_every=4, resume=True, **options))
    assert resumed.losses[:8] == whole.losses[:8] and len(resumed.losses) == 15
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-6)
    one = read_checkpoint(tmp_path / "whole" / "m.pdparams", EmbeddingMeta)[0]
    two = read_checkpoint(out, EmbeddingMeta)[0]
    for key in one:
        np.testing.assert_array_equal(one[key].numpy(), two[key].numpy(), err_msg=key)
    assert not resume_path(out).exists()  # finished runs clear their saved state


def test_resume_refuses_other_options_or_no_state(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pdparams"
    with pytest.raises(PdfewshotError, match="resume: no saved training state"):
        pretrain(config(data, out, resume=True))
    save_state_then_stop(data, out)
    with pytest.raises(PdfewshotError, match=r"resume .* saved with lr = 0\.001, this run has 0\.01"):
        pretrain(config(data, out, resume=True, steps_per_epoch=3, lr=0.01))


def save_state_then_stop(data: Path, out: Path) -> None:
    """Leaves a saved training state behind, as an interrupted --save-every run does."""
    original = LossProgress.update

    def stop(self: LossProgress, value: float, advance: int = 1) -> None:
        original(self, value, advance)
        raise KeyboardInterrupt

    LossProgress.update = stop  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(config(data, out, save_every=1, steps_per_epoch=3))
    finally:
        LossProgress.update = original  # type: ignore[method-assign]
    assert resume_path(out).is_file()


@pytest.mark.parametrize("loss", ["triplet", "contrastive", "pair-bce"])
def test_each_siamese_loss_trains_and_is_recorded(data: Path, tmp_path: Path, loss: str) -> None:
    out = tmp_path / "m.pdparams"
    result = pretrain(config(data, out, loss=loss, backbone="conv4", epochs=2, steps_per_epoch=3, batch_size=6))
    assert len(result.losses) == 6 and all(np.isfinite(result.losses))
    state, meta = read_checkpoint(out, EmbeddingMeta)
    assert meta.loss == loss
    assert any(key.startswith("pair_head.") for key in state) == (loss == "pair-bce")
    assert meta.readout == ("projection" if loss == "pair-bce" else "backbone")  # the pair head scores projections


def test_pair_sampler_alternates_like_and_unlike_pairs() -> None:
    from pdfewshot.data.sampling import PairBatchSampler

    labels = np.repeat(np.arange(4), 3)
    for batch in PairBatchSampler(labels, 8, steps=3, seed=0):
        assert [same for _, _, same in batch] == [1, 0] * 4
        for first, second, same in batch:
            assert first != second and (labels[first] == labels[second]) == bool(same)


def test_settings_left_to_the_data_are_resolved_and_recorded(tmp_path: Path) -> None:
    # Photograph-like pictures (tones, not ink on paper) with enough classes for validation.
    data = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c in range(12):
        for i in range(3):
            write_image(data / f"class{c:02d}" / f"{i}.png", int(rng.integers(60, 200)), size=12)
    out = tmp_path / "m.pdparams"
    result = pretrain(PretrainConfig(data=[str(data)], out=out, embedding_dim=8, batch_size=4, max_epochs=2,
                                     warmup_epochs=0, show_progress=False, image_size=16))  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["augment"] == "photo" and meta["backbone"] == "conv4" and meta["loss"] == "ce"
    assert meta["config"]["novel_fraction"] == 0.0 and meta["split"]["novel"] == []
    assert len(meta["split"]["validation"]) == 4 and result.validation_classes == 4  # 10% of 12, at least 4
    assert meta["training"]["best_validation"] is not None and meta["training"]["steps"] >= 1
    training = meta["training"]
    assert training["validation_measure"] == "mean log-probability of the right class"
    # [step, log-probability, accuracy]: the kept step is the one with the best log-probability
    validations = training["validations"]
    best = max(validations, key=lambda row: row[1])
    assert [training["best_step"], training["best_validation"], training["best_accuracy"]] == [
        best[0],
        pytest.approx(best[1], abs=1e-4),
        pytest.approx(best[2], abs=1e-4),
    ]
    assert all(row[1] <= 0 and 0 <= row[2] <= 1 for row in validations)
    assert not set(meta["split"]["validation"]) & set(meta["class_names"])  # never trained on


def test_validation_scores_the_start_so_the_start_can_stay_best(data: Path, tmp_path: Path) -> None:
    """From pretrained weights, training that only makes things worse keeps the start (step 0)."""
    start = tmp_path / "start.pdparams"
    pretrain(config(data, start, validation_fraction=0.3, novel_fraction=0.0, epochs=2))
    out = tmp_path / "m.pdparams"
    result = pretrain(config(data, out, validation_fraction=0.3, novel_fraction=0.0, pretrained=str(start), lr=50.0))
    assert result.record is not None and result.record.validations[0][0] == 0
    assert result.record.best_step == 0
    trained, _ = read_checkpoint(out, EmbeddingMeta)
    original, _ = read_checkpoint(start, EmbeddingMeta)
    backbone = [key for key in trained if key.startswith("backbone.") and "weight" in key]
    for key in backbone:
        np.testing.assert_array_equal(trained[key].numpy(), original[key].numpy())


def test_no_training_with_data_records_the_split_and_scores_the_start(data: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.pdparams"
    pretrain(config(data, start, novel_fraction=0.0))
    out = tmp_path / "m.pdparams"
    result = pretrain(config(data, out, pretrained=str(start), epochs=0, validation_fraction=0.3, warmup_epochs=2))
    assert result.losses == [] and result.record is not None
    assert [step for step, *_ in result.record.validations] == [0] and result.verification is not None
    _, meta = read_checkpoint(out, EmbeddingMeta)
    assert meta.split.validation and meta.training.steps == 0 and meta.warmup_epochs == 0


def test_a_small_set_with_validation_may_train_for_more_epochs_than_a_large_one() -> None:
    assert max_validated_epochs(PretrainConfig(), steps_per_epoch=1) == MIN_VALIDATED_STEPS
    assert max_validated_epochs(PretrainConfig(), steps_per_epoch=100) == MAX_EPOCHS
    assert max_validated_epochs(PretrainConfig(max_epochs=5), steps_per_epoch=1) == 5


def test_batches_made_by_loader_workers_are_the_batches_made_here(tmp_path: Path) -> None:
    """Distortions are seeded by each batch's step, so workers change where batches are made, not what they are."""
    data = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c in range(4):
        for i in range(5):
            path = data / f"class{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
    losses = []
    for workers in (0, 2):
        run = PretrainConfig(data=[str(data)], out=tmp_path / f"w{workers}.pdparams", image_size=16, embedding_dim=8,
                             batch_size=4, epochs=2, warmup_epochs=1, loss="cosine-mse", backbone="conv4",
                             augment="photo", validation_fraction=0.0, show_progress=False,
                             workers=workers)  # fmt: skip
        losses.append(pretrain(run).losses)
    assert losses[0] == losses[1] and len(losses[0]) > 4


@pytest.fixture(scope="module")
def imagenet_shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paddle.vision MobileNetV2 ImageNet classifier's state dict (seeded random weights)."""
    from paddle.vision.models import mobilenet_v2

    path = tmp_path_factory.mktemp("imagenet") / "mobilenet_v2.pdparams"
    paddle.seed(4)
    net = mobilenet_v2()
    net.train()  # batch-norm statistics of images, so that activations keep their scale through the layers
    with paddle.no_grad():
        for _ in range(40):
            net(paddle.rand([8, 3, 32, 32]))
    paddle.save(net.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import make_flat

    return make_flat(tmp_path_factory.mktemp("photos") / "photos", classes=4, per_class=5, mode="RGB")


def imagenet_config(photos: Path, start: Path, out: Path, **changes: Any) -> PretrainConfig:
    return replace(PretrainConfig(data=[str(photos)], out=out, pretrained=str(start), image_size=32, batch_size=2,
                                  steps_per_epoch=2, epochs=1, show_progress=False), **changes)  # fmt: skip


def test_from_imagenet_weights_the_stages_above_block5_train_after_a_probe_and_read_centred(
    photos: Path, imagenet_shaped: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.pdparams"
    result = pretrain(imagenet_config(photos, imagenet_shaped, out, probe_epochs=2))
    assert len(result.losses) == 2 * 2 + 2  # the probe's epochs, then fine-tuning's
    state, meta = read_checkpoint(out, EmbeddingMeta)
    chosen = {
        key: meta.config[key]
        for key in ("freeze_to", "backbone_lr", "lr", "readout", "augment", "time_budget", "max_epochs")
    }
    assert chosen == {"freeze_to": "block5", "backbone_lr": 1e-4, "lr": 1e-3, "readout": "centred", "augment": "none",
                      "time_budget": "10m", "max_epochs": 4}  # fmt: skip
    start = paddle.load(str(imagenet_shaped))
    for key, value in start.items():
        if not key.startswith("features.") or key.endswith(("_mean", "_variance")):
            continue
        frozen = int(key.split(".")[1]) < 14  # features 0-13: the stem and blocks 1-5
        same = np.array_equal(state[f"backbone.net.{key}"].numpy(), value.numpy())
        assert same == frozen, key
    net, _ = open_embedding(out)
    images = load_sources([str(photos)], 32, 3)[0]
    base = images.subset_classes(meta.split.base)
    uncentred = net.backbone(net.scaling(to_input(np.asarray(base.images)))).numpy()
    np.testing.assert_allclose(net.centre.numpy(), uncentred.mean(axis=0), rtol=1e-3, atol=1e-5)
    expected = uncentred - uncentred.mean(axis=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(net(to_input(np.asarray(base.images))).numpy(), expected, atol=1e-4)


def test_a_start_that_no_step_beats_is_kept_and_said_in_one_line(
    photos: Path, imagenet_shaped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from pdfewshot.stages import pretrain as stage
    from pdfewshot.train.validation import ValidationScore

    class Worsening:  # every validation after the start's scores lower
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.calls = 0

        def __call__(self, net: object) -> ValidationScore:
            self.calls += 1
            return ValidationScore(-float(self.calls), 1.0 / self.calls)

    monkeypatch.setattr(stage, "EpisodeValidator", Worsening)
    from tests.conftest import make_flat

    many = make_flat(tmp_path / "many", classes=12, per_class=3, mode="RGB")
    out = tmp_path / "m.pdparams"
    config = imagenet_config(many, imagenet_shaped, out, probe_epochs=1, epochs=2, validate_every=1, patience=2,
                             show_progress=True)  # fmt: skip
    result = pretrain(config)
    assert result.record is not None and result.record.best_step == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "the start is kept" in line]
    assert len(said) == 1 and "none of 4 training steps in" in said[0] and "holds the start weights" in said[0], said
    state, _ = read_checkpoint(out, EmbeddingMeta)
    start = paddle.load(str(imagenet_shaped))
    for key in ("features.18.0.weight", "features.15.conv.2.weight"):  # above the frozen stages too
        np.testing.assert_array_equal(state[f"backbone.net.{key}"].numpy(), start[key].numpy())


def test_a_centred_embedding_is_read_centred_by_finetune_and_the_export(
    photos: Path, imagenet_shaped: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from pdfewshot.cli import app
    from pdfewshot.nets.runner import InferenceRunner
    from pdfewshot.stages.common import open_predictor

    embedding = tmp_path / "m" / "e.pdparams"
    pretrain(imagenet_config(photos, imagenet_shaped, embedding, probe_epochs=1, novel_fraction=0.5))
    net, meta = open_embedding(embedding)
    assert meta.readout == "centred" and float(np.abs(net.centre.numpy()).sum()) > 0
    runner = CliRunner()
    predictor, export = tmp_path / "m" / "p.pdparams", tmp_path / "export"
    for args in (["finetune", "--model", str(embedding), "--shot", "2", "--steps", "0", "--out", str(predictor)],
                 ["export", "--model", str(predictor), "--out", str(export)]):  # fmt: skip
        ran = runner.invoke(app, args)
        assert ran.exit_code == 0, ran.output
    classifier, predictor_meta = open_predictor(predictor)
    assert predictor_meta.readout == "centred"
    np.testing.assert_array_equal(classifier.embedding.centre.numpy(), net.centre.numpy())
    images = np.asarray(load_sources([str(photos)], 32, 3)[0].images[:3])
    eager = classifier(to_input(images)).numpy()
    prefix = next(export.glob("*.pdiparams")).with_suffix("")
    exported = InferenceRunner(str(prefix))(images)
    np.testing.assert_allclose(exported[:, : eager.shape[1]], eager, rtol=1e-3, atol=1e-3)
    net.centre.set_value(paddle.zeros_like(net.centre))  # uncentred, the same weights embed otherwise
    centred = classifier.embedding(to_input(images)).numpy()
    assert not np.allclose(net(to_input(images)).numpy(), centred, atol=1e-3)

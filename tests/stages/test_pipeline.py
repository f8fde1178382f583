"""End to end through the CLI on tiny images: pretrain -> finetune -> test, and the errors between."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import PredictorMeta
from tests.conftest import make_flat

runner = CliRunner()


@pytest.fixture(scope="module")
def glyph_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small glyph set written as an image folder (6 alphabets x 4 characters x 6 drawings)."""
    out = tmp_path_factory.mktemp("data") / "glyphs"
    result = runner.invoke(app, ["data", "synth", str(out), "--alphabets", "6", "--characters", "4", "--drawers", "6"])
    assert result.exit_code == 0, result.output
    return out


def pretrain_args(data: Path, models: Path, seed: int = 0) -> list[str]:
    return [
        "pretrain", "--data", str(data), "--out", str(models / "emb.pdparams"), "--image-size", "16",
        "--embedding-dim", "16", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "8",
        "--seed", str(seed), "--novel-fraction", "0.34",
    ]  # fmt: skip


def run_pipeline(data: Path, models: Path, seed: int = 0) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, pretrain_args(data, models, seed))
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["finetune", "--shot", "2", "--model", str(models / "emb.pdparams"), "--out", str(models / "pred.pdparams"),
         "--steps", "5", "--seed", str(seed)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["test", "--model", str(models / "pred.pdparams"), "--report", str(models / "report.json")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("overall: ")
    return json.loads((models / "report.json").read_text())  # type: ignore[no-any-return]


def test_pipeline_end_to_end(glyph_folder: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    report = run_pipeline(glyph_folder, models)

    emb_meta = json.loads((models / "emb.json").read_text())
    assert emb_meta["kind"] == "embedding" and emb_meta["image_size"] == 16 and emb_meta["channels"] == 1
    split = json.loads((models / "emb.split.json").read_text())
    assert split["unit"] == "alphabet" and not set(split["base"]) & set(split["novel"])
    assert len(split["novel"]) == 2 * 4  # 2 of 6 alphabets

    pred_meta = json.loads((models / "pred.json").read_text())
    manifest = json.loads((models / "pred.queries.json").read_text())
    assert pred_meta["class_names"] == split["novel"] == manifest["classes"]
    support = {s["key"] for s in manifest["support"]}
    queries = {q["key"] for q in manifest["queries"]}
    assert len(support) == 8 * 2 and len(queries) == 8 * 4
    assert not support & queries, "a support image is among the test queries"
    assert all(key.split("/")[0] + "/" + key.split("/")[1] in split["novel"] for key in queries)

    assert report["queries"] == 32
    assert [row["class"] for row in report["per_class"]] == split["novel"]
    assert sum(row["correct"] for row in report["per_class"]) == round(report["overall"] * 32)


def test_same_seed_same_numbers(glyph_folder: Path, tmp_path: Path) -> None:
    first = run_pipeline(glyph_folder, tmp_path / "one", seed=3)
    second = run_pipeline(glyph_folder, tmp_path / "two", seed=3)
    assert first == second
    # The files differ in Paddle's generated parameter names, not in values.
    one, two = (read_checkpoint(tmp_path / d / "pred.pdparams", PredictorMeta)[0] for d in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key].numpy(), two[key].numpy())


def test_finetune_on_another_source_and_a_way_subset(glyph_folder: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert runner.invoke(app, pretrain_args(glyph_folder, models)).exit_code == 0
    other = make_flat(tmp_path / "other", classes=5, per_class=3)
    result = runner.invoke(
        app,
        ["finetune", "--model", str(models / "emb.pdparams"), "--out", str(models / "p.pdparams"),
         "--data", str(other), "--way", "4", "--shot", "1", "--steps", "3", "--train-backbone"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4-way 1-shot" in result.output
    meta = json.loads((models / "p.json").read_text())
    assert len(meta["class_names"]) == 4 and meta["data"] == [str(other.resolve())]
    result = runner.invoke(app, ["test", "--model", str(models / "p.pdparams"), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["finetune", "--model", "{m}/absent.pdparams"], "no such checkpoint file"),
        (["finetune", "--model", "{m}/emb.pdparams", "--way", "50"], "--way 50: only 8 novel classes are available"),
        (["finetune", "--model", "{m}/emb.pdparams", "--shot", "6"], "--shot 6 needs at least 7"),
        (["finetune", "--model", "{m}/emb.pdparams", "--shot", "0"], "--shot 0: must be at least 1"),
        (["test", "--model", "{m}/emb.pdparams"], "is a embedding checkpoint, expected a predictor"),
        (["pretrain", "--data", "{m}/nowhere"], "--data {m}/nowhere: no such file or folder"),
        (["pretrain", "--image-size", "2"], "--image-size 2: must be between 8 and 512"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(glyph_folder: Path, tmp_path: Path, args: list[str], message: str) -> None:
    models = tmp_path / "models"
    assert runner.invoke(app, pretrain_args(glyph_folder, models)).exit_code == 0
    before = sorted(p.name for p in models.iterdir())
    result = runner.invoke(app, [a.format(m=models) for a in args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {message.format(m=models)}"] or message.format(m=models) in lines[-1]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in models.iterdir()) == before


def test_finetune_excludes_base_classes_of_the_embedding(glyph_folder: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert runner.invoke(app, pretrain_args(glyph_folder, models)).exit_code == 0
    result = runner.invoke(
        app, ["finetune", "--model", str(models / "emb.pdparams"), "--out", str(models / "p.pdparams"),
              "--data", str(glyph_folder), "--steps", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    split = json.loads((models / "emb.split.json").read_text())
    assert json.loads((models / "p.json").read_text())["class_names"] == split["novel"]


def test_a_logit_score_threshold_comes_from_fits_without_each_fold(glyph_folder: Path, tmp_path: Path) -> None:
    from pdfewshot.config import FinetuneConfig
    from pdfewshot.methods.fitting import FitSettings, held_out_logits
    from pdfewshot.methods.unknown import suggest_threshold
    from pdfewshot.nets.embedding import embed
    from pdfewshot.stages.common import load_checkpoint_data, open_embedding

    models = tmp_path / "models"
    assert runner.invoke(app, pretrain_args(glyph_folder, models)).exit_code == 0
    result = runner.invoke(
        app, ["finetune", "--model", str(models / "emb.pdparams"), "--out", str(models / "p.pdparams"),
              "--shot", "3", "--steps", "20", "--reject-score", "energy"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads((models / "p.json").read_text())["suggested_reject_below"]
    # The same threshold from the support images the manifest names, fitted fold by fold.
    net, meta = open_embedding(models / "emb.pdparams")
    imageset, _, _ = load_checkpoint_data(meta)
    manifest = json.loads((models / "p.queries.json").read_text())
    where = {key: i for i, key in enumerate(imageset.keys)}
    index = [where[item["key"]] for item in manifest["support"]]
    labels = np.array([manifest["classes"].index(item["class"]) for item in manifest["support"]])
    features = embed(net, imageset.images[index]).numpy()
    defaults = FinetuneConfig()
    settings = FitSettings(20, defaults.lr, defaults.entropy_weight, defaults.scale, defaults.backbone_lr)
    classes = len(manifest["classes"])
    fitted = held_out_logits(features, labels, classes, settings=settings)
    assert stored == pytest.approx(suggest_threshold("energy", features, labels, classes, 10.0, 0.05, fitted), abs=1e-4)
    assert stored != pytest.approx(suggest_threshold("energy", features, labels, classes, 10.0, 0.05), abs=1e-3)

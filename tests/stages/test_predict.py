import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.config import QueryTestConfig
from pdfewshot.stages.test import run_test
from tests.conftest import make_nested, tiny_pretrain

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("predict")
    data = make_nested(root / "data", alphabets=3, characters=3, per_class=6)
    models = root / "models"
    pretrain = tiny_pretrain(data, models / "e.pdparams", 3)
    assert runner.invoke(app, pretrain).exit_code == 0
    finetune = ["finetune", "--model", str(models / "e.pdparams"), "--out", str(models / "p.pdparams"),
                "--shot", "2", "--steps", "20"]  # fmt: skip
    assert runner.invoke(app, finetune).exit_code == 0
    return data, models / "p.pdparams"


def predict_json(args: list[str]) -> list[dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, ["predict", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_predict_agrees_with_test_on_the_held_out_queries(trained: tuple[Path, Path]) -> None:
    data, model = trained
    tested = run_test(QueryTestConfig(model=model, report=None))
    manifest = json.loads(model.with_name("p.queries.json").read_text())
    files = [str(data / q["key"]) for q in manifest["queries"]]
    predicted = predict_json([*files, "--model", str(model), "--reject-below", "none"])
    classes = json.loads(model.with_name("p.json").read_text())["class_names"]
    assert [p["label"] for p in predicted] == [classes[i] for i in tested.predictions]
    # By default predict answers "unknown" below the stored threshold, as often as test says it would.
    default = predict_json([*files, "--model", str(model)])
    unknown = [p["label"] == "unknown" for p in default]
    assert tested.unknown_share is not None and np.mean(unknown) == pytest.approx(tested.unknown_share)
    assert all(p["rejection"]["suggested"] for p in default)
    assert [p["label"] for p, gone in zip(predicted, unknown, strict=True) if not gone] == [
        p["label"] for p in default if p["label"] != "unknown"
    ]


def test_top_k_probabilities_and_folders(trained: tuple[Path, Path]) -> None:
    data, model = trained
    predicted = predict_json([str(data / "alpha0"), "--model", str(model), "--top-k", "50", "--reject-below", "none"])
    assert len(predicted) == 3 * 6  # every image under the folder, recursively
    for item in predicted:
        probabilities = [t["probability"] for t in item["top"]]
        assert len(probabilities) == 3  # capped at the number of classes
        assert probabilities == sorted(probabilities, reverse=True)
        assert np.isclose(sum(probabilities), 1.0, atol=1e-5)
        assert item["label"] == item["top"][0]["class"]


def test_reject_below_answers_unknown(trained: tuple[Path, Path]) -> None:
    data, model = trained
    image = str(data / "alpha1" / "char0" / "0.png")
    assert predict_json([image, "--model", str(model), "--reject-below", "1.0"])[0]["label"] == "unknown"
    assert predict_json([image, "--model", str(model), "--reject-below", "0.0"])[0]["label"] != "unknown"


def test_table_output(trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, model = trained
    args = ["predict", str(data / "alpha1" / "char0"), "--model", str(model), "--top-k", "2"]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert "predictions" in result.output and len(rows) == 6  # one row per image of the folder
    assert "answering unknown below" in result.output and "--reject-below none names a class" in result.output
    # Paths are shown whole, relative to the working folder, and a bracket in a name is not markup.
    (tmp_path / "[x] photos").mkdir()
    (tmp_path / "[x] photos" / "[1].png").write_bytes((data / "alpha1" / "char0" / "0.png").read_bytes())
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["predict", "[x] photos", "--model", str(model)], env={"COLUMNS": "400"})
    assert "│ [x] photos/[1].png " in result.output, result.output


def test_a_huge_image_is_skipped_with_one_line(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    data, model = trained
    Image.new("L", (15000, 15000), 128).save(tmp_path / "huge.png", compress_level=1)
    (tmp_path / "fine.png").write_bytes((data / "alpha0" / "char0" / "0.png").read_bytes())
    result = runner.invoke(app, ["predict", str(tmp_path), "--model", str(model), "--json"])
    assert result.exit_code == 0 and "Traceback" not in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: skipped 1 of the images (first: {tmp_path / 'huge.png'}: too large: 15000x15000 pixels, "
        "more than pdfewshot decodes (67 million for PNG); shrink it first)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{data}/nowhere.png"], "nowhere.png: no such file or folder"),
        (["{empty}"], "no images in this folder"),
        (["{data}/alpha0/char0/0.png", "--top-k", "0"], "--top-k 0: must be at least 1"),
        (["{data}/alpha0/char0/0.png", "--reject-below", "2"], "--reject-below 2.0: must be a cosine between -1 and 1"),
        (
            ["{data}/alpha0/char0/0.png", "--reject-below", "2", "--reject-score", "max-softmax"],
            "--reject-below 2.0: must be a probability between 0 and 1 for max-softmax",
        ),
        (
            ["{data}/alpha0/char0/0.png", "--reject-below", "1", "--reject-score", "mahalanobis"],
            "--reject-score mahalanobis: unknown, choose from max-cosine, energy, max-softmax",
        ),
    ],
)
def test_bad_predict_input(trained: tuple[Path, Path], tmp_path: Path, args: list[str], message: str) -> None:
    data, model = trained
    (tmp_path / "empty").mkdir()
    filled = [a.format(data=data, empty=tmp_path / "empty") for a in args]
    result = runner.invoke(app, ["predict", *filled, "--model", str(model)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and message in result.output
    assert "Traceback" not in result.output


def test_suggested_threshold_is_stored_and_used(trained: tuple[Path, Path]) -> None:
    data, model = trained
    meta = json.loads(model.with_name("p.json").read_text())
    suggested = meta["suggested_reject_below"]
    assert meta["reject_score"] == "max-cosine" and meta["reject_rate"] == 0.05 and -1.0 <= suggested <= 1.0
    images = [str(p) for p in sorted((data / "alpha1").rglob("*.png"))]
    with_suggestion = predict_json([*images, "--model", str(model), "--reject-below", "suggested", "--top-k", "3"])
    by_hand = predict_json([*images, "--model", str(model), "--reject-below", str(suggested), "--top-k", "3"])
    for item in with_suggestion:
        rejection = item.pop("rejection")
        assert rejection["score"] == "max-cosine" and rejection["threshold"] == suggested and rejection["suggested"]
        assert (item["label"] == "unknown") == (rejection["value"] < suggested)
    assert with_suggestion == [{k: v for k, v in item.items() if k != "rejection"} for item in by_hand]
    softmax = predict_json([*images, "--model", str(model), "--reject-below", "0.5", "--reject-score", "max-softmax"])
    for item in softmax:
        assert (item["label"] == "unknown") == (item["top"][0]["probability"] < 0.5)


def test_exported_model_predicts_as_the_checkpoint_does(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    description = json.loads((out / "pdfewshot.json").read_text())
    assert description["class_names"] == json.loads(model.with_name("p.json").read_text())["class_names"]
    assert (out / "predictor.pdiparams").is_file()
    images = [str(p) for p in sorted(data.rglob("*.png"))]
    rejecting = ["--top-k", "3", "--reject-below", "suggested"]
    from_checkpoint = predict_json([*images, "--model", str(model), *rejecting])
    from_export = predict_json([*images, "--model", str(out), *rejecting])
    assert [p["label"] for p in from_export] == [p["label"] for p in from_checkpoint]  # rejection included
    assert description["reject_score"] == "max-cosine" and description["scored"]
    np.testing.assert_allclose(
        [p["rejection"]["value"] for p in from_export], [p["rejection"]["value"] for p in from_checkpoint], atol=1e-4
    )
    for a, b in zip(from_export, from_checkpoint, strict=True):
        np.testing.assert_allclose(
            [t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-4
        )
    # exporting again replaces the earlier export; a folder of something else is refused
    assert runner.invoke(app, ["export", "--model", str(model), "--out", str(out)]).exit_code == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["export", "--model", str(model), "--out", str(tmp_path / "other")])
    assert refused.exit_code == 2 and "exists and is not an earlier pdfewshot export" in refused.output
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def _the_guides_onnx_lines_answer_as_predict(export: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/guide.md's lines that classify a photograph with ONNX Runtime alone, run on ``images``."""
    import contextlib
    import io
    import re

    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide.md").read_text()
    code = re.search(r"```python\n(import json\n.*?onnxruntime.*?)```", guide, re.S)
    assert code is not None, "docs/guide.md: the ONNX Runtime lines are missing"
    monkeypatch.chdir(export.parent)
    for image in images:
        lines = code.group(1).replace('"models/export"', repr(export.name)).replace('"photo.jpg"', repr(str(image)))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(lines, "docs/guide.md", "exec"), {})
        label, value = printed.getvalue().split()
        [answer] = predict_json([str(image), "--model", str(export)])
        assert label == answer["label"]
        assert float(value) == pytest.approx(answer["rejection"]["value"], abs=1e-3)


def test_the_onnx_export_gives_the_outputs_of_the_paddle_one(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime
    import paddle

    from pdfewshot.data.sources import load_image_files
    from pdfewshot.nets.runner import InferenceRunner
    from pdfewshot.stages.common import open_predictor

    data, model = trained
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--model", str(model), "--out", str(out), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-2].startswith(f"wrote {out / 'predictor.onnx'} (the same model as ONNX")
    description = json.loads((out / "pdfewshot.json").read_text())
    assert description["onnx"] == "predictor.onnx" and description["embedding_onnx"] == "embedding.onnx"
    size, channels = description["image_size"], description["channels"]
    images, _, _ = load_image_files(sorted(data.rglob("*.png"))[:9], size, channels)  # as pdfewshot.json says
    pixels = images.astype(np.float32).transpose(0, 3, 1, 2)
    session = onnxruntime.InferenceSession(str(out / "predictor.onnx"))
    by_onnx = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    by_paddle = InferenceRunner(str(out / "predictor"))(images)
    assert by_onnx.shape == by_paddle.shape == (9, len(description["class_names"]) + 1)
    np.testing.assert_allclose(by_onnx, by_paddle, atol=1e-4)
    embedder = onnxruntime.InferenceSession(str(out / "embedding.onnx"))
    embedded = embedder.run(None, {embedder.get_inputs()[0].name: pixels})[0]
    predictor, _ = open_predictor(model)
    predictor.eval()
    np.testing.assert_allclose(embedded, predictor.embedding(paddle.to_tensor(pixels)).numpy(), atol=1e-4)
    _the_guides_onnx_lines_answer_as_predict(out, sorted(data.rglob("*.png"))[:6], monkeypatch)
    # without paddle2onnx: one line saying what to install, and no export written
    monkeypatch.setitem(__import__("sys").modules, "paddle2onnx", None)
    refused = runner.invoke(app, ["export", "--model", str(model), "--out", str(tmp_path / "none"), "--format", "onnx"])
    assert refused.exit_code == 2 and "--format onnx: needs paddle2onnx (pip install '.[onnx]')" in refused.output
    assert not (tmp_path / "none").exists()
    unknown = runner.invoke(app, ["export", "--model", str(model), "--out", str(tmp_path / "none"), "--format", "tf"])
    assert unknown.exit_code == 2 and "--format tf: unknown, choose from paddle, onnx" in unknown.output
    assert not (tmp_path / "none").exists()

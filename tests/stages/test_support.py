import json
import shutil
from pathlib import Path

import numpy as np
import paddle.nn.functional as F
import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.data.sources import load_sources
from pdfewshot.nets.embedding import embed
from pdfewshot.stages.common import open_predictor
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import PredictorMeta
from tests.conftest import make_nested, tiny_predictor, tiny_pretrain

runner = CliRunner()


@pytest.fixture()
def trained(tmp_path: Path) -> tuple[Path, Path]:
    return tiny_predictor(tmp_path)


def test_add_then_remove_a_class(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    before, meta = read_checkpoint(model, PredictorMeta)
    # a new class from images of a class the predictor does not have (a base class, say)
    new_class = next(n for n in ("alpha0/char0", "alpha1/char0", "alpha2/char0") if n not in meta.class_names)
    folder = tmp_path / "added" / "new"
    shutil.copytree(data / new_class, folder)
    result = runner.invoke(app, ["support", "add", "newcomer", str(folder), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "added class newcomer from 5 images" in result.output

    after, meta_after = read_checkpoint(model, PredictorMeta)
    assert meta_after.class_names == [*meta.class_names, "newcomer"]
    np.testing.assert_array_equal(after["classifier.weight"].numpy()[:-1], before["classifier.weight"].numpy())
    np.testing.assert_array_equal(after["classifier.bias"].numpy(), [*before["classifier.bias"].numpy(), 0.0])
    predictor, _ = open_predictor(model)
    images, _ = load_sources([str(folder.parent)], 16, 1)
    prototype = F.normalize(embed(predictor.embedding, images.images).mean(axis=0, keepdim=True), axis=1)
    np.testing.assert_allclose(after["classifier.weight"].numpy()[-1], prototype.numpy()[0], atol=1e-5)
    assert json.loads(model.with_name("p.queries.json").read_text())["classes"][-1] == "newcomer"
    tested = runner.invoke(app, ["test", "--model", str(model), "--report", str(tmp_path / "r.json")])
    assert tested.exit_code == 0, tested.output  # the added class has no queries and does not get in the way

    dropped = meta.class_names[0]
    assert runner.invoke(app, ["support", "remove", dropped, "--model", str(model)]).exit_code == 0
    final, meta_final = read_checkpoint(model, PredictorMeta)
    assert meta_final.class_names == [*meta.class_names[1:], "newcomer"]
    np.testing.assert_array_equal(final["classifier.weight"].numpy(), after["classifier.weight"].numpy()[1:])
    manifest = json.loads(model.with_name("p.queries.json").read_text())
    assert all(q["class"] != dropped for q in manifest["queries"])
    assert runner.invoke(app, ["test", "--model", str(model), "--report", str(tmp_path / "r.json")]).exit_code == 0


def test_support_errors(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, model = trained
    _, meta = read_checkpoint(model, PredictorMeta)
    result = runner.invoke(app, ["support", "remove", "nobody", "--model", str(model)])
    assert result.exit_code == 2 and "NAME nobody: the predictor has no such class" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["support", "add", "x", str(tmp_path / "empty"), "--model", str(model)])
    assert result.exit_code == 2 and "no images in this folder" in result.output
    assert read_checkpoint(model, PredictorMeta)[1].class_names == meta.class_names


def test_adding_images_to_a_class_it_has_moves_that_class_alone(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    before, meta = read_checkpoint(model, PredictorMeta)
    extended = meta.class_names[0]
    folder = data / next(n for n in ("alpha0/char0", "alpha1/char0", "alpha2/char0") if n not in meta.class_names)
    result = runner.invoke(app, ["support", "add", extended, str(folder), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert f"added 5 images to class {extended} (now {meta.shot + 5})" in result.output
    after, meta_after = read_checkpoint(model, PredictorMeta)
    assert meta_after.class_names == meta.class_names
    np.testing.assert_array_equal(after["classifier.weight"].numpy()[1:], before["classifier.weight"].numpy()[1:])
    predictor, _ = open_predictor(model)
    images, _ = load_sources([str(folder.parent)], 16, 1)
    chosen = images.subset_classes([folder.name])
    prototype = F.normalize(embed(predictor.embedding, chosen.images).mean(axis=0), axis=0).numpy()

    def cosine(row: np.ndarray) -> float:
        return float(row @ prototype / np.linalg.norm(row))

    assert cosine(after["classifier.weight"].numpy()[0]) > cosine(before["classifier.weight"].numpy()[0])
    assert cosine(after["prototypes"].numpy()[0]) > cosine(before["prototypes"].numpy()[0])


def test_concurrent_commands_keep_every_class(tmp_path: Path) -> None:
    """Four `support add` processes at once on one predictor: every class is in it afterwards."""
    import subprocess
    import sys

    data = make_nested(tmp_path / "data", alphabets=3, characters=3, per_class=4)
    model = tmp_path / "m" / "p.pdparams"
    embedding = tmp_path / "m" / "e.pdparams"
    assert runner.invoke(app, tiny_pretrain(data, embedding)).exit_code == 0
    finetuned = runner.invoke(app, ["finetune", "--model", str(embedding), "--out", str(model), "--steps", "1"])
    assert finetuned.exit_code == 0, finetuned.output
    pdfewshot = Path(sys.executable).with_name("pdfewshot")
    names = [f"concurrent{i}" for i in range(4)]
    processes = [
        subprocess.Popen([str(pdfewshot), "--threads", "1", "support", "add", name, str(data / "alpha0" / "char0"),
                          "--model", str(model)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in names
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    classes = read_checkpoint(model, PredictorMeta)[1].class_names
    assert set(names) <= set(classes) and len(classes) == len(set(classes))

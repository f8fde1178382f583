import builtins
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.errors import PdfewshotError
from pdfewshot.reporting import plots
from tests.conftest import make_nested, tiny_pretrain
from tests.data.test_omniglot_runs import make_runs_zip

runner = CliRunner()


def is_png(path: Path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_plot_functions_write_pngs(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    assert is_png(plots.confusion_matrix(labels, predictions, ["a", "b", "c"], tmp_path / "c.png"))
    assert is_png(plots.class_accuracy_bars(["a", "b", "c"], [0.5, 1.0, 0.0], tmp_path / "b.png", "t"))
    assert is_png(plots.loss_curve(list(np.linspace(1, 0, 50)), tmp_path / "l.png", "t"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "c.png", "l.png"]


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert not plots.plots_available()
    with pytest.raises(PdfewshotError, match=r'install it with: pip install "pdfewshot\[plots\]"'):
        plots.loss_curve([1.0], Path("x.png"), "t")


def test_stages_write_their_pictures(tmp_path: Path) -> None:
    data = make_nested(tmp_path / "data", alphabets=3, characters=3, per_class=5)
    m = tmp_path / "m"
    pretrain = tiny_pretrain(data, m / "e.pdparams", 2)
    assert runner.invoke(app, pretrain).exit_code == 0
    assert is_png(m / "e.loss.png")
    finetune = ["finetune", "--model", str(m / "e.pdparams"), "--out", str(m / "p.pdparams"), "--steps", "2"]
    assert runner.invoke(app, finetune).exit_code == 0
    result = runner.invoke(app, ["test", "--model", str(m / "p.pdparams"), "--report", str(m / "t.json"), "--plots"])
    assert result.exit_code == 0, result.output
    assert is_png(m / "t.confusion.png") and is_png(m / "t.per_class.png")
    evaluate = ["evaluate", "--model", str(m / "e.pdparams"), "--way", "2", "--query", "2", "--episodes", "3",
                "--method", "prototype", "--report", str(m / "ev.json"), "--plots"]  # fmt: skip
    result = runner.invoke(app, evaluate)
    assert result.exit_code == 0, result.output
    assert is_png(m / "ev.prototype.1shot.confusion.png") and is_png(m / "ev.prototype.1shot.per_class.png")
    runs = make_runs_zip(tmp_path / "runs.zip", runs=2, classes=3)
    result = runner.invoke(app, ["evaluate", "--runs", str(runs), "--model", str(m / "e.pdparams"),
                                 "--method", "nn-pixels", "--report", str(m / "r.json"), "--plots"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert is_png(m / "r.nn-pixels.1shot.per_run.png")

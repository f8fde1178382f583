import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.errors import PdfewshotError
from pdfewshot.pipeline import Stage, read_pipeline
from tests.conftest import make_nested

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_options_become_command_line_arguments(tmp_path: Path) -> None:
    file = write(
        tmp_path / "p.toml",
        '[[stage]]\ncommand = "pretrain"\ndata = ["a", "b"]\nrotations = true\nfreeze_backbone = false\n'
        'image-size = 16\nlr = 0.5\n[[stage]]\ncommand = "test"\n',
    )
    assert read_pipeline(file) == [
        Stage("pretrain", ["--data", "a", "--data", "b", "--rotations", "--no-freeze-backbone",
                           "--image-size", "16", "--lr", "0.5"]),
        Stage("test", []),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[stage]]\ncommand = 'fly'\n", "stage 1: command = 'fly': expected one of"),
        ("[[stage]]\nshot = 2\n", "stage 1: command = None"),
        ("title = 'x'\n[[stage]]\ncommand = 'test'\n", "unknown key 'title'"),
        ("[[stage]\n", "not valid TOML"),
        ("", "no [[stage]] tables"),
        ("[[stage]]\ncommand = 'finetune'\nshot = {a = 1}\n", "shot = {'a': 1}: expected a string"),
    ],
)
def test_bad_pipeline_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PdfewshotError) as error:
        read_pipeline(write(tmp_path / "p.toml", text))
    assert message in str(error.value) and "p.toml" in str(error.value)


def test_run_chains_the_stages_and_skips_what_is_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run state goes to ./models/.run-state
    data = make_nested(tmp_path / "data", alphabets=3, characters=3, per_class=4)
    models = tmp_path / "m"
    file = write(
        tmp_path / "p.toml",
        f'[[stage]]\ncommand = "pretrain"\ndata = ["{data}"]\nout = "{models}/e.pdparams"\nimage_size = 16\n'
        f"embedding_dim = 8\nepochs = 1\nsteps_per_epoch = 2\nbatch_size = 4\nnovel_fraction = 0.34\n"
        f'[[stage]]\ncommand = "finetune"\nmodel = "{models}/e.pdparams"\nout = "{models}/p.pdparams"\nshot = 1\n'
        f'steps = 2\n[[stage]]\ncommand = "test"\nmodel = "{models}/p.pdparams"\nreport = "{models}/r.json"\n',
    )
    result = runner.invoke(app, ["run", str(file)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("overall: ")
    assert (models / "r.json").is_file()

    again = runner.invoke(app, ["run", str(file)])
    assert again.exit_code == 0, again.output
    assert again.output.count("up to date, skipped") == 3
    # an input newer than a stage's output reruns that stage and those after it
    embedding = models / "e.pdparams"
    stamp = (models / "p.pdparams").stat().st_mtime + 10
    os.utime(embedding, (stamp, stamp))
    partly = runner.invoke(app, ["run", str(file)])
    assert partly.output.count("up to date, skipped") == 1, partly.output  # only pretrain
    assert partly.output.strip().splitlines()[-1].startswith("overall: ")
    # changed options rerun the stage; --force reruns all
    file.write_text(file.read_text().replace("steps = 2", "steps = 3"))
    assert runner.invoke(app, ["run", str(file)]).output.count("up to date, skipped") == 1
    assert "up to date" not in runner.invoke(app, ["run", str(file), "--force"]).output


def test_run_reports_bad_options_and_failing_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    file = write(tmp_path / "p.toml", '[[stage]]\ncommand = "finetune"\nshots = 2\n')
    result = runner.invoke(app, ["run", str(file)])
    assert result.exit_code == 2
    assert "p.toml: stage 1 (finetune): No such option: --shots" in result.output
    file = write(tmp_path / "q.toml", '[[stage]]\ncommand = "finetune"\nshot = "two"\n')
    result = runner.invoke(app, ["run", str(file)])
    assert result.exit_code == 2 and "stage 1 (finetune): Invalid value for '--shot'" in result.output
    file = write(tmp_path / "r.toml", f'[[stage]]\ncommand = "test"\nmodel = "{tmp_path}/none.pdparams"\n')
    result = runner.invoke(app, ["run", str(file)])
    assert result.exit_code == 2 and "no such checkpoint file" in result.output

"""The CLI is a thin layer: its option defaults are the config dataclasses' own, and errors about a
setting are shown as the option (or argument) that sets it."""

import dataclasses
import os
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pdfewshot.cli import app, hoisted, option_name, user_errors
from pdfewshot.config import (
    EvaluateConfig,
    ExportConfig,
    FinetuneConfig,
    PredictConfig,
    PretrainConfig,
    QueryTestConfig,
)
from pdfewshot.errors import PdfewshotError

COMMANDS: dict[str, type[Any]] = {
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "test": QueryTestConfig,
    "evaluate": EvaluateConfig,
    "predict": PredictConfig,
    "export": ExportConfig,
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_defaults_to_its_config_field(command: str) -> None:
    config = COMMANDS[command]()
    fields = {item.name for item in dataclasses.fields(config)}
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    checked = 0
    for parameter in click_command.params:
        if parameter.name not in fields:
            continue
        expected = getattr(config, parameter.name)
        # A repeated option (a list) parses to None when absent; the config's own list then applies.
        if isinstance(expected, list) and parameter.default is None:
            continue
        assert parameter.default == expected, f"{command} --{parameter.name}"
        checked += 1
    assert checked >= 2


def test_errors_name_the_option_or_argument_that_sets_the_value() -> None:
    def command(
        out: typer.models.OptionInfo = typer.Option(None),  # noqa: B008
        method: typer.models.OptionInfo = typer.Option(None, "--method"),  # noqa: B008
    ) -> None: ...

    assert option_name(command, "out") == "--out"
    assert option_name(command, "lr_schedule") == "lr_schedule"  # not one of this command's options
    from pdfewshot.cli import data_synth, predict_command

    assert option_name(data_synth, "out") == "OUT"
    assert option_name(predict_command, "inputs") == "IMAGE_OR_FOLDER..."
    assert option_name(predict_command, "top_k") == "--top-k"


def test_user_errors_show_one_line_with_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors
    def command(image_size: int = 0) -> None:
        raise PdfewshotError(f"{image_size}: must be between 8 and 512", "image_size")

    with pytest.raises(typer.Exit) as stop:
        command()
    assert stop.value.exit_code == 2
    assert capsys.readouterr().err == "error: --image-size 0: must be between 8 and 512\n"
    assert str(PdfewshotError(": no data source given", "data")) == "data: no data source given"


def test_a_failed_pipeline_state_write_names_the_file_not_an_option(tmp_path: Any, monkeypatch: Any) -> None:
    pipeline_file = tmp_path / "p.toml"
    pipeline_file.write_text('[[stage]]\ncommand = "evaluate"\ndata = ["nowhere"]\n')
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").write_text("a file where the state folder should go")
    result = CliRunner().invoke(app, ["run", str(pipeline_file)])
    assert result.exit_code == 2
    assert "--out" not in result.output and "models/.run-state" in result.output


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (["predict", "a.png", "--cache-dir", "x"], ["--cache-dir", "x", "predict", "a.png"]),
        (["--threads", "2", "predict", "--threads=3", "a.png"], ["--threads", "2", "--threads=3", "predict", "a.png"]),
        (["support", "add", "ann", "f/", "--cache-dir", "off"], ["--cache-dir", "off", "support", "add", "ann", "f/"]),
        (["predict", "--", "--cache-dir"], ["predict", "--", "--cache-dir"]),  # after "--": an image's name
        (["--version"], ["--version"]),
    ],
)
def test_global_options_may_follow_the_command(given: list[str], seen: list[str]) -> None:
    assert hoisted(given) == seen


def test_a_global_option_after_the_command_is_applied(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PDFEWSHOT_CACHE", raising=False)
    args = ["data", "synth", str(tmp_path / "g"), "--alphabets", "1", "--characters", "2", "--drawers", "2"]
    result = CliRunner().invoke(app, hoisted([*args, "--cache-dir", "off"]))
    assert result.exit_code == 0, result.output
    assert os.environ.get("PDFEWSHOT_CACHE") == "off"
    monkeypatch.delenv("PDFEWSHOT_CACHE", raising=False)

"""The pipeline files the project ships parse, and every option in them is one the command accepts."""

from pathlib import Path

import pytest
from typer.main import get_command

from pdfewshot.cli import app
from pdfewshot.pipeline import read_pipeline

PIPELINES = sorted((Path(__file__).resolve().parent.parent / "pipelines").glob("*.toml"))


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_shipped_pipeline_options_exist(path: Path) -> None:
    command = get_command(app)
    for stage in read_pipeline(path):
        sub = command.commands[stage.command]  # type: ignore[attr-defined]
        known = {opt for param in sub.params for opt in (*param.opts, *param.secondary_opts)}
        flags = [a for a in stage.arguments if a.startswith("--")]
        assert set(flags) <= known, f"{path.name} {stage.command}: {set(flags) - known}"


def test_both_pipelines_are_shipped() -> None:
    assert {p.name for p in PIPELINES} >= {"default.toml", "omniglot.toml"}

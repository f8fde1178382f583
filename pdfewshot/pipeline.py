"""Pipeline files: stages and their options as TOML, run one after the other by ``pdfewshot run``.

    [[stage]]
    command = "pretrain"
    data = ["images.zip"]
    rotations = true

    [[stage]]
    command = "finetune"
    shot = 2

A stage whose options are unchanged since it last ran and whose outputs are newer than its inputs
is skipped (``--force`` runs it anyway); what ran is remembered in ``models/.run-state/``.

Each table's keys are the command's options with ``_`` or ``-`` between words; ``true`` / ``false``
give ``--flag`` / ``--no-flag``, lists repeat the option. Paths are as on the command line: relative
to the folder you run from. The command's own parser checks the options, so a pipeline file accepts
exactly what the command line does.
"""

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.atomic import atomic_write_text

STAGE_COMMANDS = ("pretrain", "finetune", "test", "evaluate")


@dataclass(frozen=True)
class Stage:
    command: str
    arguments: list[str]

    def __str__(self) -> str:
        return " ".join([self.command, *self.arguments])


def _arguments(options: dict[str, Any], where: str) -> list[str]:
    arguments = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool):
                arguments.append(flag if item else "--no-" + flag[2:])
            elif isinstance(item, str | int | float):
                arguments += [flag, str(item)]
            else:
                raise PdfewshotError(f"{where}: {key} = {item!r}: expected a string, number, boolean or list of them")
    return arguments


def read_pipeline(path: Path) -> list[Stage]:
    """The stages of a pipeline file, with their options as command-line arguments."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PdfewshotError(f"{path}: no such file", "file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PdfewshotError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(document) - {"stage"})
    if unknown:
        raise PdfewshotError(f"{path}: unknown key {unknown[0]!r} (a pipeline file holds [[stage]] tables)")
    tables = document.get("stage")
    if not isinstance(tables, list) or not tables:
        raise PdfewshotError(f"{path}: no [[stage]] tables")
    stages = []
    for number, table in enumerate(tables, 1):
        where = f"{path}: stage {number}"
        options = dict(table)
        command = options.pop("command", None)
        if command not in STAGE_COMMANDS:
            raise PdfewshotError(f"{where}: command = {command!r}: expected one of {', '.join(STAGE_COMMANDS)}")
        stages.append(Stage(command, _arguments(options, f"{where} ({command})")))
    return stages


# Which options of each stage name the files it reads and the files it writes.
STAGE_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pretrain": (("data", "pretrained"), ("out",)),
    "finetune": (("model", "data"), ("out",)),
    "test": (("model", "data"), ("report",)),
    "evaluate": (("model", "data", "runs"), ("report",)),
}


def _paths(values: object) -> list[Path]:
    items = values if isinstance(values, list | tuple) else [values]
    return [Path(str(v)) for v in items if v is not None and not str(v).startswith("builtin:")]


def _newest_mtime(path: Path) -> float:
    if path.is_dir():
        return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=path.stat().st_mtime)
    return path.stat().st_mtime


def stage_files(command: str, params: dict[str, Any]) -> tuple[list[Path], list[Path]]:
    """The files a stage reads and writes, from its parsed options (defaults included)."""
    inputs, outputs = STAGE_FILES[command]
    return (
        [p for name in inputs for p in _paths(params.get(name))],
        [p for name in outputs for p in _paths(params.get(name))],
    )


def up_to_date(stage: Stage, params: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """True when the stage ran before with the same options and its outputs are newer than its inputs."""
    if previous is None or previous.get("arguments") != [stage.command, *stage.arguments]:
        return False
    inputs, outputs = stage_files(stage.command, params)
    if not outputs or not all(p.exists() for p in [*inputs, *outputs]):
        return False
    oldest_output = min(_newest_mtime(p) for p in outputs)
    return all(_newest_mtime(p) <= oldest_output for p in inputs)


def state_path(pipeline: Path) -> Path:
    """Where ``pdfewshot run`` remembers which stages of ``pipeline`` ran, and with which options."""
    return Path("models") / ".run-state" / f"{pipeline.stem}.json"


def read_state(pipeline: Path) -> list[dict[str, Any]]:
    try:
        state = json.loads(state_path(pipeline).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return []
    return state if isinstance(state, list) else []


def write_state(pipeline: Path, state: list[dict[str, Any]]) -> None:
    atomic_write_text(state_path(pipeline), json.dumps(state, indent=1))

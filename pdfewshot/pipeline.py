"""Pipeline files: stages and their options as TOML, run one after the other by ``pdfewshot run``.

    [[stage]]
    command = "pretrain"
    data = ["images.zip"]
    rotations = true

    [[stage]]
    command = "finetune"
    shot = 2

Each table's keys are the command's options with ``_`` or ``-`` between words; ``true`` / ``false``
give ``--flag`` / ``--no-flag``, lists repeat the option. Paths are as on the command line: relative
to the folder you run from. The command's own parser checks the options, so a pipeline file accepts
exactly what the command line does.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdfewshot.errors import PdfewshotError

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
        raise PdfewshotError(f"FILE {path}: no such file") from None
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

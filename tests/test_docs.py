"""The docs stay true: docs/cli.md is what Typer writes from the CLI today, every relative link in README.md
and docs/ leads to a file, and every `pdfewshot ...` command line in them names a command and options that
exist."""

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from pdfewshot.cli import app

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"(?:^|[\s`(])pdfewshot((?: [a-z][a-z-]*)+)((?: +[^\s`|]+)*)")


def test_the_cli_reference_is_what_typer_writes_today() -> None:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "cli.md").read_text()
    assert text == module.reference(), "docs/cli.md is out of date: python docs/cli_reference.py"


def test_the_cli_reference_shows_help_texts_as_written() -> None:
    """No HTML entities, no square brackets taken for Rich markup, no "<" taken for an HTML tag."""
    text = (ROOT / "docs" / "cli.md").read_text()
    assert not re.search(r"&(#x?[0-9a-fA-F]+|[a-z]+);", text)
    assert 'pip install "pdfewshot[visualdl]"' in text and "[[stage]] tables" in text
    assert "root/\\<class>/\\<image>" in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_relative_link_leads_to_a_file(doc: Path) -> None:
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{doc.name}: link to {target} leads nowhere"


def _commands(text: str) -> list[tuple[list[str], list[str]]]:
    """(command words, options) of each `pdfewshot ...` command line in code: fenced blocks and `spans`."""
    code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    found = []
    for block in code:
        for line in block.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line.split("  #", 1)[0]):  # one command each
                for words, rest in COMMAND.findall(part):
                    options = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
                    found.append((words.split(), options))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_command_in_the_docs_exists_with_its_options(doc: Path) -> None:
    root: Any = typer.main.get_command(app)  # Typer's own copy of a click group
    for words, options in _commands(doc.read_text()):
        command = root
        known = {opt for param in root.params for opt in param.opts}
        for word in words:
            if word not in getattr(command, "commands", {}):
                break  # the rest are arguments (an image, a folder)
            command = command.commands[word]
            known |= {opt for param in command.params for opt in param.opts + param.secondary_opts}
        assert command is not root, f"{doc.name}: `pdfewshot {' '.join(words)}` names no command"
        unknown = [option for option in options if option not in known | {"--help"}]
        assert not unknown, f"{doc.name}: `pdfewshot {' '.join(words)}` has no option {unknown[0]}"


def _tables_with_their_section(text: str) -> list[tuple[str, str]]:
    """(header row, the prose of its section before it: since the last heading) of each Markdown table."""
    found: list[tuple[str, str]] = []
    prose: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("#"):
            prose = []
        elif line.startswith("|"):
            if number + 1 < len(lines) and lines[number + 1].startswith("| ---"):
                found.append((line, "\n".join(prose)))
        else:
            prose.append(line)
    return found


def test_every_results_table_says_the_command_that_gives_it() -> None:
    """Each table of docs/results.md has its command (a benchmark script or pdfewshot) before it in its section."""
    tables = _tables_with_their_section((ROOT / "docs" / "results.md").read_text())
    assert len(tables) >= 5
    for header, prose in tables:
        assert re.search(r"`(python benchmarks/|pdfewshot )", prose), f"no command before the table {header}"


def test_the_readme_results_say_where_their_commands_are() -> None:
    readme = (ROOT / "README.md").read_text()
    results = readme[readme.index("## Results") :]
    assert "[results](docs/results.md)" in results.split("## ", 2)[1]

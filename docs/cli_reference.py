"""Writes docs/cli.md, the CLI reference, from the CLI itself: Typer's ``utils docs`` output, with every "<"
outside code spans written as "\\<" so that Markdown shows ``root/<class>/<image>`` rather than taking
``<class>`` for an HTML tag. Run from the repository's root:

    python docs/cli_reference.py
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = re.compile(r"(`[^`]*`)")
REFERENCE = Path(__file__).with_name("cli.md")


def escaped(line: str) -> str:
    """``line`` with "<" outside code spans escaped for Markdown."""
    return "".join(part if part.startswith("`") else part.replace("<", "\\<") for part in CODE.split(line))


def reference() -> str:
    """docs/cli.md as the CLI has it now."""
    typer_command = Path(sys.executable).with_name("typer")
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "cli.md"
        subprocess.run([str(typer_command), "pdfewshot.cli", "utils", "docs", "--name", "pdfewshot", "--output",
                        str(written)], check=True, capture_output=True, text=True, timeout=120)  # fmt: skip
        text = written.read_text()
    in_block = False
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            in_block = not in_block
        lines.append(line if in_block or line.startswith("```") else escaped(line))
    return "".join(lines)


if __name__ == "__main__":
    REFERENCE.write_text(reference())
    print(f"wrote {REFERENCE}")

"""Writes that never leave a half-written file: write a temporary file beside the target, then rename."""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pdfewshot.errors import PdfewshotError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Calls ``write(temporary_path)``, then renames the result onto ``path`` in one step.

    A crash or Ctrl-C before the rename leaves any previous file at ``path`` as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise PdfewshotError(f"{target}: cannot write there ({error.strerror})") from None
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_json(path: str | Path, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes a text file atomically (see :func:`atomic_write`)."""

    def write(temporary: str) -> None:
        Path(temporary).write_text(text, encoding="utf-8")

    atomic_write(path, write)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yields a temporary folder beside ``path``; when the block ends without error, the folder
    replaces ``path`` (an existing one is moved aside first, then deleted). On error nothing changes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as error:
        raise PdfewshotError(f"{path}: cannot write there ({error.strerror})") from None
    try:
        yield staging
        previous = None
        if path.exists():
            previous = path.with_name(f".{path.name}.previous")
            shutil.rmtree(previous, ignore_errors=True)
            path.rename(previous)
        staging.rename(path)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def read_json(path: Path) -> Any:
    """Parsed JSON, or a one-line error naming the file: missing, or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PdfewshotError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PdfewshotError(f"{path}: not valid JSON ({error})") from None

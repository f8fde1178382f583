"""Writes that never leave a half-written file: write a temporary file beside the target, then rename."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from pdfewshot.errors import PdfewshotError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None], option: str = "--out") -> None:
    """Calls ``write(temporary_path)``, then renames the result onto ``path`` in one step.

    A crash or Ctrl-C before the rename leaves any previous file at ``path`` as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise PdfewshotError(f"{option} {target}: cannot write there ({error.strerror})") from None
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: str | Path, text: str, option: str = "--out") -> None:
    """Writes a text file atomically (see :func:`atomic_write`)."""

    def write(temporary: str) -> None:
        Path(temporary).write_text(text, encoding="utf-8")

    atomic_write(path, write, option)

"""Scalars for VisualDL (``--visualdl DIR``), an optional extra: ``pip install ".[visualdl]"``.
View them with ``visualdl --logdir DIR``."""

from pathlib import Path
from types import TracebackType
from typing import Any

from pdfewshot.errors import PdfewshotError


class ScalarLog:
    """Writes ``tag`` = value at a step to a VisualDL log; does nothing when no folder is given."""

    def __init__(self, folder: Path | None) -> None:
        self.writer: Any = None
        if folder is None:
            return
        try:
            from visualdl import LogWriter
        except ImportError:
            raise PdfewshotError(
                ': needs VisualDL; install it with: pip install "pdfewshot[visualdl]"', "visualdl"
            ) from None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PdfewshotError(f"{folder}: cannot write there ({error.strerror})", "visualdl") from None
        self.writer = LogWriter(logdir=str(folder))

    def add(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=value, step=step)

    def __enter__(self) -> "ScalarLog":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.writer is not None:
            self.writer.close()

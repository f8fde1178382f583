"""What the user sees: Rich progress bars with the running loss, accuracy tables, JSON reports."""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pdfewshot.atomic import atomic_write_text

console = Console()
err_console = Console(stderr=True)


class LossProgress:
    """A progress bar whose text shows the running (exponentially averaged) loss."""

    def __init__(self, progress: Progress | None, total: int, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total, loss="") if progress else None
        self.running_loss: float | None = None

    def update(self, loss: float, advance: int = 1) -> None:
        self.running_loss = loss if self.running_loss is None else 0.9 * self.running_loss + 0.1 * loss
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=advance, loss=f"loss {self.running_loss:.4f}")


@contextmanager
def loss_progress(description: str, total: int, enabled: bool = True) -> Iterator[LossProgress]:
    """A Rich progress bar on stderr for ``total`` steps; silent when ``enabled`` is false."""
    if not enabled:
        yield LossProgress(None, total, description)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        yield LossProgress(progress, total, description)


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    queries: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.queries if self.queries else 0.0


def accuracy_table(rows: Sequence[ClassAccuracy], title: str) -> Table:
    """Per-class accuracy as a Rich table."""
    table = Table(title=title)
    table.add_column("class")
    table.add_column("queries", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    for row in rows:
        table.add_row(row.name, str(row.queries), str(row.correct), f"{row.accuracy:.4f}")
    return table


def write_json(path: str | Path, data: Any, option: str = "--report") -> None:
    """Writes ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n", option)

"""What the user sees: Rich progress bars with the running loss (or accuracy), accuracy tables."""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

console = Console()
# Status lines and warnings stay one line however long their paths (Rich would wrap them at the terminal
# width), so that logs can be grepped; progress bars and rules still fit the terminal.
err_console = Console(stderr=True, soft_wrap=True)


def say(line: str) -> None:
    """One line to standard error as written: no Rich markup (brackets stay), not wrapped."""
    err_console.print(line, markup=False)


def path_cell(path: str) -> Text:
    """An image's path as a table shows it: relative to the working folder when inside it (so that rows differ
    where the images do), as plain text (a bracket in a file name is not markup)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        relative = path
    return Text(path if relative.startswith("..") else relative)


class LossProgress:
    """A progress bar whose text shows the running (exponentially averaged) loss, or with ``label`` another
    per-step value (shown as it is, not averaged), and optionally a validation figure beside it."""

    def __init__(self, progress: Progress | None, total: int, description: str, label: str = "loss") -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total, loss="") if progress else None
        self.label = label
        self.running_loss: float | None = None
        self.validation = ""

    def update_completed(self, steps: int) -> None:
        """Marks steps done before this run (a resumed run) as complete."""
        if self._progress is not None and self._task is not None and steps:
            self._progress.update(self._task, completed=steps)

    def update(self, value: float, advance: int = 1) -> None:
        if self.label == "loss":
            self.running_loss = value if self.running_loss is None else 0.9 * self.running_loss + 0.1 * value
        else:
            self.running_loss = value
        self._show(advance)

    def show_validation(self, log_prob: float, accuracy: float, best: float) -> None:
        """Adds the latest validation (log-probability of the right class, accuracy) and the best so far."""
        self.validation = f"  val log-p {log_prob:.4f} (best {best:.4f}), acc {accuracy:.4f}"
        self._show(0)

    def _show(self, advance: int) -> None:
        if self._progress is not None and self._task is not None:
            text = f"{self.label} {self.running_loss:.4f}" if self.running_loss is not None else ""
            self._progress.update(self._task, advance=advance, loss=text + self.validation)


@contextmanager
def loss_progress(description: str, total: int, enabled: bool = True, label: str = "loss") -> Iterator[LossProgress]:
    """A Rich progress bar on stderr for ``total`` steps; silent when ``enabled`` is false or there are none."""
    if not enabled or total == 0:
        yield LossProgress(None, total, description, label)
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
        yield LossProgress(progress, total, description, label)


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


def evaluation_tables(result: Any, per_class: bool = False) -> list[Table]:
    """Tables for an evaluation: the summary (episodes) or accuracy per run, then optionally per class."""
    tables = []
    if result.kind == "pairs":
        pairs = result.pairs
        table = Table(title=f"pair verification: {pairs.pairs} pairs, half of one class (95% bootstrap intervals)")
        for column in ("similarity", "threshold", "accuracy", "ROC AUC", "equal error rate"):
            table.add_column(column, justify="left" if column == "similarity" else "right")
        table.add_row(
            pairs.similarity, f"{pairs.threshold:.4f}", f"{pairs.accuracy:.4f} +- {pairs.accuracy_interval:.4f}",
            f"{pairs.auc:.4f} +- {pairs.auc_interval:.4f}", f"{pairs.eer:.4f} +- {pairs.eer_interval:.4f}",
        )  # fmt: skip
        return [table]
    if result.kind == "open-set":
        table = Table(title="open-set episodes (mean +- 95% interval)")
        for column in ("method", "way", "shot", "score", "closed acc.", "AUROC", "false acc. @95%", "open acc."):
            table.add_column(column, justify="left" if column in ("method", "score") else "right")
        for row in result.open_set:
            shown = []
            for values in (row.closed, row.auroc, row.false_accepts, row.open_accuracy):
                summary = row.summary(values)
                shown.append("-" if summary is None else f"{summary[0]:.4f} +- {summary[1]:.4f}")
            table.add_row(row.method, f"{row.way}+{row.unknown_way}", str(row.shot), row.score, *shown)
        return [table]
    if result.kind == "runs":
        table = Table(title="accuracy per run (+- 95% interval over its trials)")
        table.add_column("run")
        table.add_column("trials", justify="right")
        for item in result.results:
            table.add_column(item.method, justify="right")
        intervals = [item.run_intervals() for item in result.results]
        for i, name in enumerate(result.run_names):
            run_cells = [
                f"{item.accuracies[i]:.4f} +- {spans[i]:.4f}"
                for item, spans in zip(result.results, intervals, strict=True)
            ]
            table.add_row(name, str(result.results[0].trials_each[i]), *run_cells)
        table.add_row(
            "all", str(result.results[0].trials),
            *(f"{item.trial_accuracy:.4f} +- {item.trial_interval:.4f}" for item in result.results), style="bold",
        )  # fmt: skip
        tables.append(table)
    else:
        table = Table(title="episodic accuracy (mean +- 95% interval)")
        for column in ("method", "way", "shot", "episodes", "accuracy", "+-"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for item in result.results:
            table.add_row(
                item.method, str(item.way), str(item.shot), str(len(item.accuracies)),
                f"{item.mean:.4f}", f"{item.interval:.4f}",
            )  # fmt: skip
        tables.append(table)
    if per_class:
        table = Table(title="per-class accuracy over all episodes")
        table.add_column("class")
        table.add_column("queries", justify="right")
        names = sorted({name for item in result.results for name in item.per_class})
        for item in result.results:
            table.add_column(f"{item.method} {item.shot}-shot", justify="right")
        for name in names:
            cells = [item.per_class.get(name, [0, 0]) for item in result.results]
            table.add_row(name, str(cells[0][0]), *(f"{c / q:.4f}" if q else "-" for q, c in cells))
        tables.append(table)
    return tables

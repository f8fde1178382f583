import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from pdfewshot.config import PretrainConfig
from pdfewshot.errors import PdfewshotError
from pdfewshot.reporting.visualdl import ScalarLog
from pdfewshot.stages.pretrain import pretrain
from tests.conftest import make_nested


class FakeWriter:
    """Stands in for visualdl.LogWriter where VisualDL is not installed: records what it is given."""

    instances: ClassVar[list["FakeWriter"]] = []

    def __init__(self, logdir: str) -> None:
        self.logdir, self.closed = logdir, False
        self.scalars: list[tuple[str, float, int]] = []
        FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


def test_pretrain_logs_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "visualdl", types.SimpleNamespace(LogWriter=FakeWriter))
    data = make_nested(tmp_path / "data", alphabets=3, characters=2, per_class=4)
    config = PretrainConfig(data=[str(data)], out=tmp_path / "m.pdparams", image_size=16, embedding_dim=8,
                            epochs=1, steps_per_epoch=3, batch_size=4, warmup_epochs=1, novel_fraction=0.34,
                            visualdl=tmp_path / "vdl", show_progress=False, loss="cosine-mse")  # fmt: skip
    result = pretrain(config)
    writer = FakeWriter.instances[-1]
    assert writer.logdir == str(tmp_path / "vdl") and writer.closed
    assert [tag for tag, _, _ in writer.scalars] == ["pretrain/softmax_loss"] * 3 + ["pretrain/triples_loss"] * 3
    assert [value for _, value, _ in writer.scalars] == result.losses
    assert [step for _, _, step in writer.scalars] == [1, 2, 3, 4, 5, 6]


def test_without_visualdl_installed_the_option_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "visualdl", None)  # makes `import visualdl` fail
    with pytest.raises(PdfewshotError, match=r'install it with: pip install "pdfewshot\[visualdl\]"'):
        ScalarLog(tmp_path / "vdl")
    with ScalarLog(None) as log:  # no folder: nothing is needed
        log.add("x", 1.0, 1)

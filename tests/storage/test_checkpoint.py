import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import paddle
import pytest
from paddle import nn

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.atomic import atomic_write
from pdfewshot.storage.checkpoint import check_meta, load_weights, read_checkpoint, save_checkpoint, sidecar_path


@dataclass
class Note:
    """A record of a kind of checkpoint made up for these tests."""

    KIND: ClassVar[str] = "note"
    image_size: int = 28
    iteration: int = 0


@dataclass
class Other:
    KIND: ClassVar[str] = "other"


def small_layer(out: int = 3) -> nn.Layer:
    paddle.seed(0)
    return nn.Linear(4, out)


def test_round_trip_keeps_weights_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    layer = small_layer()
    save_checkpoint(path, layer, Note(image_size=28))
    state, meta = read_checkpoint(path, Note)
    assert meta == Note(image_size=28)
    sidecar = json.loads(sidecar_path(path).read_text())  # the JSON copy says the same
    assert sidecar["image_size"] == 28 and sidecar["kind"] == "note" and sidecar["format"] == "pdfewshot-checkpoint"
    other = nn.Linear(4, 3)
    load_weights(other, state, path)
    np.testing.assert_array_equal(other.weight.numpy(), layer.weight.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pdparams"]  # no temporary files left


def test_the_checkpoint_alone_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(), Note(image_size=32))
    sidecar_path(path).unlink()
    assert read_checkpoint(path, Note)[1].image_size == 32


def test_wrong_kind_missing_foreign_and_damaged_files(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(), Note())
    with pytest.raises(PdfewshotError, match="is a note checkpoint, expected a other checkpoint"):
        read_checkpoint(path, Other)
    with pytest.raises(PdfewshotError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "absent.pdparams", Note)
    paddle.save(small_layer().state_dict(), str(tmp_path / "foreign.pdparams"))
    with pytest.raises(PdfewshotError, match="not a pdfewshot checkpoint"):
        read_checkpoint(tmp_path / "foreign.pdparams", Note)
    (tmp_path / "junk.pdparams").write_bytes(b"\x00" * 100)
    with pytest.raises(PdfewshotError, match="cannot read it as a Paddle checkpoint"):
        read_checkpoint(tmp_path / "junk.pdparams", Note)


def test_weights_that_do_not_fit_name_the_weight(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(3), Note())
    state, _ = read_checkpoint(path, Note)
    with pytest.raises(PdfewshotError, match=r"weight has shape \[4, 3\], expected \[4, 5\]"):
        load_weights(nn.Linear(4, 5), state, path)


@dataclass
class Backbone:
    backbone: str
    image_size: int


def test_check_meta_lists_every_difference() -> None:
    with pytest.raises(PdfewshotError, match="backbone is 'conv4', expected 'resnet18'; image_size is 28, expected 84"):
        check_meta(Backbone("conv4", 28), "m.pdparams", backbone="resnet18", image_size=84)
    check_meta(Backbone("resnet18", 28), "m.pdparams", backbone="resnet18")


def test_checkpoint_name_must_end_in_pdparams(tmp_path: Path) -> None:
    with pytest.raises(PdfewshotError, match=r"must end in \.pdparams"):
        save_checkpoint(tmp_path / "m.bin", small_layer(), Note())


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("previous")

    def crash(temporary: str) -> None:
        Path(temporary).write_text("half-writ")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(PdfewshotError, match="cannot write there"):
        save_checkpoint(blocker / "m.pdparams", small_layer(), Note())


SAVER = """
import sys, paddle
from pdfewshot.storage.checkpoint import save_checkpoint
from tests.storage.test_checkpoint import Note
layer = paddle.nn.Linear(2000, 2000)  # 16 MB of weights: a save takes long enough to be cut
for i in range(1, 10_000):
    layer.weight.set_value(paddle.full([2000, 2000], float(i)))
    save_checkpoint(sys.argv[1], layer, Note(iteration=i))
    print(i, flush=True)
"""


def test_killing_a_process_mid_save_leaves_a_whole_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    rng = np.random.default_rng(0)
    iterations = []
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        process.stdout.readline()  # at least one save is complete
        time.sleep(float(rng.uniform(0.0, 0.3)))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        state, meta = read_checkpoint(path, Note)
        layer = nn.Linear(2000, 2000)
        load_weights(layer, state, path)
        values = np.unique(layer.weight.numpy())
        assert values.tolist() == [float(meta.iteration)], "weights and metadata from different saves"
        iterations.append(meta.iteration)
    assert all(i >= 1 for i in iterations)

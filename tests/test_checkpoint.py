import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle import nn

from pdfewshot.atomic import atomic_write
from pdfewshot.checkpoint import check_meta, load_weights, read_sidecar, save_checkpoint, sidecar_path
from pdfewshot.errors import PdfewshotError


def small_layer(out: int = 3) -> nn.Layer:
    paddle.seed(0)
    return nn.Linear(4, out)


def test_round_trip_keeps_weights_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    layer = small_layer()
    save_checkpoint(path, layer, {"kind": "embedding", "image_size": 28})
    meta = read_sidecar(path, "embedding")
    assert meta["image_size"] == 28 and meta["format"] == "pdfewshot-checkpoint"
    other = nn.Linear(4, 3)
    load_weights(other, path)
    np.testing.assert_array_equal(other.weight.numpy(), layer.weight.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pdparams"]  # no temporary files left


def test_wrong_kind_missing_sidecar_and_stale_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(), {"kind": "embedding"})
    with pytest.raises(PdfewshotError, match="is a embedding checkpoint, expected a predictor"):
        read_sidecar(path, "predictor")
    paddle.save(small_layer(5).state_dict(), str(path))  # weights replaced behind the sidecar's back
    with pytest.raises(PdfewshotError, match="weights do not match their sidecar"):
        read_sidecar(path, "embedding")
    sidecar_path(path).unlink()
    with pytest.raises(PdfewshotError, match=r"sidecar m\.json is missing"):
        read_sidecar(path, "embedding")
    with pytest.raises(PdfewshotError, match="no such checkpoint file"):
        read_sidecar(tmp_path / "absent.pdparams", "embedding")


def test_garbage_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(), {"kind": "embedding"})
    sidecar_path(path).write_text("{not json")
    with pytest.raises(PdfewshotError, match="not valid JSON"):
        read_sidecar(path, "embedding")
    sidecar_path(path).write_text(json.dumps({"hello": 1}))
    with pytest.raises(PdfewshotError, match="not a pdfewshot checkpoint sidecar"):
        read_sidecar(path, "embedding")


def test_weights_that_do_not_fit_name_the_weight(tmp_path: Path) -> None:
    path = tmp_path / "m.pdparams"
    save_checkpoint(path, small_layer(3), {"kind": "embedding"})
    with pytest.raises(PdfewshotError, match=r"weight has shape \[4, 3\], expected \[4, 5\]"):
        load_weights(nn.Linear(4, 5), path)


def test_check_meta_lists_every_difference() -> None:
    with pytest.raises(PdfewshotError, match="backbone is 'conv4', expected 'resnet18'; image_size is 28, expected 84"):
        check_meta({"backbone": "conv4", "image_size": 28}, "m.pdparams", backbone="resnet18", image_size=84)
    check_meta({"backbone": "resnet18"}, "m.pdparams", backbone="resnet18")


def test_checkpoint_name_must_end_in_pdparams(tmp_path: Path) -> None:
    with pytest.raises(PdfewshotError, match=r"must end in \.pdparams"):
        save_checkpoint(tmp_path / "m.bin", small_layer(), {"kind": "embedding"})


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
        save_checkpoint(blocker / "m.pdparams", small_layer(), {"kind": "embedding"})

"""Reading PyTorch weights files without PyTorch: both layouts, and files that must be refused."""

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.torch_weights import read_pth
from tests.nets.pth import LEGACY_MAGIC, write_legacy, write_zip

STATE: dict[str, np.ndarray] = {
    "conv.weight": np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) / 7,
    "fc.weight": np.arange(12, dtype=np.float32).reshape(4, 3) - 5,
    "bn.num_batches_tracked": np.array(17, dtype=np.int64),
}


@pytest.mark.parametrize("write", [write_legacy, write_zip])
def test_both_layouts_read_back_every_tensor_strides_included(tmp_path: Path, write: object) -> None:
    path = write(tmp_path / "w.pth", STATE, transposed={"fc.weight"})  # type: ignore[operator]
    state = read_pth(path)
    assert list(state) == list(STATE)
    for name, array in STATE.items():
        assert state[name].dtype == array.dtype and state[name].flags.writeable
        np.testing.assert_array_equal(state[name], array)


class _RunsACommand:
    """What a hostile weights file holds: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _legacy_with(tmp_path: Path, payload: object, position: int) -> Path:
    """A legacy-layout file whose ``position``-th pickle (0: the magic number, 3: the object) is ``payload``."""
    path = tmp_path / f"hostile{position}.pth"
    values: list[object] = [LEGACY_MAGIC, 1001, {"little_endian": True}, {}, []]
    values[position] = payload
    with path.open("wb") as handle:
        for value in values:
            pickle.dump(value, handle, protocol=2)
    return path


@pytest.mark.parametrize("position", [0, 2, 3, 4])
def test_a_file_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path: Path, position: int) -> None:
    marker = tmp_path / "ran"
    path = _legacy_with(tmp_path, {"weight": _RunsACommand(marker)}, position)
    with pytest.raises(PdfewshotError) as error:
        read_pth(path)
    assert "refused, it would call posix.system" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


def test_a_zip_whose_pickle_would_run_a_command_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": _RunsACommand(marker)}, protocol=2))
    with pytest.raises(PdfewshotError, match=r"refused, it would call posix\.system"):
        read_pth(path)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.3, 0.99])
def test_a_cut_short_file_is_one_line(tmp_path: Path, keep: float) -> None:
    whole = write_legacy(tmp_path / "whole.pth", STATE).read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(PdfewshotError) as error:
        read_pth(cut)
    message = str(error.value)
    assert message.startswith(f"{cut}: ") and ("cut short" in message or "not a readable" in message)
    assert "\n" not in message


def test_files_that_are_not_weights_say_so(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(PdfewshotError, match=r"notes\.pth: "):
        read_pth(text)
    other_zip = tmp_path / "other.pth"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(PdfewshotError, match=r"without data\.pkl"):
        read_pth(other_zip)
    not_a_dict = tmp_path / "list.pth"
    buffer = io.BytesIO()
    values: list[object] = [LEGACY_MAGIC, 1001, {}, [1, 2], []]
    for value in values:
        pickle.dump(value, buffer, protocol=2)
    not_a_dict.write_bytes(buffer.getvalue())
    with pytest.raises(PdfewshotError, match="not a state dict of tensors"):
        read_pth(not_a_dict)
    with pytest.raises(PdfewshotError, match="no such file"):
        read_pth(tmp_path / "missing.pth")


def test_a_storage_count_that_does_not_match_its_tensors_is_refused(tmp_path: Path) -> None:
    """A damaged count would otherwise ask for more memory than the file holds, or leave values unset."""
    whole = bytearray(write_legacy(tmp_path / "whole.pth", STATE).read_bytes())
    tail = sum(8 + array.nbytes for array in STATE.values())  # each storage: its count, then its values
    whole[len(whole) - tail : len(whole) - tail + 8] = (10**15).to_bytes(8, "little")
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(whole))
    with pytest.raises(PdfewshotError, match=r"storage 0 holds 1000000000000000 values where its tensors need 24"):
        read_pth(damaged)

"""The TensorFlow.js weights reader: float32 and uint8-quantised tensors, byte counts, and one-line errors
naming the first tensor that does not fit a layer."""

import json
from pathlib import Path

import numpy as np
import pytest
from paddle import nn

from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.tfjs import Slot, fill_layer, read_manifest


def write_manifest(folder: Path, entries: list[dict[str, object]], data: bytes, name: str = "m") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.bin").write_bytes(data)
    path = folder / f"{name}-weights_manifest.json"
    path.write_text(json.dumps([{"paths": [f"{name}.bin"], "weights": entries}]))
    return path


def conv_weights(folder: Path) -> Path:
    """A 2x2 convolution of 1 -> 2 channels (float32, [h, w, in, out]) and its uint8-quantised bias."""
    filters = np.arange(8, dtype=np.float32).reshape(2, 2, 1, 2)
    entries: list[dict[str, object]] = [
        {"name": "conv/filters", "shape": [2, 2, 1, 2], "dtype": "float32"},
        {"name": "conv/bias", "shape": [2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
    ]  # fmt: skip
    return write_manifest(folder, entries, filters.tobytes() + bytes([0, 10]))


def test_reads_float32_and_quantised_tensors_in_order(tmp_path: Path) -> None:
    tensors = read_manifest(conv_weights(tmp_path))
    assert list(tensors) == ["conv/filters", "conv/bias"]
    assert np.array_equal(tensors["conv/filters"], np.arange(8, dtype=np.float32).reshape(2, 2, 1, 2))
    assert np.allclose(tensors["conv/bias"], [-1.0, 4.0])  # min + scale * q


def test_fills_a_layer_with_tensorflow_axes_turned(tmp_path: Path) -> None:
    conv = nn.Conv2D(1, 2, 2)
    path = conv_weights(tmp_path)
    fill_layer(conv, read_manifest(path), [Slot("conv/filters", "weight", "conv"), Slot("conv/bias", "bias")], path)
    expected = np.arange(8, dtype=np.float32).reshape(2, 2, 1, 2).transpose(3, 2, 0, 1)
    assert np.array_equal(conv.weight.numpy(), expected)


@pytest.mark.parametrize(
    ("slots", "says"),
    [
        ([Slot("conv/filters", "weight", "conv")], "tensor conv/bias is extra"),
        ([Slot("conv/filters", "weight", "conv"), Slot("conv/scale", "bias")], "tensor conv/scale is missing"),
        ([Slot("conv/filters", "weight", "same"), Slot("conv/bias", "bias")], "tensor conv/filters has shape"),
    ],
)
def test_a_manifest_that_does_not_fit_names_the_tensor(tmp_path: Path, slots: list[Slot], says: str) -> None:
    path = conv_weights(tmp_path)
    with pytest.raises(PdfewshotError, match=says):
        fill_layer(nn.Conv2D(1, 2, 2), read_manifest(path), slots, path)


def test_a_binary_cut_short_or_missing_is_an_error_naming_it(tmp_path: Path) -> None:
    path = conv_weights(tmp_path)
    binary = tmp_path / "m.bin"
    binary.write_bytes(binary.read_bytes()[:-1])
    with pytest.raises(PdfewshotError, match=r"m.bin holds 33 bytes where its tensors need 34"):
        read_manifest(path)
    binary.unlink()
    with pytest.raises(PdfewshotError, match=r"weights file .*m\.bin is missing"):
        read_manifest(path)


def test_a_file_that_is_no_manifest_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x-weights_manifest.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(PdfewshotError, match=r"not a TensorFlow\.js weights manifest"):
        read_manifest(path)
    with pytest.raises(PdfewshotError, match="no such weights manifest"):
        read_manifest(tmp_path / "none.json")

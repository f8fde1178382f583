"""TensorFlow.js weights, read once: a ``*-weights_manifest.json`` and the binary files it names.

The manifest lists weight groups; each group names its binary files (``paths``, read back to back) and
the tensors stored in them in order (``name``, ``shape``, ``dtype``). A tensor stored as float32 takes
4 bytes a value; one with ``"quantization": {"dtype": "uint8", "scale": s, "min": m}`` takes one byte a
value, read as ``m + s * q`` (uint16 the same with two bytes). The byte count of each group is checked
against what its tensors need, so a binary cut short or padded is an error naming it.

:func:`fill_layer` then copies the tensors into a Paddle layer through a table of which tensor fills
which parameter and how its axes are laid out (TensorFlow keeps a convolution's filters as
``[h, w, in, out]``, Paddle as ``[out, in, h, w]``); a manifest of another network is an error naming the
first tensor that is missing, extra or of another shape. Nothing here knows about faces.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from paddle import nn

from pdfewshot.errors import PdfewshotError

MANIFEST_SUFFIX = "-weights_manifest.json"
_STORED = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


def manifest_path(source: str | Path, model: str) -> Path:
    """The manifest of ``model`` (e.g. ``face_recognition_model``): ``source`` itself when it is a manifest
    file, else ``source/<model>-weights_manifest.json`` (a folder such as face-api's ``model/``)."""
    path = Path(source).expanduser()
    return path if path.is_file() else path / f"{model}{MANIFEST_SUFFIX}"


def read_manifest(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a TensorFlow.js weights manifest, by name in manifest order, as float32 (int32 kept)."""
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such weights manifest")
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(groups, list):
            raise TypeError("not a list of weight groups")
        return {name: tensor for group in groups for name, tensor in _read_group(path.parent, group)}
    except PdfewshotError as error:
        raise PdfewshotError(f"{path}: {error.message}") from None
    except (ValueError, TypeError, KeyError) as error:
        raise PdfewshotError(f"{path}: not a TensorFlow.js weights manifest ({error})") from None


def _read_group(folder: Path, group: dict[str, object]) -> list[tuple[str, np.ndarray]]:
    paths, entries = group["paths"], group["weights"]
    if not isinstance(paths, list) or not isinstance(entries, list):
        raise TypeError("a group's paths and weights must be lists")
    chunks = []
    for name in paths:
        file = folder / str(name)
        if not file.is_file():
            raise PdfewshotError(f"its weights file {file} is missing")
        chunks.append(file.read_bytes())
    data = b"".join(chunks)
    needed = sum(_byte_count(entry) for entry in entries)
    if len(data) != needed:
        raise PdfewshotError(
            f"{', '.join(map(str, paths))} holds {len(data)} bytes where its tensors need {needed} "
            "(cut short, or not this manifest's binary)"
        )
    tensors, offset = [], 0
    for entry in entries:
        dtype, count = _stored_dtype(entry), _value_count(entry)
        values: np.ndarray = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += count * np.dtype(dtype).itemsize
        quantization = entry.get("quantization")
        if quantization:
            values = quantization["min"] + quantization["scale"] * values.astype(np.float64)
        kept = np.int32 if entry["dtype"] == "int32" and not quantization else np.float32
        tensors.append((str(entry["name"]), values.astype(kept).reshape(entry["shape"])))
    return tensors


def _stored_dtype(entry: dict[str, object]) -> type:
    quantization = entry.get("quantization")
    name = quantization["dtype"] if isinstance(quantization, dict) else entry["dtype"]
    if name not in _STORED:
        raise ValueError(f"tensor {entry['name']}: dtype {name} is not read")
    return _STORED[str(name)]


def _value_count(entry: dict[str, object]) -> int:
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(isinstance(side, int) and side >= 0 for side in shape):
        raise ValueError(f"tensor {entry['name']}: shape {shape} is not a list of sizes")
    return int(np.prod(shape, dtype=np.int64))


def _byte_count(entry: dict[str, object]) -> int:
    return _value_count(entry) * np.dtype(_stored_dtype(entry)).itemsize


# How a TensorFlow tensor's axes become a Paddle parameter's.
LAYOUTS = {
    "conv": (3, 2, 0, 1),  # [h, w, in, out] -> [out, in, h, w]
    "depthwise": (2, 3, 0, 1),  # [h, w, channels, 1] -> [channels, 1, h, w]
    "same": None,  # biases, scales, a dense layer's [in, out] (as paddle.nn.Linear keeps it)
}


@dataclass(frozen=True)
class Slot:
    """One tensor of a manifest and the parameter (key of the layer's state dict) it fills."""

    tensor: str
    parameter: str
    layout: str = "same"


def fill_layer(layer: nn.Layer, tensors: dict[str, np.ndarray], slots: Sequence[Slot], source: Path) -> None:
    """Sets ``layer``'s parameters from ``tensors`` as ``slots`` say; every tensor must fill a slot."""
    expected = layer.state_dict()
    state = {}
    for slot in slots:
        if slot.tensor not in tensors:
            raise PdfewshotError(f"{source}: tensor {slot.tensor} is missing (not this network's weights?)")
        axes = LAYOUTS[slot.layout]
        value = tensors[slot.tensor] if axes is None else tensors[slot.tensor].transpose(axes)
        shape = list(expected[slot.parameter].shape)
        if list(value.shape) != shape:
            raise PdfewshotError(
                f"{source}: tensor {slot.tensor} has shape {list(tensors[slot.tensor].shape)}, which does not fit "
                f"{slot.parameter} {shape}"
            )
        state[slot.parameter] = np.ascontiguousarray(value)
    extra = [name for name in tensors if name not in {slot.tensor for slot in slots}]
    if extra:
        raise PdfewshotError(f"{source}: tensor {extra[0]} is extra (not this network's weights?)")
    unfilled = [key for key in expected if key not in state]
    assert not unfilled, f"slots leave {unfilled[0]} unset"
    layer.set_state_dict(state)

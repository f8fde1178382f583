"""PyTorch weights files written without PyTorch, in both of ``torch.save``'s layouts, for the reader's tests:
stand-in ``torch`` modules give pickle the names a real file holds (``torch._utils._rebuild_tensor_v2``,
``torch.FloatStorage``) only while a file is written."""

import io
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class _Storage:
    def __init__(self, key: str, values: np.ndarray) -> None:
        self.key, self.values = key, values


class _Tensor:
    """A tensor as torch pickles it: rebuilt from its storage, offset, size and stride (in elements)."""

    def __init__(self, storage: _Storage, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0) -> None:
        self.storage, self.size, self.stride, self.offset = storage, size, stride, offset

    def __reduce__(self) -> Any:
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, OrderedDict())


@contextmanager
def _stand_in_torch() -> Iterator[types.ModuleType]:
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called: only named")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, torch: types.ModuleType) -> None:
        super().__init__(file, protocol=2)
        self.torch = torch

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            kind = getattr(self.torch, STORAGE_NAMES[obj.values.dtype])
            return ("storage", kind, obj.key, "cpu", obj.values.size)
        return None


def _tensors(state: dict[str, np.ndarray], transposed: set[str]) -> tuple[OrderedDict[str, _Tensor], list[_Storage]]:
    """Each array in its own storage; those named in ``transposed`` stored transposed, read through strides."""
    tensors: OrderedDict[str, _Tensor] = OrderedDict()
    storages = []
    for index, (name, array) in enumerate(state.items()):
        if name in transposed:
            storage = _Storage(str(index), np.ascontiguousarray(array.T).ravel())
            rows, cols = array.shape
            tensors[name] = _Tensor(storage, (rows, cols), (1, rows))
        else:
            storage = _Storage(str(index), np.ascontiguousarray(array).ravel())
            contiguous = np.array(array, order="C")  # 0-d stays 0-d (ascontiguousarray would make it 1-d)
            strides = tuple(int(step // array.itemsize) for step in contiguous.strides)
            tensors[name] = _Tensor(storage, tuple(array.shape), strides)
        storages.append(storage)
    return tensors, storages


def write_legacy(path: Path, state: dict[str, np.ndarray], transposed: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """``state`` as torch.save's legacy layout: magic, protocol, system, object, storage keys, raw storages."""
    tensors, storages = _tensors(state, set(transposed))
    with _stand_in_torch() as torch, path.open("wb") as handle:
        for value in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(value, handle, protocol=2)
        _Pickler(handle, torch).dump(tensors)
        pickle.dump([storage.key for storage in storages], handle, protocol=2)
        for storage in storages:
            handle.write(struct.pack("<q", storage.values.size))
            handle.write(storage.values.tobytes())
    return path


def write_zip(path: Path, state: dict[str, np.ndarray], transposed: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """``state`` as torch.save's zip layout: archive/data.pkl and archive/data/KEY."""
    tensors, storages = _tensors(state, set(transposed))
    buffer = io.BytesIO()
    with _stand_in_torch() as torch:
        _Pickler(buffer, torch).dump(tensors)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.values.tobytes())
    return path

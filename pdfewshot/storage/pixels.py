"""Images kept in a file and read a few rows at a time, so that memory does not grow with the set.

A decoded set (:mod:`pdfewshot.data.cache`) is one file of uint8 rows ``[h, w, c]``. :class:`ImageRows`
stands for some of those rows, in a given order, and reads them with ``os.pread`` only when they are
indexed: a training batch, or a slice being embedded. Reading rather than mapping the file keeps the
pages read out of the process's resident memory, and ``pread`` takes its offset with every call, so
processes forked by a data loader share the open file safely.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np


class ImageRows:
    """Rows ``index`` of the uint8 file ``path`` of ``count`` rows ``[size, size, stored_channels]``;
    the first ``channels`` channels of each."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        path: Path,
        count: int,
        size: int,
        stored_channels: int,
        channels: int | None = None,
        index: np.ndarray | None = None,
    ) -> None:
        self.path, self.count, self.size, self.stored_channels = path, count, size, stored_channels
        self.channels = channels or stored_channels
        self.index = np.arange(count, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        self._row_bytes = size * size * stored_channels
        self._fd: int | None = None
        self._pid = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.index), self.size, self.size, self.channels)

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray | list[int]) -> "ImageRows":
        """Some of these rows, still unread."""
        return ImageRows(
            self.path, self.count, self.size, self.stored_channels, self.channels, self.index[np.asarray(rows)]
        )

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            row: np.ndarray = self._read(self.index[[int(key)]])[0]
            return row
        return self._read(self.index[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rows = self._read(self.index)
        return rows if dtype is None else rows.astype(dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": 0}  # a file descriptor does not travel

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """The rows (file row numbers) in order; runs of consecutive rows are read at once."""
        rows = np.atleast_1d(rows)
        out = np.empty((len(rows), self.size, self.size, self.stored_channels), dtype=np.uint8)
        flat = out.reshape(len(rows), -1)
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and rows[end] == rows[end - 1] + 1:
                end += 1
            wanted = (end - start) * self._row_bytes
            data = os.pread(self._file(), wanted, int(rows[start]) * self._row_bytes)
            if len(data) != wanted:
                raise OSError(f"{self.path}: cut short (rows {rows[start]}-{rows[end - 1]} of {self.count})")
            flat[start:end] = np.frombuffer(data, dtype=np.uint8).reshape(end - start, -1)
            start = end
        if self.channels == self.stored_channels:
            return out
        return np.ascontiguousarray(out[..., : self.channels])

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


Pixels = np.ndarray | ImageRows  # uint8 [n, h, w, c], in memory or read from a file when indexed


def take_rows(images: Pixels, rows: np.ndarray) -> Pixels:
    """``images[rows]``: in memory for an array, still unread for rows of a file."""
    return images.take(rows) if isinstance(images, ImageRows) else images[rows]

"""Checkpoints: one ``.pdparams`` file holding the weights and what they are, plus a JSON copy.

The metadata (a record of :mod:`pdfewshot.storage.metadata`: kind, backbone, image size, channels,
embedding size, class names, data sources, split, seed, options, package version) is stored inside
the ``.pdparams`` state dict under ``pdfewshot.meta``, so weights and metadata are replaced together
by one atomic rename: a crash or Ctrl-C during a save leaves the previous checkpoint whole. The same
metadata is also written beside it as JSON (``emb_model.json`` for ``emb_model.pdparams``) for people
and tools to read; stages read the copy inside the checkpoint.

Errors name the file; the stage that opened it says which of its settings the file came from
(:func:`pdfewshot.errors.about`).
"""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import paddle
from filelock import FileLock, Timeout
from paddle import nn

from pdfewshot import __version__
from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.atomic import atomic_write, atomic_write_text
from pdfewshot.storage.metadata import PredictorMeta, from_json, to_json

FORMAT = "pdfewshot-checkpoint"
FORMAT_VERSION = 1
META_KEY = "pdfewshot.meta"
LOCK_TIMEOUT = 120.0  # seconds to wait for another process's change of the same checkpoint


class Described(Protocol):
    """A metadata record: a dataclass with the kind of checkpoint it describes."""

    KIND: ClassVar[str]


Meta = TypeVar("Meta", bound=Described)


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def lock_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".lock")


@contextmanager
def checkpoint_lock(path: str | Path) -> Iterator[None]:
    """Holds the lock file beside a checkpoint for a read-modify-write of it, so that two processes
    changing one checkpoint (two ``support add`` commands, a server and a command) take turns and
    neither loses the other's change. The lock file stays beside the checkpoint; it holds nothing."""
    lock = FileLock(str(lock_path(path)))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout:
        raise PdfewshotError(
            f"{path}: another process has been changing it for over {LOCK_TIMEOUT:.0f} s ({lock_path(path)})"
        ) from None
    except OSError as error:
        raise PdfewshotError(f"{path}: cannot lock it ({lock_path(path)}: {error.strerror})") from None
    try:
        yield
    finally:
        lock.release()


def check_checkpoint_path(path: str | Path) -> None:
    """Fails before any work when a checkpoint could not be written at ``path``."""
    path = Path(path)
    if path.suffix != ".pdparams":
        raise PdfewshotError(f"{path}: a checkpoint file must end in .pdparams")
    existing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise PdfewshotError(f"{path}: cannot write there ({existing} is not a folder)")


def save_checkpoint(path: str | Path, layer: nn.Layer, meta: Described, extra: Mapping[str, Any] | None = None) -> None:
    """Saves ``layer``'s weights with ``meta`` (and any ``extra`` entries) to ``path``, then the JSON copy."""
    path = Path(path)
    check_checkpoint_path(path)
    full = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "pdfewshot_version": __version__, "kind": meta.KIND,
        **to_json(meta),
    }  # fmt: skip
    state: dict[str, Any] = dict(layer.state_dict())
    state.update(extra or {})
    state[META_KEY] = json.dumps(full)
    atomic_write(path, lambda temporary: paddle.save(state, temporary))
    atomic_write_text(sidecar_path(path), json.dumps(full, indent=1) + "\n")


MADE_BY = {"embedding": "'pdfewshot pretrain'", "predictor": "'pdfewshot finetune' (or 'pdfewshot support add')"}


def read_checkpoint(path: str | Path, kind: type[Meta]) -> tuple[dict[str, Any], Meta]:
    """The state dict and metadata of checkpoint ``path``, checked to be a pdfewshot checkpoint of ``kind``."""
    path = Path(path)
    if not path.is_file():
        maker = MADE_BY.get(kind.KIND)
        hint = f"; no {kind.KIND} has been made there yet: run {maker} first" if maker and not path.exists() else ""
        raise PdfewshotError(f"{path}: no such checkpoint file{hint}")
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged or foreign file
        raise PdfewshotError(f"{path}: cannot read it as a Paddle checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get(META_KEY), str):
        raise PdfewshotError(f"{path}: not a pdfewshot checkpoint (no metadata inside)")
    try:
        meta = json.loads(state.pop(META_KEY))
    except json.JSONDecodeError:
        raise PdfewshotError(f"{path}: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise PdfewshotError(f"{path}: checkpoint format {version}, this pdfewshot reads {FORMAT_VERSION}")
    if meta.get("kind") != kind.KIND:
        raise PdfewshotError(f"{path}: is a {meta.get('kind')} checkpoint, expected a {kind.KIND} checkpoint")
    return state, from_json(kind, meta, str(path))


def checkpoint_kind(path: str | Path) -> str:
    """What kind of pdfewshot checkpoint ``path`` is (an embedding or a predictor); a file that is neither
    gets :func:`read_checkpoint`'s one-line error for a predictor."""
    path = Path(path)
    try:
        meta = json.loads(paddle.load(str(path))[META_KEY])
        if meta["kind"] in ("embedding", "predictor"):
            return str(meta["kind"])
    except Exception:  # missing, damaged or foreign: read_checkpoint says which
        pass
    read_checkpoint(path, PredictorMeta)
    raise AssertionError("read_checkpoint raises for a file that is not an embedding or a predictor")


def check_meta(meta: object, path: str | Path, **expected: Any) -> None:
    """Raises a one-line error listing each metadata field that differs from what is expected."""
    wrong = [
        f"{key} is {getattr(meta, key, None)!r}, expected {value!r}"
        for key, value in expected.items()
        if getattr(meta, key, None) != value
    ]
    if wrong:
        raise PdfewshotError(f"{path}: checkpoint does not match: {'; '.join(wrong)}")


def load_weights(layer: nn.Layer, state: Mapping[str, Any], path: str | Path) -> None:
    """Loads ``state`` into ``layer``, naming the first missing, unexpected or mis-shaped weight."""
    expected = layer.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [
        f"{k} has shape {list(state[k].shape)}, expected {list(v.shape)}"
        for k, v in expected.items()
        if k in state and list(state[k].shape) != list(v.shape)
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PdfewshotError(f"{path}: weights do not fit the network: {problems[0]}{more}")
    layer.set_state_dict({k: state[k] for k in expected})

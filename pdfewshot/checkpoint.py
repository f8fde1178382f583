"""Checkpoints: one ``.pdparams`` file holding the weights and what they are, plus a JSON copy.

The metadata (kind, backbone, image size, channels, embedding size, class names, data sources,
split, seed, options, package version) is stored inside the ``.pdparams`` state dict under
``pdfewshot.meta``, so weights and metadata are replaced together by one atomic rename: a crash or
Ctrl-C during a save leaves the previous checkpoint whole. The same metadata is also written beside
it as JSON (``emb_model.json`` for ``emb_model.pdparams``) for people and tools to read; stages read
the copy inside the checkpoint.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paddle
from paddle import nn

from pdfewshot import __version__
from pdfewshot.atomic import atomic_write, atomic_write_text
from pdfewshot.errors import PdfewshotError

FORMAT = "pdfewshot-checkpoint"
FORMAT_VERSION = 1
META_KEY = "pdfewshot.meta"


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def check_checkpoint_path(path: str | Path, option: str = "--out") -> None:
    """Fails before any work when a checkpoint could not be written at ``path``."""
    path = Path(path)
    if path.suffix != ".pdparams":
        raise PdfewshotError(f"{option} {path}: a checkpoint file must end in .pdparams")
    existing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise PdfewshotError(f"{option} {path}: cannot write there ({existing} is not a folder)")


def save_checkpoint(
    path: str | Path,
    layer: nn.Layer,
    meta: Mapping[str, Any],
    option: str = "--out",
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Saves ``layer``'s weights with ``meta`` (and any ``extra`` entries) to ``path``, then the JSON copy."""
    path = Path(path)
    check_checkpoint_path(path, option)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "pdfewshot_version": __version__, **meta}
    state: dict[str, Any] = dict(layer.state_dict())
    state.update(extra or {})
    state[META_KEY] = json.dumps(full)
    atomic_write(path, lambda temporary: paddle.save(state, temporary), option)
    atomic_write_text(sidecar_path(path), json.dumps(full, indent=1) + "\n", option)


def read_checkpoint(path: str | Path, kind: str, option: str = "--model") -> tuple[dict[str, Any], dict[str, Any]]:
    """The state dict and metadata of checkpoint ``path``, checked to be a pdfewshot ``kind`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise PdfewshotError(f"{option} {path}: no such checkpoint file")
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged or foreign file
        raise PdfewshotError(
            f"{option} {path}: cannot read it as a Paddle checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get(META_KEY), str):
        raise PdfewshotError(f"{option} {path}: not a pdfewshot checkpoint (no metadata inside)")
    meta = json.loads(state.pop(META_KEY))
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise PdfewshotError(
            f"{option} {path}: checkpoint format {meta.get('format_version')}, this pdfewshot reads {FORMAT_VERSION}"
        )
    if meta.get("kind") != kind:
        raise PdfewshotError(f"{option} {path}: is a {meta.get('kind')} checkpoint, expected a {kind} checkpoint")
    return state, meta


def check_meta(meta: Mapping[str, Any], path: str | Path, option: str = "--model", **expected: Any) -> None:
    """Raises a one-line error listing each metadata field that differs from what is expected."""
    wrong = [
        f"{key} is {meta.get(key)!r}, expected {value!r}" for key, value in expected.items() if meta.get(key) != value
    ]
    if wrong:
        raise PdfewshotError(f"{option} {path}: checkpoint does not match: {'; '.join(wrong)}")


def load_weights(layer: nn.Layer, state: Mapping[str, Any], path: str | Path, option: str = "--model") -> None:
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
        raise PdfewshotError(f"{option} {path}: weights do not fit the network: {problems[0]}{more}")
    layer.set_state_dict({k: state[k] for k in expected})

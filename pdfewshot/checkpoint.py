"""Checkpoints: a ``.pdparams`` state dict plus a JSON sidecar that says what it is.

The sidecar (``emb_model.json`` beside ``emb_model.pdparams``) carries what a later stage needs to
use the weights (kind, backbone, image size, channels, embedding size, class names, data sources,
split, seed, package version) and the SHA-256 of the weights file, so a sidecar left over from
another run is caught. Both files are written atomically.
"""

import hashlib
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


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, layer: nn.Layer, meta: Mapping[str, Any], option: str = "--out") -> None:
    """Saves ``layer``'s weights to ``path`` and ``meta`` (plus format fields) to its sidecar."""
    path = Path(path)
    if path.suffix != ".pdparams":
        raise PdfewshotError(f"{option} {path}: a checkpoint file must end in .pdparams")
    digest: list[str] = []

    def write_weights(temporary: str) -> None:
        paddle.save(layer.state_dict(), temporary)
        digest.append(_sha256(temporary))

    atomic_write(path, write_weights, option)
    sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION, "pdfewshot_version": __version__}
    sidecar.update(meta)
    sidecar["weights_sha256"] = digest[0]
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=1), option)


def read_sidecar(path: str | Path, kind: str, option: str = "--model") -> dict[str, Any]:
    """The sidecar of checkpoint ``path``, checked to be of ``kind`` and to belong to those weights."""
    path = Path(path)
    if not path.is_file():
        raise PdfewshotError(f"{option} {path}: no such checkpoint file")
    side = sidecar_path(path)
    if not side.is_file():
        raise PdfewshotError(f"{option} {path}: its sidecar {side.name} is missing")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PdfewshotError(f"{option} {path}: sidecar {side.name} is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PdfewshotError(f"{option} {path}: sidecar {side.name} is not a pdfewshot checkpoint sidecar")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PdfewshotError(
            f"{option} {path}: checkpoint format {meta.get('format_version')}, this pdfewshot reads {FORMAT_VERSION}"
        )
    if meta.get("kind") != kind:
        raise PdfewshotError(f"{option} {path}: is a {meta.get('kind')} checkpoint, expected a {kind} checkpoint")
    if meta.get("weights_sha256") != _sha256(path):
        raise PdfewshotError(f"{option} {path}: weights do not match their sidecar {side.name} (overwritten?)")
    return meta


def check_meta(meta: Mapping[str, Any], path: str | Path, option: str = "--model", **expected: Any) -> None:
    """Raises a one-line error listing each sidecar field that differs from what is expected."""
    wrong = [
        f"{key} is {meta.get(key)!r}, expected {value!r}" for key, value in expected.items() if meta.get(key) != value
    ]
    if wrong:
        raise PdfewshotError(f"{option} {path}: checkpoint does not match: {'; '.join(wrong)}")


def load_weights(layer: nn.Layer, path: str | Path, option: str = "--model") -> None:
    """Loads ``path`` into ``layer``, naming the first missing, unexpected or mis-shaped weight."""
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged file
        raise PdfewshotError(f"{option} {path}: cannot read weights ({type(error).__name__})") from None
    expected = layer.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {list(state[k].shape)}, expected {list(v.shape)}"
        for k, v in expected.items()
        if k in state and list(state[k].shape) != list(v.shape)
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PdfewshotError(f"{option} {path}: weights do not fit the network: {problems[0]}{more}")
    layer.set_state_dict(state)

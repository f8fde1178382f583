"""Training state that survives an interruption: weights, optimiser moments and position.

Saved with ``pdfewshot pretrain --save-every N`` beside the output (``emb_model.resume.pdparams``)
and read back by ``--resume``. Together with samplers that are seeded per epoch and augmentation
seeded per step, this makes a resumed run end with the same weights as an uninterrupted one.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paddle
from paddle import nn

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.checkpoint import load_weights, read_checkpoint, save_checkpoint
from pdfewshot.storage.metadata import ResumeMeta

OPTIMIZER_PREFIX = "optimizer/"
EXTRA_PREFIX = "extra/"


@dataclass
class Position:
    """Where training stands: phase index, epoch within it, steps done in that epoch, losses so far."""

    phase: int = 0
    epoch: int = 0
    step: int = 0
    losses: list[float] = field(default_factory=list)


def resume_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + ".resume.pdparams")


def _by_structured_name(layers: dict[str, nn.Layer]) -> dict[str, str]:
    """Paddle's generated parameter name -> a stable name (``net/backbone.conv1.weight``)."""
    return {p.name: f"{owner}/{name}" for owner, layer in layers.items() for name, p in layer.named_parameters()}


def optimizer_state(optimizer: paddle.optimizer.Optimizer, layers: dict[str, nn.Layer]) -> dict[str, Any]:
    """The optimiser's accumulators keyed by stable names, since Paddle keys them by generated
    parameter names (``linear_3.w_0_moment1_0``) that depend on how many layers the process made."""
    names = _by_structured_name(layers)
    state = {}
    for key, value in optimizer.state_dict().items():
        owner = max((n for n in names if key.startswith(n + "_")), key=len, default=None)
        if owner is None:
            raise RuntimeError(f"optimizer state {key} matches no parameter")
        state[OPTIMIZER_PREFIX + names[owner] + "/" + key[len(owner) + 1 :]] = value
    return state


def restore_optimizer(
    optimizer: paddle.optimizer.Optimizer, layers: dict[str, nn.Layer], saved: dict[str, Any]
) -> None:
    """Puts back what :func:`optimizer_state` saved, under this process's parameter names."""
    generated = {stable: generated for generated, stable in _by_structured_name(layers).items()}
    state = {}
    for key, value in saved.items():
        if key.startswith(OPTIMIZER_PREFIX):
            stable, suffix = key[len(OPTIMIZER_PREFIX) :].rsplit("/", 1)
            state[f"{generated[stable]}_{suffix}"] = value
    optimizer.set_state_dict(state)


def save_resume(
    path: Path,
    net: nn.Layer,
    extra: dict[str, nn.Layer],
    optimizer: paddle.optimizer.Optimizer,
    position: Position,
    options: dict[str, Any],
    training: dict[str, Any] | None = None,
    entries: dict[str, Any] | None = None,
) -> None:
    """Writes the training state atomically (a crash mid-save keeps the previous one); ``training`` is
    the loop's own record and ``entries`` further tensors to keep (the best weights so far)."""
    layers = {"net": net, **extra}
    saved = optimizer_state(optimizer, layers)
    for owner, layer in extra.items():
        saved.update({f"{EXTRA_PREFIX}{owner}/{k}": v for k, v in layer.state_dict().items()})
    saved.update(entries or {})
    meta = ResumeMeta(position.phase, position.epoch, position.step, position.losses, options, training or {})
    save_checkpoint(path, net, meta, extra=saved)


def read_resume(path: Path, net: nn.Layer, options: dict[str, Any]) -> tuple[Position, dict[str, Any], dict[str, Any]]:
    """Loads the weights into ``net``; returns the position, the saved entries besides the network's
    weights (optimiser, extra layers, best weights) and the loop's record."""
    if not path.is_file():
        raise PdfewshotError(f": no saved training state at {path} (was --save-every given?)", "resume")
    state, meta = read_checkpoint(path, ResumeMeta)
    changed = sorted(k for k in options if meta.options.get(k) != options[k])
    if changed:
        key = changed[0]
        raise PdfewshotError(f"{path}: saved with {key} = {meta.options.get(key)!r}, this run has {options[key]!r}")
    expected = set(net.state_dict())
    saved = {k: state.pop(k) for k in list(state) if k not in expected}
    load_weights(net, state, path)
    return Position(meta.phase, meta.epoch, meta.step, list(meta.losses)), saved, meta.training


def restore_extra(layer: nn.Layer, owner: str, saved: dict[str, Any]) -> None:
    prefix = f"{EXTRA_PREFIX}{owner}/"
    layer.set_state_dict({k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)})

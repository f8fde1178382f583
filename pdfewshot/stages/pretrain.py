"""Stage 1: learn an embedding on the base classes from anchor/positive/negative triples."""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import paddle

from pdfewshot.checkpoint import save_checkpoint
from pdfewshot.data.glyphs import BUILTIN_SOURCE
from pdfewshot.data.sampling import TripleBatchSampler, TripleDataset
from pdfewshot.data.sources import load_sources, resolve_source
from pdfewshot.data.splits import split_classes, write_split
from pdfewshot.errors import PdfewshotError
from pdfewshot.losses import cosine_mse_triples
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.report import err_console, loss_progress
from pdfewshot.runtime import set_paddle_threads

DEFAULT_EMBEDDING = Path("models/emb_model.pdparams")


@dataclass
class PretrainConfig:
    """Options of ``pdfewshot pretrain`` (the CLI documents each)."""

    data: list[str] = field(default_factory=lambda: [BUILTIN_SOURCE])
    out: Path = DEFAULT_EMBEDDING
    backbone: str = "resnet18"
    embedding_dim: int = 128
    image_size: int = 28
    epochs: int = 2
    steps_per_epoch: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    novel_fraction: float = 0.2
    rotations: bool = False
    pretrained: Path | None = None
    freeze_backbone: bool = False
    show_progress: bool = True


@dataclass
class PretrainResult:
    checkpoint: Path
    losses: list[float]
    seconds: float
    images_per_second: float
    base_classes: int
    novel_classes: int


def split_path(checkpoint: Path) -> Path:
    """Where the base/novel split is written beside a checkpoint."""
    return checkpoint.with_name(checkpoint.stem + ".split.json")


def load_trunk_weights(net: EmbeddingNet, path: Path) -> None:
    """Starts the backbone from saved weights: a pdfewshot embedding checkpoint or a bare ResNet18.

    A bare ``paddle.vision`` ResNet18 state dict (e.g. ImageNet weights) has its classifier dropped;
    its three-channel first convolution is summed over colour for a greyscale network.
    """
    if not path.is_file():
        raise PdfewshotError(f"--pretrained {path}: no such file")
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged file
        raise PdfewshotError(f"--pretrained {path}: cannot read weights ({type(error).__name__})") from None
    if any(key.startswith("backbone.") for key in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    else:
        state = {f"net.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    expected = net.backbone.state_dict()
    conv = "net.conv1.weight"
    if conv in state and conv in expected and state[conv].shape[1] == 3 and expected[conv].shape[1] == 1:
        state[conv] = state[conv].sum(axis=1, keepdim=True)
    mismatched = [k for k in expected if k not in state or list(state[k].shape) != list(expected[k].shape)]
    if mismatched:
        raise PdfewshotError(
            f"--pretrained {path}: does not fit the {type(net.backbone).__name__} backbone ({mismatched[0]})"
        )
    net.backbone.set_state_dict(state)


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Trains the embedding network with the cosine-MSE triple loss and writes its checkpoint."""
    set_paddle_threads()
    for name in ("epochs", "batch_size", "embedding_dim"):
        if getattr(config, name) < 1:
            raise PdfewshotError(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    sources = [resolve_source(s) for s in config.data]
    imageset, load_report = load_sources(sources, config.image_size)
    if load_report.skipped:
        path, reason = load_report.skipped[0]
        err_console.print(f"skipped {len(load_report.skipped)} images; first: {path}: {reason}", markup=False)
    split = split_classes(imageset.class_names, config.novel_fraction, config.seed)
    base = imageset.subset_classes(split.base)
    if config.rotations:
        base = base.with_rotations()

    paddle.seed(config.seed)
    net = EmbeddingNet(config.backbone, imageset.channels, config.embedding_dim)
    if config.pretrained is not None:
        load_trunk_weights(net, config.pretrained)
    if config.freeze_backbone:
        net.freeze_backbone()
    trainable = [p for p in net.parameters() if not p.stop_gradient]
    optimizer = paddle.optimizer.Adam(learning_rate=config.lr, parameters=trainable)

    steps = config.steps_per_epoch or max(1, len(base) // config.batch_size)
    sampler = TripleBatchSampler(base.labels, config.batch_size, steps, config.seed)
    loader = paddle.io.DataLoader(TripleDataset(base.images), batch_sampler=sampler, num_workers=0)

    net.train()
    if config.freeze_backbone:
        net.backbone.eval()
    losses: list[float] = []
    started = time.perf_counter()
    with loss_progress("pretrain", config.epochs * steps, config.show_progress) as progress:
        for epoch in range(config.epochs):
            sampler.set_epoch(epoch)
            for anchors, positives, negatives in loader:
                batch = to_input(paddle.concat([anchors, positives, negatives]))
                embeddings = net(batch)
                a, p, n = paddle.split(embeddings, 3)
                loss = cosine_mse_triples(a, p, n)
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                losses.append(loss.item())
                progress.update(losses[-1])
    seconds = time.perf_counter() - started

    config_record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    config_record.pop("show_progress")
    meta = {
        "kind": "embedding",
        "backbone": config.backbone,
        "image_size": config.image_size,
        "channels": imageset.channels,
        "embedding_dim": config.embedding_dim,
        "class_names": list(base.class_names),
        "data": sources,
        "split": split.to_json(),
        "seed": config.seed,
        "loss": "cosine-mse",
        "config": config_record,
        "training": {"steps": len(losses), "final_loss": float(np.mean(losses[-10:])), "seconds": round(seconds, 1)},
    }
    save_checkpoint(config.out, net, meta)
    write_split(split, str(split_path(config.out)))
    return PretrainResult(
        checkpoint=config.out,
        losses=losses,
        seconds=seconds,
        images_per_second=3 * config.batch_size * len(losses) / seconds,
        base_classes=len(split.base),
        novel_classes=len(split.novel),
    )

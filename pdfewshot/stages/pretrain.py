"""Stage 1: learn an embedding on the base classes from anchor/positive/negative triples."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.checkpoint import META_KEY, check_meta, read_checkpoint, save_checkpoint
from pdfewshot.data.augment import AUGMENTATIONS
from pdfewshot.data.glyphs import BUILTIN_SOURCE
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sampling import LabelledImages, ShuffledBatchSampler, TripleBatchSampler, TripleDataset
from pdfewshot.data.sources import load_sources, resolve_source
from pdfewshot.data.splits import split_classes, write_split
from pdfewshot.errors import PdfewshotError
from pdfewshot.losses import cosine_mse_triples
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.report import LossProgress, err_console, loss_progress
from pdfewshot.runtime import set_paddle_threads

DEFAULT_EMBEDDING = Path("models/emb_model.pdparams")
LOSSES = ("cosine-mse", "ce")


@dataclass
class PretrainConfig:
    """Options of ``pdfewshot pretrain`` (the CLI documents each)."""

    data: list[str] = field(default_factory=lambda: [BUILTIN_SOURCE])
    out: Path = DEFAULT_EMBEDDING
    backbone: str = "resnet18"
    embedding_dim: int = 128
    image_size: int = 28
    epochs: int = 2
    loss: str = "cosine-mse"
    warmup_epochs: int = 0
    steps_per_epoch: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    novel_fraction: float = 0.2
    rotations: bool = False
    augment: str = "none"
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


def load_trunk_weights(net: EmbeddingNet, path: Path, backbone: str, channels: int) -> None:
    """Starts the backbone from saved weights: a pdfewshot embedding checkpoint or a bare ResNet18.

    A pdfewshot checkpoint must have been made with the same backbone and channels. A bare
    ``paddle.vision`` ResNet18 state dict (e.g. ImageNet weights) has its classifier dropped; its
    three-channel first convolution is summed over colour for a greyscale network.
    """
    option = "--pretrained"
    if not path.is_file():
        raise PdfewshotError(f"{option} {path}: no such file")
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged file
        raise PdfewshotError(f"{option} {path}: cannot read weights ({type(error).__name__})") from None
    if isinstance(state, dict) and META_KEY in state:
        state, meta = read_checkpoint(path, "embedding", option)
        check_meta(meta, path, option, backbone=backbone, channels=channels)
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    else:
        state = {f"net.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    expected = net.backbone.state_dict()
    conv = "net.conv1.weight"
    if conv in state and conv in expected and state[conv].shape[1] == 3 and expected[conv].shape[1] == 1:
        state[conv] = state[conv].sum(axis=1, keepdim=True)
    mismatched = [k for k in expected if k not in state or list(state[k].shape) != list(expected[k].shape)]
    if mismatched:
        raise PdfewshotError(f"{option} {path}: does not fit the {backbone} backbone ({mismatched[0]})")
    net.backbone.set_state_dict(state)


def _optimise(
    net: EmbeddingNet,
    extra: list[paddle.Tensor],
    loader: paddle.io.DataLoader,
    sampler: TripleBatchSampler | ShuffledBatchSampler,
    epochs: int,
    compute_loss: Callable[[tuple[paddle.Tensor, ...]], paddle.Tensor],
    lr: float,
    frozen_backbone: bool,
    progress: LossProgress,
) -> list[float]:
    """Adam over the trainable weights (plus ``extra``) for ``epochs`` passes of ``loader``."""
    trainable = [p for p in net.parameters() if not p.stop_gradient] + extra
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=trainable)
    net.train()
    if frozen_backbone:
        net.backbone.eval()
    losses = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            loss = compute_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(loss.item())
            progress.update(losses[-1])
    return losses


def _train_triples(
    net: EmbeddingNet, base: ImageSet, config: PretrainConfig, epochs: int, steps: int, progress: LossProgress
) -> list[float]:
    """The cosine-MSE loss on (anchor, positive, negative) triples."""
    sampler = TripleBatchSampler(base.labels, config.batch_size, steps, config.seed)
    loader = paddle.io.DataLoader(
        TripleDataset(base.images, config.augment, config.seed), batch_sampler=sampler, num_workers=0
    )

    def loss(batch: tuple[paddle.Tensor, ...]) -> paddle.Tensor:
        anchors, positives, negatives = paddle.split(net(to_input(paddle.concat(batch))), 3)
        return cosine_mse_triples(anchors, positives, negatives)

    return _optimise(net, [], loader, sampler, epochs, loss, config.lr, config.freeze_backbone, progress)


def _train_softmax(
    net: EmbeddingNet, base: ImageSet, config: PretrainConfig, epochs: int, steps: int, progress: LossProgress
) -> list[float]:
    """Softmax cross-entropy over the base classes, through a linear layer on the embedding.

    The layer is dropped afterwards: only the embedding it shaped is kept. A step takes
    ``3 * batch_size`` images, as many as a batch of triples.
    """
    head = paddle.nn.Linear(config.embedding_dim, base.num_classes)
    sampler = ShuffledBatchSampler(len(base), 3 * config.batch_size, steps, config.seed)
    loader = paddle.io.DataLoader(
        LabelledImages(base.images, base.labels, config.augment, config.seed), batch_sampler=sampler, num_workers=0
    )

    def loss(batch: tuple[paddle.Tensor, ...]) -> paddle.Tensor:
        images, labels = batch
        return F.cross_entropy(head(net(to_input(images))), labels)

    extra = list(head.parameters())
    return _optimise(net, extra, loader, sampler, epochs, loss, config.lr, config.freeze_backbone, progress)


def steps_per_epoch(config: PretrainConfig, base_images: int, softmax: bool) -> int:
    """An epoch is one pass over the base images: as anchors (triples) or as softmax inputs."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    per_step = 3 * config.batch_size if softmax else config.batch_size
    return max(1, -(-base_images // per_step))


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Trains the embedding network (optional softmax warm-up, then the chosen loss); writes its checkpoint."""
    set_paddle_threads()
    if config.loss not in LOSSES:
        raise PdfewshotError(f"--loss {config.loss}: unknown, choose from {', '.join(LOSSES)}")
    if config.augment not in AUGMENTATIONS:
        raise PdfewshotError(f"--augment {config.augment}: unknown, choose from {', '.join(AUGMENTATIONS)}")
    if config.warmup_epochs < 0:
        raise PdfewshotError(f"--warmup-epochs {config.warmup_epochs}: must not be negative")
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
    net = EmbeddingNet(config.backbone, imageset.channels, config.embedding_dim, config.image_size)
    if config.pretrained is not None:
        load_trunk_weights(net, config.pretrained, config.backbone, imageset.channels)
    if config.freeze_backbone:
        net.freeze_backbone()
    losses: list[float] = []
    started = time.perf_counter()
    warmup = config.epochs if config.loss == "ce" else config.warmup_epochs
    main = 0 if config.loss == "ce" else config.epochs
    softmax_steps = steps_per_epoch(config, len(base), softmax=True)
    triple_steps = steps_per_epoch(config, len(base), softmax=False)
    with loss_progress("pretrain", warmup * softmax_steps + main * triple_steps, config.show_progress) as progress:
        if warmup:
            losses += _train_softmax(net, base, config, warmup, softmax_steps, progress)
        if main:
            losses += _train_triples(net, base, config, main, triple_steps, progress)
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
        "loss": config.loss,
        "warmup_epochs": config.warmup_epochs if config.loss != "ce" else 0,
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

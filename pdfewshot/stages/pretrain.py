"""Stage 1: learn an embedding on the base classes: from triples (cosine-MSE, triplet margin), pairs
(contrastive, Koch's pair BCE) or softmax over the classes, optionally after a softmax warm-up."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.checkpoint import META_KEY, check_checkpoint_path, check_meta, read_checkpoint, save_checkpoint
from pdfewshot.data.augment import AUGMENTATIONS, augment_batch
from pdfewshot.data.glyphs import BUILTIN_SOURCE
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sampling import (
    LabelledImages,
    PairBatchSampler,
    PairDataset,
    ShuffledBatchSampler,
    TripleBatchSampler,
    TripleDataset,
)
from pdfewshot.data.sources import load_sources, resolve_source
from pdfewshot.data.splits import split_classes, write_split
from pdfewshot.errors import PdfewshotError
from pdfewshot.losses import contrastive, cosine_mse_triples, pair_bce, triplet_margin
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.parallel import SINGLE_PROCESS, Ranks, data_parallel, launched_ranks, start, wait_for_all
from pdfewshot.plots import loss_curve, plots_available
from pdfewshot.report import LossProgress, loss_progress
from pdfewshot.resume import Position, read_resume, restore_extra, restore_optimizer, resume_path, save_resume
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.schedule import SCHEDULES, scheduled_lr
from pdfewshot.stages.common import warn_skipped
from pdfewshot.visualdl_log import ScalarLog

DEFAULT_EMBEDDING = Path("models/emb_model.pdparams")
LOSSES = ("cosine-mse", "triplet", "contrastive", "pair-bce", "ce")
PAIR_LOSSES = ("contrastive", "pair-bce")


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
    margin: float | None = None  # triplet (default 0.2) and contrastive (default 1.0)
    warmup_epochs: int = 2  # measured: 75-way 2-shot 0.7326 -> 0.7948 on the built-in set (README, Results)
    steps_per_epoch: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"
    seed: int = 0
    novel_fraction: float = 0.2
    rotations: bool = False
    augment: str = "none"
    pretrained: Path | None = None
    freeze_backbone: bool = False
    save_every: int | None = None
    resume: bool = False
    strict: bool = False
    visualdl: Path | None = None
    show_progress: bool = True


@dataclass
class PretrainResult:
    checkpoint: Path
    losses: list[float]
    seconds: float
    images_per_second: float
    base_classes: int
    novel_classes: int
    writer: bool = True  # False in the data-parallel processes other than rank 0, which write nothing


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


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one loss: ``softmax`` (warm-up or --loss ce), ``triples`` or ``pairs``."""

    kind: str
    epochs: int
    steps: int  # per epoch


def plan_phases(config: PretrainConfig, base_images: int, ranks: Ranks = SINGLE_PROCESS) -> list[Phase]:
    """The softmax warm-up (if any), then the main loss. An epoch is one pass over the base images
    (as anchors for triples, as inputs for softmax batches of ``3 * batch_size``) unless
    ``steps_per_epoch`` says otherwise; data-parallel processes each take their share of its steps."""

    def steps(per_step: int) -> int:
        return ranks.share(config.steps_per_epoch or max(1, -(-base_images // per_step)))

    if config.loss == "ce":
        return [Phase("softmax", config.epochs, steps(3 * config.batch_size))]
    phases = [Phase("softmax", config.warmup_epochs, steps(3 * config.batch_size))] if config.warmup_epochs else []
    kind = "pairs" if config.loss in PAIR_LOSSES else "triples"
    return [*phases, Phase(kind, config.epochs, steps(config.batch_size))]


def config_record(config: PretrainConfig) -> dict[str, object]:
    """The options as JSON-ready values (paths as strings), as stored in the checkpoint."""
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record.pop("show_progress")
    return record


def resumable_options(config: PretrainConfig) -> dict[str, object]:
    """Options a resumed run must share with the run it continues."""
    record = config_record(config)
    for key in ("resume", "save_every", "strict", "visualdl"):
        record.pop(key)
    return record


class Objective(paddle.nn.Layer):  # type: ignore[misc]
    """The network, the phases' extra layers and the current phase's loss as one layer, so that ``paddle.DataParallel``
    sees every trained parameter and hooks the backward pass of the whole step."""

    def __init__(self, net: EmbeddingNet, extra: dict[str, paddle.nn.Layer]) -> None:
        super().__init__()
        self.net = net
        self.extra = paddle.nn.LayerDict(extra)
        self.compute_loss: Callable[..., paddle.Tensor] | None = None  # the current phase's

    def forward(self, batch: list[paddle.Tensor], rng: np.random.Generator) -> paddle.Tensor:
        assert self.compute_loss is not None, "set the phase's loss first"
        return self.compute_loss(batch, rng)


def _phase_loop(
    phase: Phase, index: int, net: EmbeddingNet, base: ImageSet, config: PretrainConfig, ranks: Ranks
) -> tuple[
    paddle.io.DataLoader,
    TripleBatchSampler | ShuffledBatchSampler,
    dict[str, paddle.nn.Layer],
    Callable[..., paddle.Tensor],
]:
    """The loader, sampler, extra layers and loss function of one phase."""

    def inputs(images: paddle.Tensor, rng: np.random.Generator) -> paddle.Tensor:
        # Distortions are drawn from a generator seeded by the step, so a resumed run redraws them.
        if config.augment == "none":
            return to_input(images)
        return to_input(augment_batch(images.numpy(), config.augment, rng))

    if phase.kind == "softmax":
        # A linear softmax layer over the base classes; dropped after training, only the embedding it
        # shaped is kept.
        head = paddle.nn.Linear(config.embedding_dim, base.num_classes)
        sampler: TripleBatchSampler | ShuffledBatchSampler = ShuffledBatchSampler(
            len(base), 3 * config.batch_size, phase.steps, config.seed + index, ranks.rank, ranks.world_size
        )
        dataset: paddle.io.Dataset = LabelledImages(base.images, base.labels)

        def softmax_loss(batch: list[paddle.Tensor], rng: np.random.Generator) -> paddle.Tensor:
            images, labels = batch
            return F.cross_entropy(head(net(inputs(images, rng))), labels)

        return paddle.io.DataLoader(dataset, batch_sampler=sampler), sampler, {"softmax_head": head}, softmax_loss

    if phase.kind == "pairs":
        sampler = PairBatchSampler(base.labels, config.batch_size, phase.steps, config.seed + index, ranks.rank)
        margin = 1.0 if config.margin is None else config.margin

        def pair_loss(batch: list[paddle.Tensor], rng: np.random.Generator) -> paddle.Tensor:
            firsts, seconds, same = batch
            first, second = paddle.split(net(inputs(paddle.concat([firsts, seconds]), rng)), 2)
            if config.loss == "pair-bce" and net.pair_head is not None:
                return pair_bce(net.pair_head(first, second), same)
            return contrastive(first, second, same, margin)

        return paddle.io.DataLoader(PairDataset(base.images), batch_sampler=sampler), sampler, {}, pair_loss

    sampler = TripleBatchSampler(base.labels, config.batch_size, phase.steps, config.seed + index, ranks.rank)
    margin = 0.2 if config.margin is None else config.margin

    def triple_loss(batch: list[paddle.Tensor], rng: np.random.Generator) -> paddle.Tensor:
        anchors, positives, negatives = paddle.split(net(inputs(paddle.concat(batch), rng)), 3)
        if config.loss == "triplet":
            return triplet_margin(anchors, positives, negatives, margin)
        return cosine_mse_triples(anchors, positives, negatives)

    return paddle.io.DataLoader(TripleDataset(base.images), batch_sampler=sampler), sampler, {}, triple_loss


def train(
    net: EmbeddingNet,
    base: ImageSet,
    config: PretrainConfig,
    phases: list[Phase],
    position: Position,
    saved: dict[str, object],
    progress: LossProgress,
    log: ScalarLog,
    ranks: Ranks = SINGLE_PROCESS,
) -> int:
    """Runs the phases from ``position`` on; returns the number of steps taken in this call."""
    taken = 0
    loops = {
        i: _phase_loop(phase, i, net, base, config, ranks) for i, phase in enumerate(phases) if i >= position.phase
    }
    # One objective over the network and every phase's extra layers, wrapped once: wrapping the same
    # parameters again for a later phase makes Paddle's gradient reducer crash (Paddle 3.3).
    objective = Objective(net, {name: layer for loop in loops.values() for name, layer in loop[2].items()})
    trainer = data_parallel(objective, ranks)
    for index, phase in enumerate(phases):
        if index < position.phase:
            continue
        loader, sampler, extra, objective.compute_loss = loops[index]
        parameters = [p for p in net.parameters() if not p.stop_gradient]
        parameters += [p for layer in extra.values() for p in layer.parameters()]
        optimizer = paddle.optimizer.Adam(learning_rate=config.lr, parameters=parameters)
        if saved and index == position.phase:
            restore_optimizer(optimizer, {"net": net, **extra}, saved)
            for owner, layer in extra.items():
                restore_extra(layer, owner, saved)
        net.train()
        if config.freeze_backbone:
            net.backbone.eval()
        first_epoch = position.epoch if index == position.phase else 0
        phase_steps = phase.epochs * phase.steps  # each phase anneals over its own length
        for epoch in range(first_epoch, phase.epochs):
            first_step = position.step if (index == position.phase and epoch == position.epoch) else 0
            sampler.set_epoch(epoch, first_step)
            for step, batch in enumerate(loader, first_step):
                optimizer.set_lr(scheduled_lr(config.lr, config.lr_schedule, epoch * phase.steps + step, phase_steps))
                stream = [config.seed, index, epoch, step, 3] + ([ranks.rank] if ranks.rank else [])
                loss = trainer(batch, np.random.default_rng(stream))
                loss.backward()
                # Adam names its accumulators <param>_moment1_<n> with a process-wide counter n; a
                # fresh name scope makes n = 0 in every run, so a saved state can be restored by name.
                with paddle.utils.unique_name.guard():
                    optimizer.step()
                optimizer.clear_grad()
                position.losses.append(loss.item())
                log.add(f"pretrain/{phase.kind}_loss", position.losses[-1], len(position.losses))
                taken += 1
                if ranks.writer and config.save_every and len(position.losses) % config.save_every == 0:
                    here = Position(index, epoch, step + 1, position.losses)
                    save_resume(resume_path(config.out), net, extra, optimizer, here, resumable_options(config))
                progress.update(position.losses[-1])
    return taken


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Trains the embedding network (optional softmax warm-up, then the chosen loss); writes its checkpoint."""
    set_paddle_threads()
    if config.loss not in LOSSES:
        raise PdfewshotError(f"--loss {config.loss}: unknown, choose from {', '.join(LOSSES)}")
    if config.augment not in AUGMENTATIONS:
        raise PdfewshotError(f"--augment {config.augment}: unknown, choose from {', '.join(AUGMENTATIONS)}")
    if config.lr_schedule not in SCHEDULES:
        raise PdfewshotError(f"--lr-schedule {config.lr_schedule}: unknown, choose from {', '.join(SCHEDULES)}")
    if config.save_every is not None and config.save_every < 1:
        raise PdfewshotError(f"--save-every {config.save_every}: must be at least 1")
    if config.warmup_epochs < 0:
        raise PdfewshotError(f"--warmup-epochs {config.warmup_epochs}: must not be negative")
    for name in ("epochs", "batch_size", "embedding_dim"):
        if getattr(config, name) < 1:
            raise PdfewshotError(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    check_checkpoint_path(config.out)
    ranks = launched_ranks()
    start(ranks)
    sources = [resolve_source(s) for s in config.data]
    imageset, load_report = load_sources(sources, config.image_size, strict=config.strict)
    warn_skipped(load_report)
    split = split_classes(imageset.class_names, config.novel_fraction, config.seed)
    base = imageset.subset_classes(split.base)
    if config.rotations:
        base = base.with_rotations()

    paddle.seed(config.seed)
    net = EmbeddingNet(
        config.backbone, imageset.channels, config.embedding_dim, config.image_size, pair_head=config.loss == "pair-bce"
    )
    if config.pretrained is not None:
        load_trunk_weights(net, config.pretrained, config.backbone, imageset.channels)
    if config.freeze_backbone:
        net.freeze_backbone()
    phases = plan_phases(config, len(base), ranks)
    position, saved = Position(), dict[str, object]()
    if config.resume:
        position, saved = read_resume(resume_path(config.out), net, resumable_options(config))
    total = sum(phase.epochs * phase.steps for phase in phases)
    started = time.perf_counter()
    shown = config.show_progress and ranks.writer
    with (
        loss_progress("pretrain", total, shown) as progress,
        ScalarLog(config.visualdl if ranks.writer else None) as log,
    ):
        progress.update_completed(len(position.losses))
        taken = train(net, base, config, phases, position, saved, progress, log, ranks)
    seconds = time.perf_counter() - started
    losses = position.losses

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
        "config": config_record(config),
        "training": {
            "steps": len(losses),
            "processes": ranks.world_size,
            "final_loss": float(np.mean(losses[-10:])),
            "seconds": round(seconds, 1),
        },
    }
    if ranks.writer:
        save_checkpoint(config.out, net, meta)
        write_split(split, str(split_path(config.out)))
        if plots_available():
            loss_curve(losses, config.out.with_name(config.out.stem + ".loss.png"), f"pretrain: {config.loss}")
        resume_path(config.out).unlink(missing_ok=True)  # finished: the saved state has served its purpose
        resume_path(config.out).with_suffix(".json").unlink(missing_ok=True)
    wait_for_all(ranks)
    return PretrainResult(
        checkpoint=config.out,
        losses=losses,
        seconds=seconds,
        images_per_second=3 * config.batch_size * taken * ranks.world_size / seconds if taken else 0.0,
        base_classes=len(split.base),
        novel_classes=len(split.novel),
        writer=ranks.writer,
    )

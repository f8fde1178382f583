"""Stage 1: learn an embedding on the base classes and write its checkpoint.

This stage decides what to train and writes the result; how training runs is the training room's
(:mod:`pdfewshot.train`): the tasks (one per loss), the loop with validation and early stopping,
resume and data-parallel processes.
"""

import os
import pickle
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from pdfewshot.config import (
    AUGMENT_NAMES,
    BACKBONE_NAMES,
    IMAGENET,
    LOSS_NAMES,
    READOUT_NAMES,
    SCHEDULE_NAMES,
    PretrainConfig,
    default_readout,
)
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.profile import DataProfile, profile_sources
from pdfewshot.data.sources import count_images, load_sources, resolve_source
from pdfewshot.data.splits import split_classes
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.nets.backbones import VISION_MODELS
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.inference import run_fast
from pdfewshot.nets.pretrained import load_trunk_weights
from pdfewshot.reporting.console import err_console, loss_progress
from pdfewshot.reporting.plots import loss_curve, plots_available
from pdfewshot.reporting.visualdl import ScalarLog
from pdfewshot.runtime import set_paddle_threads, thread_count
from pdfewshot.stages.common import warn_skipped
from pdfewshot.stages.pairs import validation_threshold
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import check_checkpoint_path, save_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, Split, TrainingRecord, Verification
from pdfewshot.train.distributed import SINGLE_PROCESS, Ranks, launched_ranks, run_processes, start, wait_for_all
from pdfewshot.train.loop import Callbacks, LoopSettings, Phase, Record, StopRules, train
from pdfewshot.train.resume import Position, read_resume, resume_path
from pdfewshot.train.tasks import TASKS, SoftmaxTask
from pdfewshot.train.validation import EpisodeValidator

DEFAULT_EPOCHS = 2  # of the main loss, without validation (measured on the built-in set)
VALIDATION_FRACTION = 0.1  # of the base classes, for user data
MIN_VALIDATION_CLASSES = 2
AUTO_VALIDATION_MIN_CLASSES = 10  # base classes below which validation is off unless asked for
MAX_STEPS_BETWEEN_VALIDATIONS = 100  # so that a large data set is still checked often
MIN_PARALLEL_IMAGES = 20_000  # planned training images below which starting processes does not pay
MIN_BATCH_PER_PROCESS = 16  # images of every batch each training process takes, at least


@dataclass
class PretrainResult:
    checkpoint: Path
    losses: list[float]
    seconds: float
    images_per_second: float
    base_classes: int
    novel_classes: int
    validation_classes: int = 0
    record: Record | None = None
    writer: bool = True  # False in the data-parallel processes other than rank 0, which write nothing
    verification: Verification | None = None  # the pair threshold chosen on the validation classes


def split_path(checkpoint: Path) -> Path:
    """Where the base/novel split is written beside a checkpoint."""
    return checkpoint.with_name(checkpoint.stem + ".split.json")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``1h30m`` or a plain number of seconds; above 0."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise PdfewshotError(f"{text}: not a duration (such as 90s, 15m or 1h30m)", "time_budget")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise PdfewshotError(f"{text}: must be longer than 0", "time_budget")
    return total


def _check_options(config: PretrainConfig) -> None:
    for name, value, allowed in (
        ("loss", config.loss, LOSS_NAMES),
        ("backbone", config.backbone, BACKBONE_NAMES),
        ("lr_schedule", config.lr_schedule, SCHEDULE_NAMES),
        ("readout", config.readout, READOUT_NAMES),
        ("augment", config.augment, AUGMENT_NAMES),
    ):
        if value is not None and value not in allowed:
            raise PdfewshotError(f"{value}: unknown, choose from {', '.join(allowed)}", name)
    if config.readout == "backbone" and config.freeze_backbone:
        raise PdfewshotError(
            "backbone: the backbone is frozen (--freeze-backbone), so training would not change the embedding; "
            "use --readout projection",
            "readout",
        )
    if config.readout == "backbone" and config.loss == "pair-bce":
        raise PdfewshotError("backbone: the pair head of pair-bce scores projections; use --readout projection",
                             "readout")  # fmt: skip
    for name in ("save_every", "epochs", "max_epochs", "patience", "batch_size", "embedding_dim", "validate_every",
                 "processes"):  # fmt: skip
        value = getattr(config, name)
        if value is not None and value < 1:
            raise PdfewshotError(f"{value}: must be at least 1", name)
    if config.warmup_epochs < 0:
        raise PdfewshotError(f"{config.warmup_epochs}: must not be negative", "warmup_epochs")
    if config.validation_fraction is not None and not 0.0 <= config.validation_fraction < 1.0:
        raise PdfewshotError(f"{config.validation_fraction}: must be at least 0 and below 1", "validation_fraction")
    if config.time_budget is not None:
        parse_duration(config.time_budget)
    if config.pretrained == IMAGENET and config.backbone not in (None, *VISION_MODELS):
        raise PdfewshotError(
            f"{IMAGENET}: paddle.vision has ImageNet weights for {', '.join(VISION_MODELS)}, not {config.backbone}",
            "pretrained",
        )


def resolve(config: PretrainConfig, profile: DataProfile) -> PretrainConfig:
    """The config with every setting left to the data filled in (explicit options always win)."""
    imagenet = config.pretrained == IMAGENET
    loss = config.loss or ("cosine-mse" if imagenet else profile.loss)
    return replace(
        config,
        backbone=config.backbone or ("resnet18" if imagenet else profile.backbone),
        loss=loss,
        image_size=config.image_size or (max(profile.image_size, 56) if imagenet else profile.image_size),
        augment=config.augment or profile.augment,
        readout=config.readout or default_readout(loss, config.freeze_backbone),
        novel_fraction=config.novel_fraction if config.novel_fraction is not None else (
            0.0 if profile.user_data else 0.2),
        validation_fraction=config.validation_fraction if config.validation_fraction is not None else (
            VALIDATION_FRACTION if profile.user_data else 0.0),
    )  # fmt: skip


def describe_settings(config: PretrainConfig) -> str:
    """The settings that the data decides unless given, as they were resolved."""
    return (
        f"{config.backbone}, loss {config.loss}, {config.image_size} px, augmentation {config.augment}, "
        f"novel fraction {config.novel_fraction}, "
        f"validation fraction {config.validation_fraction} (options given on the command line win)"
    )


def config_record(config: PretrainConfig) -> dict[str, object]:
    """The options as JSON-ready values (paths as strings), as stored in the checkpoint."""
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record.pop("show_progress")
    return record


def resumable_options(config: PretrainConfig) -> dict[str, object]:
    """Options a resumed run must share with the run it continues."""
    record = config_record(config)
    for key in ("resume", "save_every", "strict", "visualdl", "time_budget"):
        record.pop(key)
    return record


def hold_out_validation(split: Split, fraction: float, seed: int) -> Split:
    """``fraction`` of the base classes (seeded, at least 2 when any) moved to ``validation``."""
    if not fraction:
        return split
    count = max(MIN_VALIDATION_CLASSES, round(fraction * len(split.base)))
    if len(split.base) - count < 2:
        raise PdfewshotError(
            f"{fraction}: the data has {len(split.base)} base classes; validation needs {MIN_VALIDATION_CLASSES} "
            f"of them and training 2 more (give --validation-fraction 0 to train without validation)",
            "validation_fraction",
        )
    rng = np.random.default_rng([seed, 11])
    chosen = {split.base[i] for i in rng.permutation(len(split.base))[:count]}
    base = tuple(name for name in split.base if name not in chosen)
    return Split(base=base, novel=split.novel, unit=split.unit, validation=tuple(sorted(chosen)))


def plan_phases(
    config: PretrainConfig,
    loss: str,
    net: EmbeddingNet,
    base: ImageSet,
    validating: bool,
    ranks: Ranks = SINGLE_PROCESS,
) -> list[Phase]:
    """The softmax warm-up (if any), then the main loss, as training tasks. An epoch is one pass over the
    base images unless ``steps_per_epoch`` says otherwise; data-parallel processes each take their share
    of its steps. With validation the main loss runs up to ``max_epochs`` and early stopping ends it."""

    def phase(task: Any, epochs: int) -> Phase:
        return Phase(task, epochs, ranks.share(config.steps_per_epoch or task.steps_per_epoch(config.batch_size)))

    epochs = config.epochs or (config.max_epochs if validating else DEFAULT_EPOCHS)
    main = TASKS[loss](net, base, config.margin)
    if loss == "ce":
        return [phase(main, epochs)]
    warmup = [phase(SoftmaxTask(net, base), config.warmup_epochs)] if config.warmup_epochs else []
    return [*warmup, phase(main, epochs)]


def training_processes(config: PretrainConfig, ranks: Ranks) -> int:
    """How many processes ``pretrain`` trains in: ``processes`` when given; else, on a CPU with several
    cores and a run long enough to repay starting them, one process per core (each taking at least
    :data:`MIN_BATCH_PER_PROCESS` images of every batch); else this one. Launched processes start none."""
    if ranks.world_size > 1:
        return 1
    if config.processes is not None:
        return config.processes
    if paddle.device.cuda.device_count() > 0:
        return 1  # GPUs: one process, or the launcher's one per GPU
    if planned_images(config) < MIN_PARALLEL_IMAGES:
        return 1
    return max(1, min(thread_count(), config.batch_size // MIN_BATCH_PER_PROCESS))


def planned_images(config: PretrainConfig) -> int:
    """About how many images the run will train on (an epoch: its steps' batches, or a pass over the data,
    counted without decoding; up to ``max_epochs`` when the epochs are left to validation)."""
    if config.steps_per_epoch is not None:
        per_epoch = config.steps_per_epoch * config.batch_size
    else:
        with about("data"):
            per_epoch = sum(count_images(resolve_source(source)) for source in config.data)
    epochs = config.epochs or (config.max_epochs if config.validation_fraction != 0 else DEFAULT_EPOCHS)
    return per_epoch * (epochs + config.warmup_epochs)


def _pretrain_process(config: PretrainConfig, folder: str) -> None:
    """One of the processes of :func:`_pretrain_in_processes`: trains, and leaves its result (rank 0) or
    its one-line error in ``folder`` for the process that started it."""
    try:
        result = pretrain(config)
        if result.writer:
            (Path(folder) / "result.pickle").write_bytes(pickle.dumps(result))
    except PdfewshotError as error:
        rank = os.environ.get("PADDLE_TRAINER_ID", "0")
        (Path(folder) / f"error-{rank}.pickle").write_bytes(pickle.dumps((error.message, error.parameter)))
        _leave(2)
    except KeyboardInterrupt:
        _leave(130)


def _leave(code: int) -> None:
    """Ends a training process at once: the process group's teardown would wait for the others."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _pretrain_in_processes(config: PretrainConfig, processes: int) -> PretrainResult:
    """``pretrain`` in ``processes`` data-parallel processes that split every batch (see
    :mod:`pdfewshot.train.distributed`); the same training as in one process, computed faster."""
    if config.batch_size < processes:
        raise PdfewshotError(f"{processes}: more processes than images in a batch ({config.batch_size})", "processes")
    with tempfile.TemporaryDirectory(prefix="pdfewshot-pretrain-") as folder:
        try:
            run_processes(_pretrain_process, (config, folder), processes, max(1, thread_count() // processes))
        except KeyboardInterrupt:
            raise
        except Exception as failure:
            errors = sorted(Path(folder).glob("error-*.pickle"))
            if errors:
                message, parameter = pickle.loads(errors[0].read_bytes())
                raise PdfewshotError(message, parameter) from None
            raise RuntimeError(f"a training process failed: {str(failure).strip()}") from None
        result: PretrainResult = pickle.loads((Path(folder) / "result.pickle").read_bytes())
    return result


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Trains the embedding network (optional softmax warm-up, then the chosen loss); writes its checkpoint."""
    set_paddle_threads()
    _check_options(config)
    with about("out"):
        check_checkpoint_path(config.out)
    ranks = launched_ranks()
    processes = training_processes(config, ranks)
    if processes > 1:
        return _pretrain_in_processes(replace(config, processes=processes), processes)
    start(ranks)
    validation_left_to_data = config.validation_fraction is None
    with about("data"):
        sources = [resolve_source(s) for s in config.data]
        profile = profile_sources(sources)
        config = resolve(config, profile)
        image_size, novel_fraction, backbone, loss = (
            config.image_size,
            config.novel_fraction,
            config.backbone,
            config.loss,
        )
        assert image_size and novel_fraction is not None and backbone and loss, "resolve() fills them in"
        channels = 3 if config.pretrained == IMAGENET else None
        imageset, load_report = load_sources(sources, image_size, channels, strict=config.strict)
    warn_skipped(load_report)
    split = split_classes(imageset.class_names, novel_fraction, config.seed)
    if validation_left_to_data and len(split.base) < AUTO_VALIDATION_MIN_CLASSES:
        config = replace(config, validation_fraction=0.0)  # too few classes to spare some
    split = hold_out_validation(split, config.validation_fraction or 0.0, config.seed)
    if profile.user_data and ranks.writer and config.show_progress:
        err_console.print(f"settings from the data ({profile.kind}): {describe_settings(config)}", markup=False)
    base = imageset.subset_classes(split.base)
    if config.rotations:
        base = base.with_rotations()

    paddle.seed(config.seed)
    normalisation = IMAGENET if config.pretrained == IMAGENET else "symmetric"
    readout = config.readout
    assert readout is not None, "resolve() fills it in"
    net = EmbeddingNet(
        backbone, imageset.channels, config.embedding_dim, image_size, loss == "pair-bce",
        normalisation, readout,
    )  # fmt: skip
    if config.pretrained is not None:
        with about("pretrained"):
            load_trunk_weights(net, config.pretrained, backbone, imageset.channels)
    if config.freeze_backbone:
        net.freeze_backbone()
    validating = bool(split.validation)
    phases = plan_phases(config, loss, net, base, validating, ranks)
    validator = None
    if validating:
        validation_images = imageset.subset_classes(split.validation)
        validator = EpisodeValidator(validation_images, run_fast, seed=config.seed)
    options = resumable_options(config)
    settings = LoopSettings(
        config.lr, config.lr_schedule, config.batch_size, config.seed, config.augment or "none",
        config.freeze_backbone, config.save_every, resume_path(config.out), options,
    )  # fmt: skip
    rules = StopRules(
        validate_every=(config.validate_every or min(phases[-1].steps, MAX_STEPS_BETWEEN_VALIDATIONS))
        if validating
        else None,
        patience=config.patience if validating else None,
        time_budget=parse_duration(config.time_budget) if config.time_budget else None,
    )
    position, saved, record = Position(), dict[str, Any](), Record()
    if config.resume:
        with about("resume"):
            position, saved, training = read_resume(resume_path(config.out), net, options)
        record = Record.from_json(training)
    total = sum(phase.epochs * phase.steps for phase in phases)
    shown = config.show_progress and ranks.writer
    started = time.perf_counter()
    taken_before = len(position.losses)
    with (
        loss_progress("pretrain", total, shown) as progress,
        ScalarLog(config.visualdl if ranks.writer else None) as log,
    ):
        progress.update_completed(len(position.losses))

        def on_step(kind: str, loss: float, step: int) -> None:
            log.add(f"pretrain/{kind}_loss", loss, step)
            progress.update(loss)

        def on_validation(accuracy: float, step: int, best: bool) -> None:
            log.add("pretrain/validation_accuracy", accuracy, step)
            progress.show_validation(accuracy, record.best_validation or accuracy)

        callbacks = Callbacks(on_step, on_validation)
        record = train(net, phases, settings, position, saved, record, validator, rules, callbacks, ranks)
    seconds = time.perf_counter() - started
    losses = position.losses
    taken = len(losses) - taken_before

    meta = EmbeddingMeta(
        backbone=backbone,
        image_size=image_size,
        channels=imageset.channels,
        embedding_dim=config.embedding_dim,
        class_names=list(base.class_names),
        data=sources,
        split=split,
        seed=config.seed,
        loss=loss,
        warmup_epochs=config.warmup_epochs if loss != "ce" else 0,
        config=config_record(config),
        training=TrainingRecord(
            steps=len(losses),
            processes=ranks.world_size,
            final_loss=float(np.mean(losses[-10:])),
            seconds=round(record.seconds, 1),
            stopped_because=record.stopped_because,
            best_validation=record.best_validation,
            best_step=record.best_step,
            validations=[[step, round(accuracy, 4)] for step, accuracy in record.validations],
        ),
        normalisation=normalisation,
        readout=readout,
    )
    if ranks.writer and split.validation:
        meta.verification = validation_threshold(net, imageset.subset_classes(split.validation), config.seed)
    if ranks.writer:
        with about("out"):
            save_checkpoint(config.out, net, meta)
            write_json(split_path(config.out), split.to_json())
            if plots_available():
                loss_curve(losses, config.out.with_name(config.out.stem + ".loss.png"), f"pretrain: {loss}")
        resume_path(config.out).unlink(missing_ok=True)  # finished: the saved state has served its purpose
        resume_path(config.out).with_suffix(".json").unlink(missing_ok=True)
    wait_for_all(ranks)
    return PretrainResult(
        checkpoint=config.out,
        losses=losses,
        seconds=seconds,
        images_per_second=3 * ranks.batch(config.batch_size) * taken * ranks.world_size / seconds if taken else 0.0,
        base_classes=len(split.base),
        novel_classes=len(split.novel),
        validation_classes=len(split.validation),
        record=record,
        writer=ranks.writer,
        verification=meta.verification,
    )

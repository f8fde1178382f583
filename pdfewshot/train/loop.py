"""The pretraining loop: phases of training tasks, resumable, optionally validated and stopped early.

The loop runs each phase's task over its batches with Adam, saves the training state every
``save_every`` steps (:mod:`pdfewshot.train.resume`), and, given a validator, scores validation
episodes every ``validate_every`` steps, keeps the best weights (by the validation's ``log_prob``), and
stops when they have not improved for ``patience`` evaluations or when the time budget is spent. It
reports through callbacks, so it knows nothing of how progress is shown.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paddle

from pdfewshot.data.batches import DistortingCollate
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.embedding import to_input
from pdfewshot.train.distributed import SINGLE_PROCESS, Ranks, agree, data_parallel
from pdfewshot.train.frozen_trunk import TrainedNet
from pdfewshot.train.resume import Position, restore_extra, restore_optimizer, save_resume
from pdfewshot.train.schedule import scheduled_lr
from pdfewshot.train.tasks import Prepare, TrainingTask
from pdfewshot.train.validation import ValidationScore


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one task: ``epochs`` epochs of ``steps`` batches each. ``head_only``: the
    backbone stays as it is (out of the optimiser, batch norm in eval mode): the linear probe of LP-FT."""

    task: TrainingTask
    epochs: int
    steps: int  # per epoch
    head_only: bool = False  # trains ``task.net`` (a head over features), not validated: the readout stays
    prepare: Prepare | None = None  # makes its rows the input of ``task.net``; None: the loop's ``prepare``


@dataclass(frozen=True)
class LoopSettings:
    lr: float = 1e-3
    lr_schedule: str = "constant"
    batch_size: int = 64
    seed: int = 0
    augment: str = "none"
    freeze_backbone: bool = False
    freeze_batch_norm: bool = False  # the backbone's batch-norm statistics stay as they started
    workers: int = 0  # processes that assemble and distort batches (0: this one)
    save_every: int | None = None
    resume_path: Path | None = None  # where save_every writes
    resume_options: dict[str, Any] = field(default_factory=dict)  # what a resumed run must share
    backbone_lr: float | None = None  # the backbone's rate (None: ``lr``), scheduled as ``lr`` is
    l2_sp: float = 0.0  # weight of the pull of the backbone's weights towards ``anchor`` (L2-SP, Li et al. 2018)
    anchor: dict[str, paddle.Tensor] = field(default_factory=dict)  # backbone parameter name -> its start value


@dataclass(frozen=True)
class StopRules:
    """When to stop before the planned epochs end. ``patience``: validations without improvement;
    ``time_budget``: seconds of training (summed over resumed runs)."""

    validate_every: int | None = None  # steps between validations; None: no validation
    patience: int | None = None
    time_budget: float | None = None


@dataclass
class Record:
    """What the loop keeps across steps, saved with the training state so a resumed run goes on as one."""

    seconds: float = 0.0
    best_validation: float | None = None  # the best validation's log_prob
    best_step: int | None = None
    evaluations_since_best: int = 0
    validations: list[tuple[int, float, float]] = field(default_factory=list)  # (step, log_prob, accuracy)
    stopped_because: str = "finished its epochs"

    @property
    def best_accuracy(self) -> float | None:
        """The validation accuracy of the kept weights."""
        return next((accuracy for step, _, accuracy in self.validations if step == self.best_step), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds, "best_validation": self.best_validation, "best_step": self.best_step,
            "evaluations_since_best": self.evaluations_since_best, "validations": self.validations,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        if any(len(row) != 3 for row in data.get("validations", [])):
            raise PdfewshotError(
                ": the training state was saved by an older pdfewshot, whose validation scored accuracy alone; "
                "start again without --resume",
                "resume",
            )
        validations = [
            (int(step), float(score), float(accuracy)) for step, score, accuracy in data.get("validations", [])
        ]
        return cls(
            float(data.get("seconds", 0.0)), data.get("best_validation"), data.get("best_step"),
            int(data.get("evaluations_since_best", 0)), validations,
        )  # fmt: skip


@dataclass
class Callbacks:
    """How the loop reports: each step's loss (the task's kind of batch, loss, steps done) and each validation
    (its score, steps done, whether it is the best so far)."""

    on_step: Callable[[str, float, int], None] = lambda name, loss, step: None
    on_validation: Callable[[ValidationScore, int, bool], None] = lambda score, step, best: None


class _Objective(paddle.nn.Layer):  # type: ignore[misc]
    """Every phase's task as one layer, so that ``paddle.DataParallel`` is wrapped once around all the
    trained parameters (wrapping the same parameters again for a later phase crashes Paddle 3.3's
    gradient reducer) and hooks the backward pass of the whole step."""

    def __init__(self, tasks: list[TrainingTask]) -> None:
        super().__init__()
        self.tasks = paddle.nn.LayerList(tasks)

    def forward(self, index: int, batch: list[paddle.Tensor], prepare: Callable[..., paddle.Tensor]) -> paddle.Tensor:
        return self.tasks[index](batch, prepare)


BATCH_NORMS = (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D, paddle.nn.BatchNorm)

BEST_PREFIX = "best/"  # the best validated weights, in a saved training state


def _training_mode(net: TrainedNet, settings: LoopSettings) -> None:
    """Training mode, except for what stays as it started: a frozen backbone, or its batch-norm statistics."""
    net.train()
    if settings.freeze_backbone:
        net.backbone.eval()
    elif settings.freeze_batch_norm:
        for layer in net.backbone.sublayers():
            if isinstance(layer, BATCH_NORMS):
                layer.eval()


def _copy_weights(net: TrainedNet) -> dict[str, paddle.Tensor]:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def _optimizer(net: TrainedNet, phase: Phase, extras: dict[str, paddle.nn.Layer], settings: LoopSettings) -> Any:
    """Adam over what ``phase`` trains: the head and the task's own layers at ``lr``, and (unless head only)
    the backbone's trainable weights at ``backbone_lr``."""
    in_backbone = {p.name for p in net.backbone.parameters()}  # names: the Python objects are not kept
    head = [p for p in net.parameters() if not p.stop_gradient and p.name not in in_backbone]
    head += [p for layer in extras.values() for p in layer.parameters()]
    groups: list[dict[str, Any]] = [{"params": head}]
    backbone = [] if phase.head_only else [p for p in net.backbone.parameters() if not p.stop_gradient]
    if backbone:  # a group's rate is a multiple of the optimiser's, so the schedule moves both
        groups.append({"params": backbone, "learning_rate": (settings.backbone_lr or settings.lr) / settings.lr})
    return paddle.optimizer.Adam(learning_rate=settings.lr, parameters=groups)


def _pull_to_start(net: TrainedNet, settings: LoopSettings) -> paddle.Tensor | None:
    """L2-SP's penalty: half its weight times the squared distance of the backbone's weights from the start."""
    if not settings.l2_sp or not settings.anchor:
        return None
    distances = [
        ((value - settings.anchor[name]) ** 2).sum()
        for name, value in net.backbone.named_parameters()
        if not value.stop_gradient and name in settings.anchor
    ]
    return settings.l2_sp / 2 * paddle.add_n(distances) if distances else None


class _Run:
    """One call of :func:`train`: the network, what it has done, and the rules of when it stops."""

    def __init__(
        self,
        net: TrainedNet,
        phases: list[Phase],
        settings: LoopSettings,
        position: Position,
        saved: dict[str, Any],
        record: Record,
        validator: Callable[[TrainedNet], ValidationScore] | None,
        rules: StopRules,
        callbacks: Callbacks,
        ranks: Ranks,
    ) -> None:
        self.net, self.phases, self.settings, self.position, self.saved = net, phases, settings, position, saved
        self.record, self.validator, self.rules, self.callbacks, self.ranks = record, validator, rules, callbacks, ranks
        self.trainer = data_parallel(_Objective([phase.task for phase in phases]), ranks)
        self.best_weights = {k[len(BEST_PREFIX) :]: v for k, v in saved.items() if k.startswith(BEST_PREFIX)} or None
        self.started, self.seconds_before = time.perf_counter(), record.seconds
        # Rank 0 validates (each process has its own batch-norm statistics) and decides when to stop.
        self.validating = validator is not None and ranks.writer
        self.deciding = ranks.world_size > 1 and (validator is not None or rules.time_budget is not None)
        self.stop = False

    def validate(self, step: int) -> bool:
        """Scores the network; keeps its weights when best; True when patience has run out."""
        assert self.validator is not None
        record = self.record
        score = self.validator(self.net)
        record.validations.append((step, score.log_prob, score.accuracy))
        # Better: a higher log-probability at no lower accuracy. The log-probability keeps moving where accuracy
        # saturates, but alone it also rewards an embedding that grows more confident while it errs more.
        improved = record.best_validation is None or (
            score.log_prob > record.best_validation and score.accuracy >= (record.best_accuracy or 0.0)
        )
        if improved:
            record.best_validation, record.best_step, record.evaluations_since_best = score.log_prob, step, 0
            self.best_weights = _copy_weights(self.net)
        else:
            record.evaluations_since_best += 1
        self.callbacks.on_validation(score, step, improved)
        return self.rules.patience is not None and record.evaluations_since_best >= self.rules.patience

    def training_mode(self, phase: Phase) -> None:
        trained = phase.task.net if phase.head_only else self.net
        _training_mode(
            trained, replace(self.settings, freeze_backbone=self.settings.freeze_backbone or phase.head_only)
        )

    def run_phase(self, index: int, phase: Phase, prepare: Prepare) -> None:
        """The epochs of one phase, from where a resumed run left off."""
        settings, position = self.settings, self.position
        prepare = phase.prepare or prepare
        extras = phase.task.extra_layers()
        optimizer = _optimizer(phase.task.net if phase.head_only else self.net, phase, extras, settings)
        if self.saved and index == position.phase:
            restore_optimizer(optimizer, {"net": self.net, **extras}, self.saved)
            for owner, layer in extras.items():
                restore_extra(layer, owner, self.saved)
        self.training_mode(phase)
        first_epoch = position.epoch if index == position.phase else 0
        sampler = phase.task.sampler(
            self.ranks.batch(settings.batch_size), phase.steps, settings.seed + index, self.ranks
        )
        # Batches are distorted where they are made, by generators seeded by their step: a resumed run
        # redraws the same distortions, with any number of workers.
        augment = "none" if phase.head_only else settings.augment  # a probe's rows are features, not pictures
        collate = DistortingCollate(augment, phase.task.image_fields, settings.seed, index, self.ranks.rank)
        loader = phase.task.loader(sampler, collate, settings.workers)
        for epoch in range(first_epoch, phase.epochs):
            if self.stop:
                break
            first_step = position.step if (index == position.phase and epoch == position.epoch) else 0
            sampler.set_epoch(epoch, first_step)
            for step, batch in enumerate(loader, first_step):
                lr = scheduled_lr(
                    settings.lr, settings.lr_schedule, epoch * phase.steps + step, phase.epochs * phase.steps
                )
                self.take_step(index, phase, optimizer, batch, prepare, lr)
                self.after_step(index, phase, epoch, step, optimizer, extras)
                if self.stop:
                    break

    def take_step(self, index: int, phase: Phase, optimizer: Any, batch: list[paddle.Tensor], prepare: Prepare,
                  lr: float) -> None:  # fmt: skip
        optimizer.set_lr(lr)
        loss = self.trainer(index, batch, prepare)
        penalty = None if phase.head_only else _pull_to_start(self.net, self.settings)
        (loss if penalty is None else loss + penalty).backward()
        # Adam names its accumulators <param>_moment1_<n> with a process-wide counter n; a
        # fresh name scope makes n = 0 in every run, so a saved state can be restored by name.
        with paddle.utils.unique_name.guard():
            optimizer.step()
        optimizer.clear_grad()
        self.position.losses.append(loss.item())

    def after_step(self, index: int, phase: Phase, epoch: int, step: int, optimizer: Any,
                   extras: dict[str, paddle.nn.Layer]) -> None:  # fmt: skip
        """Validation, the time budget, the agreement of processes, the saved state and the report of a step."""
        record, rules, settings, done = self.record, self.rules, self.settings, len(self.position.losses)
        record.seconds = self.seconds_before + time.perf_counter() - self.started
        if self.validating and rules.validate_every and done % rules.validate_every == 0 and not phase.head_only:
            # Patience ends the last phase only: a warm-up always hands over to the main loss.
            self.stop = self.validate(done) and index == len(self.phases) - 1
            if self.stop:
                record.stopped_because = f"no better validation in {rules.patience} evaluations"
            self.training_mode(phase)
        if not self.stop and rules.time_budget is not None and record.seconds >= rules.time_budget:
            self.stop = True
            record.stopped_because = f"time budget of {rules.time_budget:.0f} s spent"
        if self.deciding:
            self.stop = agree(self.stop, self.ranks)  # rank 0 decides; every process stops at the same step
        if self.ranks.writer and settings.save_every and settings.resume_path and done % settings.save_every == 0:
            here = Position(index, epoch, step + 1, self.position.losses)
            best = {f"{BEST_PREFIX}{k}": v for k, v in (self.best_weights or {}).items()}
            save_resume(settings.resume_path, self.net, extras, optimizer, here, settings.resume_options,
                        record.to_json(), best)  # fmt: skip
        self.callbacks.on_step(phase.task.kind, self.position.losses[-1], done)

    def finish(self) -> Record:
        """The final weights validated too; the best validated weights put back."""
        if self.validating:
            done = len(self.position.losses)
            if not self.record.validations or self.record.validations[-1][0] != done:
                self.validate(done)
            if self.best_weights is not None:
                self.net.set_state_dict(self.best_weights)
        self.record.seconds = self.seconds_before + time.perf_counter() - self.started
        return self.record


def train(
    net: TrainedNet,
    phases: list[Phase],
    settings: LoopSettings,
    position: Position,
    saved: dict[str, Any] | None = None,
    record: Record | None = None,
    validator: Callable[[TrainedNet], ValidationScore] | None = None,
    rules: StopRules = StopRules(),
    callbacks: Callbacks | None = None,
    ranks: Ranks = SINGLE_PROCESS,
    prepare: Prepare = to_input,
) -> Record:
    """Runs the phases from ``position`` on (``saved``: optimiser and extra layers of a resumed run),
    appending each step's loss to ``position.losses``. ``prepare`` makes a batch's rows the network's
    input. With a validator, the network ends with the best validated weights. Returns the run's record."""
    record = record or Record()
    run = _Run(net, phases, settings, position, saved or {}, record, validator, rules, callbacks or Callbacks(), ranks)
    if run.validating and not position.losses and not record.validations:
        run.validate(0)  # the start is scored too: from pretrained weights, the best can be no training at all
    for index, phase in enumerate(phases):
        if index >= position.phase and not run.stop:
            run.run_phase(index, phase, prepare)
    return run.finish()

"""The training loop on its own: phases, validation with early stopping and kept best weights, a time
budget, and resumed runs that go on as one."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paddle
import pytest

from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.train.loop import Callbacks, LoopSettings, Phase, Record, StopRules, train
from pdfewshot.train.resume import Position, read_resume
from pdfewshot.train.tasks import CosineMseTask, SoftmaxTask
from pdfewshot.train.validation import ValidationScore
from tests.train.test_tasks import base_images as tasks_base_images


def base_images() -> ImageSet:
    return tasks_base_images(per_class=6)


def network() -> EmbeddingNet:
    paddle.seed(0)
    return EmbeddingNet("conv4", 1, 8, 16)


class ScriptedValidator:
    """Returns the given scores in turn (as log-probabilities; the accuracy the same unless ``accuracies``
    are given) and remembers the weights it saw at each call."""

    def __init__(self, scores: list[float], accuracies: list[float] | None = None) -> None:
        self.scores: Iterator[tuple[float, float]] = iter(zip(scores, accuracies or scores, strict=True))
        self.seen: list[np.ndarray] = []

    def __call__(self, net: EmbeddingNet) -> ValidationScore:
        self.seen.append(net.head.weight.numpy().copy())
        return ValidationScore(*next(self.scores))


def test_phases_run_in_order_and_report_each_step() -> None:
    net, base = network(), base_images()
    phases = [Phase(SoftmaxTask(net, base), 1, 2), Phase(CosineMseTask(net, base), 2, 3)]
    steps: list[tuple[str, int]] = []
    position = Position()
    record = train(net, phases, LoopSettings(batch_size=4), position,
                   callbacks=Callbacks(on_step=lambda kind, loss, step: steps.append((kind, step))))  # fmt: skip
    assert steps == [("softmax", 1), ("softmax", 2)] + [("triples", s) for s in range(3, 9)]
    assert len(position.losses) == 8 and record.stopped_because == "finished its epochs"
    assert record.best_validation is None


def test_patience_stops_training_and_the_best_weights_are_kept() -> None:
    net, base = network(), base_images()
    validator = ScriptedValidator([0.1, 0.3, 0.6, 0.5, 0.55, 0.4, 0.9])
    position = Position()
    rules = StopRules(validate_every=2, patience=3)
    record = train(net, [Phase(CosineMseTask(net, base), 10, 2)], LoopSettings(batch_size=4), position,
                   validator=validator, rules=rules)  # fmt: skip
    # Validations of the start, then at steps 2, 4, 6, 8, 10: best at 4, then three without improvement: stop
    # after step 10.
    assert [step for step, *_ in record.validations] == [0, 2, 4, 6, 8, 10]
    assert len(position.losses) == 10
    assert record.best_step == 4 and record.best_validation == 0.6
    assert record.stopped_because == "no better validation in 3 evaluations"
    np.testing.assert_array_equal(net.head.weight.numpy(), validator.seen[2])


def test_a_higher_log_probability_at_a_lower_accuracy_is_not_better() -> None:
    net, base = network(), base_images()
    # the start, then the most confident embedding, which errs more, then one as accurate as the start
    # (saturated) and more confident than it: that one is the best
    validator = ScriptedValidator([-0.35, -0.28, -0.30, -0.40], [1.0, 0.94, 1.0, 1.0])
    record = train(net, [Phase(CosineMseTask(net, base), 1, 3)], LoopSettings(batch_size=4), Position(),
                   validator=validator, rules=StopRules(validate_every=1, patience=5))  # fmt: skip
    assert [step for step, *_ in record.validations] == [0, 1, 2, 3]
    assert record.best_step == 2 and record.best_validation == -0.30 and record.best_accuracy == 1.0


def test_the_final_weights_are_validated_too() -> None:
    net, base = network(), base_images()
    validator = ScriptedValidator([0.1, 0.2, 0.9])
    record = train(net, [Phase(CosineMseTask(net, base), 1, 3)], LoopSettings(batch_size=4), Position(),
                   validator=validator, rules=StopRules(validate_every=2, patience=5))  # fmt: skip
    assert [step for step, *_ in record.validations] == [0, 2, 3] and record.best_step == 3


def test_a_time_budget_ends_training_early() -> None:
    net, base = network(), base_images()
    position = Position()
    record = train(net, [Phase(CosineMseTask(net, base), 50, 4)], LoopSettings(batch_size=4), position,
                   rules=StopRules(time_budget=1e-6))  # fmt: skip
    assert len(position.losses) == 1 and record.stopped_because.startswith("time budget of")


def test_a_resumed_run_keeps_its_validation_record_and_best_weights(tmp_path: Path) -> None:
    accuracies = [0.1, 0.5, 0.7, 0.6, 0.65, 0.6, 0.62, 0.5, 0.4]  # the first: the start, before any step
    rules = StopRules(validate_every=1, patience=4)

    def run(path: Path, cut: int | None) -> tuple[Position, dict[str, float | None], EmbeddingNet]:
        net, base = network(), base_images()
        settings = LoopSettings(batch_size=4, save_every=1, resume_path=path, resume_options={"x": 1})
        position = Position()

        def interrupt(kind: str, loss: float, step: int) -> None:
            if step == cut:
                raise KeyboardInterrupt

        validator = ScriptedValidator(accuracies)
        phases = [Phase(CosineMseTask(net, base), 1, 8)]
        with pytest.raises(KeyboardInterrupt):
            train(net, phases, settings, position, validator=validator, rules=rules,
                  callbacks=Callbacks(on_step=interrupt))  # fmt: skip
        net = network()
        position, saved, training = read_resume(path, net, {"x": 1})
        from pdfewshot.train.loop import Record

        resumed = ScriptedValidator(accuracies[len(position.losses) + 1 :])  # a resumed run does not score its start
        phases = [Phase(CosineMseTask(net, base), 1, 8)]
        record = train(net, phases, settings, position, saved, Record.from_json(training), resumed, rules)
        return position, {"best": record.best_validation, "step": record.best_step}, net

    position, best, net = run(tmp_path / "a.resume.pdparams", cut=3)
    assert best == {"best": 0.7, "step": 2}
    assert len(position.losses) == 6  # 2 was best; 3, 4, 5, 6 were not: patience 4 ends it at step 6

    whole_net, base = network(), base_images()
    whole = Position()
    train(whole_net, [Phase(CosineMseTask(whole_net, base), 1, 8)], LoopSettings(batch_size=4), whole,
          validator=ScriptedValidator(accuracies), rules=rules)  # fmt: skip
    np.testing.assert_allclose(position.losses, whole.losses, rtol=1e-6)
    for name, value in whole_net.state_dict().items():  # the same best weights, kept across the interruption
        np.testing.assert_array_equal(net.state_dict()[name].numpy(), value.numpy(), err_msg=name)


def test_a_record_saved_before_validation_scored_log_probabilities_is_a_clear_error() -> None:
    with pytest.raises(PdfewshotError, match="saved by an older pdfewshot, whose validation scored accuracy alone"):
        Record.from_json({"seconds": 1.0, "validations": [[10, 0.9]]})
    assert Record.from_json({"validations": [[10, -0.5, 0.9]]}).best_accuracy is None  # no best step yet


def test_frozen_batch_norm_statistics_stay_while_the_weights_learn() -> None:
    net, base = network(), base_images()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    train(net, [Phase(SoftmaxTask(net, base), 1, 2)], LoopSettings(batch_size=4, freeze_batch_norm=True), Position())
    after = {k: v.numpy() for k, v in net.state_dict().items()}
    statistics = [k for k in before if k.endswith(("_mean", "_variance"))]
    assert statistics and all(np.array_equal(before[k], after[k]) for k in statistics)
    assert not np.array_equal(before["head.weight"], after["head.weight"])
    assert any(
        not np.array_equal(before[k], after[k]) for k in before if k.startswith("backbone.") and k.endswith("weight")
    )
    assert net.training  # the rest of the network trained in training mode

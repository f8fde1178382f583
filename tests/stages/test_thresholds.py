"""Every way of making a classifier leaves it a threshold to answer "unknown" below, and predict, test and the
Python API apply it by default."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import pdfewshot
from pdfewshot.cli import app
from pdfewshot.config import FinetuneConfig, PredictConfig
from pdfewshot.methods.unknown import between_class_threshold
from pdfewshot.stages.common import open_embedding
from pdfewshot.stages.finetune import finetune
from pdfewshot.stages.predict import predict
from pdfewshot.stages.support import add_class, remove_class
from pdfewshot.stages.thresholds import BETWEEN_CLASSES, LEAVE_ONE_OUT, PAIR, stored_threshold
from pdfewshot.storage.checkpoint import read_checkpoint, save_checkpoint
from pdfewshot.storage.metadata import PredictorMeta
from tests.conftest import make_nested, tiny_pretrain

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data, an embedding with a pair threshold, and the same embedding without one (an ImageNet or face
    start kept as it is, of no data)."""
    root = tmp_path_factory.mktemp("thresholds")
    data = make_nested(root / "data", alphabets=3, characters=3, per_class=5)
    assert runner.invoke(app, tiny_pretrain(data, root / "e.pdparams", 2)).exit_code == 0
    net, meta = open_embedding(root / "e.pdparams")
    save_checkpoint(root / "bare.pdparams", net, replace(meta, verification=None))
    return {"root": root, "data": data, "paired": root / "e.pdparams", "bare": root / "bare.pdparams"}


def test_the_threshold_is_chosen_from_what_the_classifier_has(world: dict[str, Path]) -> None:
    _, paired = open_embedding(world["paired"])
    assert paired.verification is not None
    bare = replace(paired, verification=None)
    prototypes = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert stored_threshold("max-cosine", 0.7, paired, prototypes) == (0.7, LEAVE_ONE_OUT)
    assert stored_threshold("max-cosine", None, paired, prototypes) == (paired.verification.threshold, PAIR)
    between, origin = stored_threshold("max-cosine", None, bare, prototypes)
    assert between == pytest.approx(0.8) and origin == BETWEEN_CLASSES
    assert stored_threshold("max-cosine", None, bare, prototypes[:1]) == (None, None)
    assert stored_threshold("energy", None, paired, prototypes) == (None, None)
    assert between_class_threshold(prototypes * 3) == pytest.approx(0.8)  # cosines, whatever the lengths


def test_one_shot_finetune_stores_a_threshold_that_predict_and_test_apply(world: dict[str, Path]) -> None:
    out = world["root"] / "one-shot" / "p.pdparams"
    finetune(FinetuneConfig(model=world["bare"], out=out, shot=1, steps=2, show_progress=False))
    meta = read_checkpoint(out, PredictorMeta)[1]
    assert meta.reject_origin == BETWEEN_CLASSES and meta.suggested_reject_below is not None
    image = world["data"] / "alpha2" / "char2" / "4.png"
    _, rule = predict(PredictConfig(inputs=[image], model=out))
    assert rule is not None and rule.threshold == meta.suggested_reject_below
    assert rule.describe().endswith("(stored: the cosine between the two closest classes)")
    assert predict(PredictConfig(inputs=[image], model=out, reject_below="none"))[1] is None
    tested = runner.invoke(app, ["test", "--model", str(out), "--report", str(out.with_name("r.json"))])
    assert tested.exit_code == 0, tested.output
    assert "of the queries answered 'unknown' by predict (answering unknown below" in tested.output
    assert tested.output.strip().splitlines()[-1].startswith("overall: ")


def test_the_python_api_answers_unknown_by_default(world: dict[str, Path]) -> None:
    out = world["root"] / "api" / "p.pdparams"
    classifier = pdfewshot.finetune(world["paired"], shot=2, out=out, steps=2, show_progress=False)
    meta = read_checkpoint(out, PredictorMeta)[1]
    image = world["data"] / "alpha2" / "char2" / "4.png"
    (default,) = classifier.predict([image])
    assert default.known_score is not None and default.rejection is not None
    assert (default.label == "unknown") == (default.known_score < meta.suggested_reject_below)
    (never,) = classifier.predict([image], reject_below="none")
    assert never.label != "unknown" and never.rejection is None
    (always,) = classifier.predict([image], reject_below=1.0)
    assert always.label == "unknown"
    beside = pdfewshot.finetune(world["paired"], shot=2, steps=1, show_progress=False)  # no out: beside it
    assert beside.path == world["paired"].with_name("predictor.pdparams") and beside.path.is_file()


def test_classes_taught_one_by_one_get_a_threshold_once_there_are_two(world: dict[str, Path]) -> None:
    """Taught from an embedding with no pair threshold (as the page teaches): none with one class, the closest
    two classes' cosine with two and more, chosen again when a class goes."""
    embedding = pdfewshot.load(world["bare"])
    assert isinstance(embedding, pdfewshot.Embedding)
    model = world["root"] / "taught" / "p.pdparams"
    model.parent.mkdir()
    classifier = pdfewshot.Classifier(model, world["bare"])
    data = world["data"]
    classifier.add_class("a", sorted((data / "alpha0" / "char0").iterdir())[:2])
    assert read_checkpoint(model, PredictorMeta)[1].suggested_reject_below is None
    add_class(model, "b", data / "alpha1" / "char1")
    two = read_checkpoint(model, PredictorMeta)[1]
    assert two.reject_origin == BETWEEN_CLASSES and two.suggested_reject_below is not None
    add_class(model, "c", data / "alpha2" / "char2")
    remove_class(model, "c")
    again = read_checkpoint(model, PredictorMeta)[1]
    assert again.suggested_reject_below == pytest.approx(two.suggested_reject_below)

"""A pair-bce embedding goes through finetune, test and predict by its pair head (Koch et al. 2015)."""

import json
from pathlib import Path

import numpy as np
import paddle
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.nets.classifier import PairPredictor
from pdfewshot.nets.embedding import EmbeddingNet
from tests.conftest import make_nested, tiny_pretrain

runner = CliRunner()


def test_pair_predictor_scores_a_class_by_its_most_similar_support_image() -> None:
    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 4, 16, pair_head=True)
    assert net.pair_head is not None
    net.pair_head.weigh.weight.set_value(-paddle.ones([4, 1]))  # logit = -L1 distance
    net.pair_head.weigh.bias.set_value(paddle.zeros([1]))
    images = paddle.to_tensor(np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 1)).astype("uint8"))
    from pdfewshot.nets.embedding import to_input

    net.eval()
    embeddings = net(to_input(images))
    support, queries = embeddings[:3], embeddings[3:]
    predictor = PairPredictor(net, support, paddle.to_tensor([0, 1, 1]), 2)
    logits = predictor(to_input(images[3:])).numpy()
    distances = np.abs(queries.numpy()[:, None, :] - support.numpy()[None]).sum(-1)
    np.testing.assert_allclose(logits, np.stack([-distances[:, 0], -distances[:, 1:].min(1)], 1), atol=1e-5)


def test_pair_bce_through_finetune_test_and_predict(tmp_path: Path) -> None:
    data = make_nested(tmp_path / "data", alphabets=3, characters=3, per_class=5)
    models = tmp_path / "m"
    pretrain = tiny_pretrain(data, models / "e.pdparams", 2, "--loss", "pair-bce", "--backbone", "conv4")
    assert runner.invoke(app, pretrain).exit_code == 0
    result = runner.invoke(
        app, ["finetune", "--model", str(models / "e.pdparams"), "--out", str(models / "p.pdparams")]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((models / "p.json").read_text())
    assert meta["method"] == "pair" and meta["support_count"] == 3 * 2
    assert meta["suggested_reject_below"] is None  # derived for the cosine classifier only
    result = runner.invoke(app, ["test", "--model", str(models / "p.pdparams"), "--report", str(models / "r.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((models / "r.json").read_text())["queries"] == 3 * 3
    predicted = runner.invoke(app, ["predict", str(data / "alpha2"), "--model", str(models / "p.pdparams"), "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert len(json.loads(predicted.output)) == 15

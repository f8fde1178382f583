"""Every registered method keeps the same contract: fit on a support set, then scores for queries."""

import numpy as np
import paddle
import pytest

from pdfewshot.config import METHOD_NAMES
from pdfewshot.errors import PdfewshotError
from pdfewshot.methods import METHODS, MethodSettings, build_method
from pdfewshot.methods.fitting import FitSettings
from pdfewshot.nets.pair_head import PairHead


def settings() -> MethodSettings:
    head = PairHead(3)
    head.weigh.weight.set_value(-paddle.ones([3, 1]))  # logit = -L1 distance: a sensible pair head
    head.weigh.bias.set_value(paddle.zeros([1]))
    return MethodSettings(FitSettings(steps=10, lr=0.01), query_entropy_weight=0.1, pair_head=head)


def clusters(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three well separated classes in 3-d: two support points and four queries each."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 5
    support_labels, query_labels = np.repeat(np.arange(3), 2), np.repeat(np.arange(3), 4)
    support = centres[support_labels] + 0.1 * rng.normal(size=(6, 3))
    queries = centres[query_labels] + 0.1 * rng.normal(size=(12, 3))
    return support.astype(np.float32), support_labels, queries.astype(np.float32), query_labels


def test_the_registry_lists_the_method_names_of_the_config() -> None:
    assert tuple(METHODS) == METHOD_NAMES


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_fits_and_scores_through_one_contract(name: str) -> None:
    method = build_method(name, settings())
    support, support_labels, queries, query_labels = clusters(0)
    method.fit(support, support_labels, 3)
    scores = method.scores(queries)
    assert scores.shape == (12, 3) and np.all(np.isfinite(scores))
    assert method.predict(queries).tolist() == query_labels.tolist()
    # Many episodes at once give each episode's own scores.
    other = clusters(1)
    batched = method.episode_scores(
        np.stack([support, other[0]]), np.stack([support_labels, other[1]]), 3, np.stack([queries, other[2]])
    )
    assert batched.shape == (2, 12, 3)
    assert (batched.argmax(axis=2) == np.stack([query_labels, other[3]])).all()


def test_unknown_method_and_pair_without_a_pair_head_are_clear_errors() -> None:
    with pytest.raises(PdfewshotError, match="method magic: unknown, choose from prototype"):
        build_method("magic", MethodSettings())
    with pytest.raises(PdfewshotError, match="method pair: needs an embedding pretrained with --loss pair-bce"):
        build_method("pair", MethodSettings())

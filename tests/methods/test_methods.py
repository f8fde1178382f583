import numpy as np

from pdfewshot.methods import PixelNearestNeighbour, PrototypeClassifier


def test_prototype_scores_are_cosines_to_class_means() -> None:
    support = np.array([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.2, 1.0]])
    method = PrototypeClassifier()
    method.fit(support, np.array([0, 0, 1, 1]), 2)
    queries = np.array([[0.9, 0.1], [0.0, 3.0]])
    np.testing.assert_array_equal(method.predict(queries), [0, 1])
    means = np.array([[1.0, 0.1], [0.1, 1.0]])
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        means / np.linalg.norm(means, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(method.scores(queries), expected, atol=1e-12)


def test_nn_pixels_takes_the_nearest_single_image_not_the_mean() -> None:
    # class 0 has one image right next to the query and one far away; class 1's mean is closer
    support = np.array([[0.0, 0.0], [10.0, 10.0], [2.0, 2.0], [2.5, 2.5]], dtype=np.float32)
    method = PixelNearestNeighbour()
    method.fit(support, np.array([0, 0, 1, 1]), 2)
    assert method.predict(np.array([[0.5, 0.5]], dtype=np.float32)).tolist() == [0]
    np.testing.assert_allclose(method.scores(np.array([[0.0, 0.0]], dtype=np.float32)), [[0.0, -np.sqrt(8)]], atol=1e-5)


def test_episode_scores_default_loops_over_episodes() -> None:
    support = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    labels = np.array([[0, 1], [0, 1]])
    queries = np.array([[[1.0, 0.1]], [[1.0, 0.1]]])
    scores = PrototypeClassifier().episode_scores(support, labels, 2, queries)
    assert scores.shape == (2, 1, 2)
    assert scores[0].argmax() == 0 and scores[1].argmax() == 1


def test_pair_head_classifier_takes_the_most_similar_support_image() -> None:
    import paddle

    from pdfewshot.methods.pair import PairHeadClassifier
    from pdfewshot.nets.pair_head import PairHead

    head = PairHead(2)
    head.weigh.weight.set_value(paddle.to_tensor([[-1.0], [-1.0]]))  # score = -L1 distance
    head.weigh.bias.set_value(paddle.to_tensor([0.0]))
    method = PairHeadClassifier(head)
    support = np.array([[0.0, 0.0], [9.0, 9.0], [2.0, 2.0]], dtype=np.float32)
    method.fit(support, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(method.scores(np.array([[8.0, 8.0]], dtype=np.float32)), [[-2.0, -12.0]])
    assert method.predict(np.array([[1.4, 1.4], [0.4, 0.4]], dtype=np.float32)).tolist() == [1, 0]


def _on_circle(degrees: np.ndarray) -> np.ndarray:
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_transductive_moves_the_boundary_into_the_gap_between_query_clusters() -> None:
    from pdfewshot.methods import TransductiveFinetuneClassifier

    # Queries of class 0 around 20 degrees, of class 1 around 70; the one support image of each lies
    # at 55 and 85, so the prototypes split at 70 and take class 1's lower queries for class 0.
    spread = np.linspace(-6.0, 6.0, 13)
    queries = _on_circle(np.concatenate([20.0 + spread, 70.0 + spread]))
    truth = np.repeat([0, 1], len(spread))
    support, labels = _on_circle(np.array([55.0, 85.0])), np.array([0, 1])
    prototype = PrototypeClassifier()
    prototype.fit(support, labels, 2)
    transductive = TransductiveFinetuneClassifier(steps=100, lr=0.01, entropy_weight=1.0)
    transductive.fit(support, labels, 2)
    prototype_accuracy = np.mean(prototype.predict(queries) == truth)
    transductive_accuracy = np.mean(transductive.predict(queries) == truth)
    assert prototype_accuracy < 0.9 and transductive_accuracy == 1.0


def test_transductive_without_its_entropy_term_is_finetune_without_entropy() -> None:
    from pdfewshot.methods import FinetuneClassifier, TransductiveFinetuneClassifier

    rng = np.random.default_rng(0)
    support, queries = rng.normal(size=(2, 6, 5)), rng.normal(size=(2, 9, 5))
    labels = np.array([[0, 0, 1, 1, 2, 2]] * 2)
    plain = FinetuneClassifier(steps=20, entropy_weight=0.0).episode_scores(support, labels, 3, queries)
    blind = TransductiveFinetuneClassifier(steps=20, entropy_weight=0.0).episode_scores(support, labels, 3, queries)
    np.testing.assert_allclose(blind, plain, atol=1e-5)

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

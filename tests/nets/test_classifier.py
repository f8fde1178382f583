import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.nets.classifier import CosineClassifier, prototypes


def test_prototypes_are_normalised_class_means() -> None:
    embeddings = paddle.to_tensor(np.array([[1, 0], [0, 1], [3, 0], [4, 0]], dtype="float32"))
    labels = paddle.to_tensor([0, 0, 1, 1])
    result = prototypes(embeddings, labels, 2).numpy()
    np.testing.assert_allclose(result, np.array([[2**-0.5, 2**-0.5], [1.0, 0.0]]), atol=1e-6)


def test_classifier_starts_at_prototypes_and_classifies_as_nearest_prototype() -> None:
    rng = np.random.default_rng(0)
    support = F.normalize(paddle.to_tensor(rng.normal(size=(12, 16)).astype("float32")), axis=1)
    labels = paddle.to_tensor(np.repeat(np.arange(4), 3))
    protos = prototypes(support, labels, 4)
    classifier = CosineClassifier.from_prototypes(protos, scale=10.0)
    np.testing.assert_allclose(classifier.weight.numpy(), F.normalize(protos, axis=1).numpy(), atol=1e-6)
    np.testing.assert_array_equal(classifier.bias.numpy(), np.zeros(4))

    queries = F.normalize(paddle.to_tensor(rng.normal(size=(50, 16)).astype("float32")), axis=1)
    nearest = (queries @ protos.t()).argmax(axis=1).numpy()
    np.testing.assert_array_equal(classifier(queries).argmax(axis=1).numpy(), nearest)
    np.testing.assert_allclose(classifier(queries).numpy(), 10.0 * (queries @ protos.t()).numpy(), atol=1e-5)


def test_bias_shifts_logits() -> None:
    classifier = CosineClassifier.from_prototypes(paddle.eye(3), scale=1.0)
    classifier.bias.set_value(paddle.to_tensor([0.0, 5.0, 0.0]))
    query = paddle.to_tensor([[1.0, 0.0, 0.0]])
    assert classifier(query).argmax(axis=1).item() == 1

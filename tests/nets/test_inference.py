import numpy as np
import paddle
import pytest

from pdfewshot.nets import inference as fast
from pdfewshot.nets.embedding import EmbeddingNet, embed
from pdfewshot.nets.inference import InferenceEmbedder, run_fast


@pytest.mark.parametrize(("backbone", "channels"), [("conv4", 1), ("resnet18", 3)])
def test_inference_predictor_gives_the_eager_embeddings(backbone: str, channels: int) -> None:
    paddle.seed(0)
    net = EmbeddingNet(backbone, channels, 8, 16)
    images = np.random.default_rng(0).integers(0, 256, size=(37, 16, 16, channels), dtype=np.uint8)
    eager = embed(net, images).numpy()
    predictor = InferenceEmbedder(net, channels, 16)
    np.testing.assert_allclose(predictor(images, batch_size=10), eager, atol=1e-5)
    assert net.training  # left as found: a new layer is in training mode


def test_run_fast_switches_path_by_count(monkeypatch: pytest.MonkeyPatch) -> None:
    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 8, 16)
    images = np.random.default_rng(1).integers(0, 256, size=(12, 16, 16, 1), dtype=np.uint8)
    built = []
    original = InferenceEmbedder.__init__

    def spy(self: InferenceEmbedder, *args: object, **kwargs: object) -> None:
        built.append(True)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(InferenceEmbedder, "__init__", spy)
    small = run_fast(net, images)
    assert built == []
    monkeypatch.setattr(fast, "FAST_PATH_MIN_PIXELS", 10 * 16 * 16)
    large = run_fast(net, images)
    assert built == [True]
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_a_predictor_gives_its_eager_logits_through_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A predictor (embedding + cosine classifier) through the inference path gives the eager logits.
    from pdfewshot.nets.classifier import CosineClassifier, Predictor

    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 8, 16)
    predictor = Predictor(net, CosineClassifier.from_prototypes(paddle.randn([3, 8]), 10.0))
    images = np.random.default_rng(2).integers(0, 256, size=(12, 16, 16, 1), dtype=np.uint8)
    eager = run_fast(predictor, images)
    monkeypatch.setattr(fast, "FAST_PATH_MIN_PIXELS", 10 * 16 * 16)
    np.testing.assert_allclose(run_fast(predictor, images), eager, atol=1e-4)


def test_the_fast_path_leaves_a_training_network_trainable() -> None:
    """Validation during pretraining may embed through paddle.inference: the eager network must train on."""
    import paddle

    from pdfewshot.nets.embedding import EmbeddingNet, to_input
    from pdfewshot.nets.inference import InferenceEmbedder

    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 8, 16)
    net.train()
    images = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 1), dtype=np.uint8)
    InferenceEmbedder(net, 1, 16)(images)
    assert net.training
    optimizer = paddle.optimizer.Adam(parameters=net.parameters())
    before = net.head.weight.numpy().copy()
    net(to_input(images)).sum().backward()
    optimizer.step()
    assert not np.array_equal(before, net.head.weight.numpy())

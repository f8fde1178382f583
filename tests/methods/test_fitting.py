import numpy as np
import paddle
import paddle.nn.functional as F

from pdfewshot.methods import FinetuneClassifier
from pdfewshot.methods.fitting import FitSettings, classifier_loss, fit_episodes, fit_on_features


def random_episodes(episodes: int, way: int, shot: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(episodes, way, dim))
    labels = np.tile(np.repeat(np.arange(way), shot), (episodes, 1))
    features = np.take_along_axis(centres, labels[:, :, None], axis=1) + rng.normal(size=(episodes, way * shot, dim))
    return features.astype(np.float32), labels


def test_batched_fit_equals_fitting_each_episode_alone() -> None:
    features, labels = random_episodes(episodes=3, way=4, shot=2)
    settings = FitSettings(steps=20, lr=0.05, entropy_weight=0.1, scale=10)
    weight, bias, _ = fit_episodes(paddle.to_tensor(features), labels, 4, settings=settings)
    for e in range(3):
        alone, _ = fit_on_features(paddle.to_tensor(features[e]), labels[e], 4, settings=settings)
        np.testing.assert_allclose(F.normalize(alone.weight, axis=1).numpy(), weight[e].numpy(), atol=2e-5)
        np.testing.assert_allclose(alone.bias.numpy(), bias[e].numpy(), atol=2e-5)


def test_finetune_lowers_the_support_loss() -> None:
    features, labels = random_episodes(episodes=1, way=5, shot=1, seed=1)
    support = paddle.to_tensor(features[0])
    seen: list[float] = []
    settings = FitSettings(steps=50, lr=0.05, entropy_weight=0.1, scale=10)
    _, losses = fit_on_features(support, labels[0], 5, settings=settings, on_step=seen.append)
    assert losses[-1] < 0.5 * losses[0]
    assert seen == losses  # the progress callback sees every step's loss


def test_zero_steps_is_the_prototype_classifier() -> None:
    features, labels = random_episodes(episodes=1, way=3, shot=3, seed=2)
    settings = FitSettings(steps=0, lr=0.05, entropy_weight=0.1, scale=10)
    classifier, losses = fit_on_features(paddle.to_tensor(features[0]), labels[0], 3, settings=settings)
    assert losses == []
    means = np.stack([features[0][labels[0] == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(
        classifier.weight.numpy(), means / np.linalg.norm(means, axis=1, keepdims=True), atol=1e-5
    )


def test_entropy_term_adds_weighted_entropy() -> None:
    logits = paddle.to_tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = paddle.to_tensor([0, 1])
    ce = F.cross_entropy(logits, labels).item()
    probabilities = F.softmax(logits, axis=1).numpy()
    entropy = float(-(probabilities * np.log(probabilities)).sum(1).mean())
    assert np.isclose(classifier_loss(logits, labels, 0.0).item(), ce)
    assert np.isclose(classifier_loss(logits, labels, 0.5).item(), ce + 0.5 * entropy, rtol=1e-5)


def test_method_batched_scores_match_one_by_one() -> None:
    features, labels = random_episodes(episodes=2, way=3, shot=2, seed=3)
    queries = features[:, ::2]
    method = FinetuneClassifier(steps=10, lr=0.05)
    batched = method.episode_scores(features, labels, 3, queries)
    for e in range(2):
        method.fit(features[e], labels[e], 3)
        np.testing.assert_allclose(method.scores(queries[e]), batched[e], atol=1e-4)

"""A frozen backbone's features computed once: the head trained on them learns what it learns on pixels."""

import numpy as np
import paddle

from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.train.frozen_trunk import FeatureSet, HeadOverFeatures, as_features, embed_features
from pdfewshot.train.loop import LoopSettings, Phase, train
from pdfewshot.train.resume import Position
from pdfewshot.train.tasks import TASKS, SoftmaxTask
from tests.train.test_tasks import base_images


def frozen_network() -> EmbeddingNet:
    paddle.seed(0)
    net = EmbeddingNet("conv4", 1, 8, 16)
    net.freeze_backbone()
    return net


def test_the_head_over_features_reads_what_the_network_reads_from_pixels() -> None:
    net, base = frozen_network(), base_images(per_class=6)
    features = FeatureSet.of(net, base)
    assert features.images.shape == (len(base), net.backbone.feature_dim) and features.num_classes == base.num_classes
    net.eval()
    from_pixels = net.project(to_input(base.images)).numpy()
    np.testing.assert_allclose(embed_features(HeadOverFeatures(net), features.images), from_pixels, atol=1e-5)


def test_training_the_head_on_features_is_training_it_on_pixels_with_the_backbone_frozen() -> None:
    base = base_images(per_class=6)
    settings = LoopSettings(batch_size=4, freeze_backbone=True, lr=3e-3)
    runs = []
    for on_features in (False, True):
        net = frozen_network()
        trained = HeadOverFeatures(net) if on_features else net
        rows = FeatureSet.of(net, base) if on_features else base
        phases = [Phase(SoftmaxTask(trained, rows), 1, 2), Phase(TASKS["cosine-mse"](trained, rows), 1, 3)]
        position = Position()
        train(trained, phases, settings, position, prepare=as_features if on_features else to_input)
        runs.append((position.losses, {k: v.numpy() for k, v in net.state_dict().items()}))
    (pixel_losses, pixel_weights), (feature_losses, feature_weights) = runs
    np.testing.assert_allclose(feature_losses, pixel_losses, rtol=1e-4)
    assert pixel_losses[0] != pixel_losses[-1]  # the head did learn
    for key, value in pixel_weights.items():  # the same head, the untouched backbone
        np.testing.assert_allclose(feature_weights[key], value, atol=1e-5, err_msg=key)

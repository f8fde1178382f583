"""Each training task computes its loss from a batch of its own sampler, and gradients reach the network."""

import numpy as np
import paddle
import pytest

from pdfewshot.config import LOSS_NAMES
from pdfewshot.data.batches import DistortingCollate
from pdfewshot.data.imageset import ImageSet
from pdfewshot.nets.embedding import EmbeddingNet, to_input
from pdfewshot.train.distributed import SINGLE_PROCESS
from pdfewshot.train.tasks import TASKS, SoftmaxTask


def base_images(per_class: int = 5) -> ImageSet:
    """Four classes of ``per_class`` random 16 px greyscale images (seeded)."""
    rng = np.random.default_rng(0)
    count = 4 * per_class
    labels = np.repeat(np.arange(4), per_class)
    images = rng.integers(0, 256, size=(count, 16, 16, 1), dtype=np.uint8)
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(4)), tuple(f"k{i}" for i in range(count)))


def test_the_registry_lists_the_loss_names_of_the_config() -> None:
    assert tuple(TASKS) == LOSS_NAMES


@pytest.mark.parametrize("loss", sorted(TASKS))
def test_every_task_gives_a_finite_loss_whose_gradient_reaches_the_network(loss: str) -> None:
    paddle.seed(0)
    base = base_images()
    net = EmbeddingNet("conv4", 1, 8, 16, pair_head=loss == "pair-bce")
    task = TASKS[loss](net, base)
    sampler = task.sampler(batch_size=4, steps=2, seed=0, ranks=SINGLE_PROCESS)
    sampler.set_epoch(0)
    batch = next(iter(task.loader(sampler, DistortingCollate("none", task.image_fields, 0, 0))))
    value = task(batch, to_input)
    assert value.shape == [] and np.isfinite(value.item())
    value.backward()
    gradient = net.head.weight.grad
    assert gradient is not None and float(paddle.abs(gradient).sum()) > 0
    assert task.steps_per_epoch(4) == -(-20 // (task.batch_scale * 4))


def test_only_the_softmax_task_adds_a_layer_and_it_covers_the_base_classes() -> None:
    base = base_images()
    net = EmbeddingNet("conv4", 1, 8, 16)
    head = SoftmaxTask(net, base).extra_layers()["softmax_head"]
    assert head.weight.shape == [8, 4]
    assert all(not TASKS[name](net, base).extra_layers() for name in TASKS if name not in ("ce", "proto"))


def test_the_episode_task_learns_its_scale_and_reads_groups_from_folders() -> None:
    base = base_images()
    foldered = ImageSet(base.images, base.labels, ("a/x", "a/y", "b/x", "b/x@rot90"), base.keys)
    task = TASKS["proto"](EmbeddingNet("conv4", 1, 8, 16), foldered)
    assert task.groups.tolist() == [0, 0, 1, 2]
    assert task.extra_layers()["episode_scale"].value.item() == 10.0
    assert TASKS["proto"](EmbeddingNet("conv4", 1, 8, 16), base).groups.tolist() == [0, 0, 0, 0]


def test_margins_default_per_loss_and_can_be_given() -> None:
    net, base = EmbeddingNet("conv4", 1, 8, 16), base_images()
    assert TASKS["triplet"](net, base).margin == 0.2 and TASKS["contrastive"](net, base).margin == 1.0
    assert TASKS["triplet"](net, base, 0.5).margin == 0.5

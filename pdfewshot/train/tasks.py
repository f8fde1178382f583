"""Training tasks: each kind of pretraining phase as a layer that computes its loss from a batch (the
shape of timm's ``TrainingTask``).

A task owns the batches it trains on (its sampler and dataset over the base images), the layers it
adds to the network for training (the softmax head), and its loss. A new loss is one class here and
one entry in :data:`TASKS`; the loop (:mod:`pdfewshot.train.loop`) knows nothing of any of them.
"""

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.config import LOSS_NAMES
from pdfewshot.data.batches import DistortingCollate, StepDataset, StepSampler
from pdfewshot.data.imageset import LabelledRows
from pdfewshot.data.sampling import (
    EpisodeBatchSampler,
    LabelledImages,
    PairBatchSampler,
    PairDataset,
    ShuffledBatchSampler,
    TripleBatchSampler,
    TripleDataset,
    class_groups,
)
from pdfewshot.train.distributed import Ranks
from pdfewshot.train.frozen_trunk import TrainedNet
from pdfewshot.train.losses import contrastive, cosine_mse_triples, pair_bce, prototype_episode, triplet_margin

# a batch's rows as a tensor (uint8 images, already distorted by the loader; or features) -> the network's input
Prepare = Callable[[paddle.Tensor], paddle.Tensor]
Sampler = TripleBatchSampler | ShuffledBatchSampler  # EpisodeBatchSampler and PairBatchSampler are triple samplers


class TrainingTask(nn.Layer):  # type: ignore[misc]
    """One phase's loss over batches of the base images.

    ``images_per_item`` is how many images a batch draws per ``batch_size`` item for an epoch to be one
    pass over the base images (triples and pairs count their anchors; softmax batches take
    ``3 * batch_size`` images, as many as a batch of triples holds).
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # the batches it takes: "softmax", "triples", "pairs" or "episodes" (names its logged loss)
    batch_scale: ClassVar[int] = 1  # items a batch holds per --batch-size
    image_fields: ClassVar[int] = 1  # leading fields of a batch that are images, fed to the network together

    def __init__(self, net: TrainedNet, base: LabelledRows, margin: float | None = None) -> None:
        super().__init__()
        self.net = net
        self.base = base

    def extra_layers(self) -> dict[str, nn.Layer]:
        """The layers this task trains besides the network, by a stable name (saved with --save-every)."""
        return {}

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches for one pass over the base images."""
        return max(1, -(-len(self.base) // (self.batch_scale * batch_size)))

    def sampler(self, batch_size: int, steps: int, seed: int, ranks: Ranks) -> Sampler:
        raise NotImplementedError

    def dataset(self) -> paddle.io.Dataset:
        raise NotImplementedError

    def loader(self, sampler: Sampler, collate: DistortingCollate, workers: int = 0) -> paddle.io.DataLoader:
        """Batches of the sampler's items, stacked and distorted by ``collate`` in ``workers`` processes
        (none: in this one)."""
        return paddle.io.DataLoader(
            StepDataset(self.dataset()), batch_sampler=StepSampler(sampler), collate_fn=collate,
            num_workers=workers, persistent_workers=workers > 0,
        )  # fmt: skip

    def forward(self, batch: list[paddle.Tensor], prepare: Prepare) -> paddle.Tensor:
        raise NotImplementedError


class SoftmaxTask(TrainingTask):
    """Softmax cross-entropy over the base classes through a linear layer that is dropped afterwards;
    only the embedding it shaped is kept (the ``ce`` loss, and the warm-up before any other)."""

    name = "ce"
    kind = "softmax"
    batch_scale = 3

    def __init__(self, net: TrainedNet, base: LabelledRows, margin: float | None = None) -> None:
        super().__init__(net, base)
        self.head = nn.Linear(net.head.weight.shape[1], base.num_classes)

    def extra_layers(self) -> dict[str, nn.Layer]:
        return {"softmax_head": self.head}

    def sampler(self, batch_size: int, steps: int, seed: int, ranks: Ranks) -> Sampler:
        return ShuffledBatchSampler(len(self.base), 3 * batch_size, steps, seed, ranks.rank, ranks.world_size)

    def dataset(self) -> paddle.io.Dataset:
        return LabelledImages(self.base.images, self.base.labels)

    def forward(self, batch: list[paddle.Tensor], prepare: Prepare) -> paddle.Tensor:
        images, labels = batch
        return F.cross_entropy(self.head(self.net.project(prepare(images))), labels)


class TripleTask(TrainingTask):
    """Batches of (anchor, positive, negative) triples; subclasses give the loss of their embeddings."""

    kind = "triples"
    image_fields = 3

    def sampler(self, batch_size: int, steps: int, seed: int, ranks: Ranks) -> Sampler:
        return TripleBatchSampler(self.base.labels, batch_size, steps, seed, ranks.rank)

    def dataset(self) -> paddle.io.Dataset:
        return TripleDataset(self.base.images)

    def forward(self, batch: list[paddle.Tensor], prepare: Prepare) -> paddle.Tensor:
        anchors, positives, negatives = paddle.split(self.net.project(prepare(paddle.concat(batch))), 3)
        return self.triple_loss(anchors, positives, negatives)

    def triple_loss(self, anchors: paddle.Tensor, positives: paddle.Tensor, negatives: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError


class CosineMseTask(TripleTask):
    """[cos(a, p), cos(a, n)] -> [1, 0] by mean squared error."""

    name = "cosine-mse"

    def triple_loss(self, anchors: paddle.Tensor, positives: paddle.Tensor, negatives: paddle.Tensor) -> paddle.Tensor:
        return cosine_mse_triples(anchors, positives, negatives)


class TripletTask(TripleTask):
    """max(0, d(a, p) - d(a, n) + margin) (Schroff et al. 2015); margin 0.2 unless given."""

    name = "triplet"

    def __init__(self, net: TrainedNet, base: LabelledRows, margin: float | None = None) -> None:
        super().__init__(net, base)
        self.margin = 0.2 if margin is None else margin

    def triple_loss(self, anchors: paddle.Tensor, positives: paddle.Tensor, negatives: paddle.Tensor) -> paddle.Tensor:
        return triplet_margin(anchors, positives, negatives, self.margin)


class PairTask(TrainingTask):
    """Batches of (first, second, same) pairs, half of them of one class."""

    kind = "pairs"
    image_fields = 2

    def sampler(self, batch_size: int, steps: int, seed: int, ranks: Ranks) -> Sampler:
        return PairBatchSampler(self.base.labels, batch_size, steps, seed, ranks.rank)

    def dataset(self) -> paddle.io.Dataset:
        return PairDataset(self.base.images)

    def forward(self, batch: list[paddle.Tensor], prepare: Prepare) -> paddle.Tensor:
        firsts, seconds, same = batch
        first, second = paddle.split(self.net.project(prepare(paddle.concat([firsts, seconds]))), 2)
        return self.pair_loss(first, second, same)

    def pair_loss(self, first: paddle.Tensor, second: paddle.Tensor, same: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError


class ContrastiveTask(PairTask):
    """Hadsell et al. 2006's contrastive loss; margin 1.0 unless given."""

    name = "contrastive"

    def __init__(self, net: TrainedNet, base: LabelledRows, margin: float | None = None) -> None:
        super().__init__(net, base)
        self.margin = 1.0 if margin is None else margin

    def pair_loss(self, first: paddle.Tensor, second: paddle.Tensor, same: paddle.Tensor) -> paddle.Tensor:
        return contrastive(first, second, same, self.margin)


class PairBceTask(PairTask):
    """Koch et al. 2015: binary cross-entropy of the network's learnt pair head (it needs one)."""

    name = "pair-bce"

    def pair_loss(self, first: paddle.Tensor, second: paddle.Tensor, same: paddle.Tensor) -> paddle.Tensor:
        assert self.net.pair_head is not None, "pair-bce trains the network's pair head"
        return pair_bce(self.net.pair_head(first, second), same)


class EpisodeTask(TrainingTask):
    """Prototypical networks' episodes (Snell et al. 2017), one-shot: ``batch_size`` classes, each with a
    support image (its prototype) and two queries, scored by cosine times a learnt scale (starting at
    :data:`EPISODE_SCALE`). An episode's classes are taken a folder (an alphabet) at a time
    (:class:`EpisodeBatchSampler`)."""

    name = "proto"
    kind = "episodes"
    batch_scale = 3
    image_fields = 3

    def __init__(self, net: TrainedNet, base: LabelledRows, margin: float | None = None) -> None:
        super().__init__(net, base)
        names = getattr(base, "class_names", ())
        self.groups = class_groups(names) if len(names) == base.num_classes else np.zeros(base.num_classes, "int64")
        self.scale = EpisodeScale()

    def extra_layers(self) -> dict[str, nn.Layer]:
        return {"episode_scale": self.scale}

    def sampler(self, batch_size: int, steps: int, seed: int, ranks: Ranks) -> Sampler:
        return EpisodeBatchSampler(self.base.labels, self.groups, batch_size, steps, seed, ranks.rank)

    def dataset(self) -> paddle.io.Dataset:
        return TripleDataset(self.base.images)

    def forward(self, batch: list[paddle.Tensor], prepare: Prepare) -> paddle.Tensor:
        supports, *queries = paddle.split(self.net.project(prepare(paddle.concat(batch))), 3)
        return prototype_episode(supports, paddle.concat(queries), self.scale.value)


EPISODE_SCALE = 10.0  # cosines times 10 give a softmax neither flat nor saturated at the start


class EpisodeScale(nn.Layer):  # type: ignore[misc]
    """The learnt temperature of :class:`EpisodeTask`'s cosine logits."""

    def __init__(self) -> None:
        super().__init__()
        self.value = self.create_parameter([1], default_initializer=nn.initializer.Constant(EPISODE_SCALE))


TASKS: dict[str, type[TrainingTask]] = {
    task.name: task for task in (CosineMseTask, TripletTask, ContrastiveTask, PairBceTask, SoftmaxTask, EpisodeTask)
}
assert tuple(TASKS) == LOSS_NAMES, "the registry and config.LossName list the same losses"

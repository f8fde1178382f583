"""Data-parallel pretraining under ``python -m paddle.distributed.launch``.

The launcher starts one process per device and tells each its rank through the environment. Each
process draws its own batches (its sampler and distortions are seeded with its rank too) and takes
its share of every epoch's steps; ``paddle.DataParallel`` averages the gradients, so all processes
keep the same weights. Only rank 0 shows progress and writes files.
"""

import os
from dataclasses import dataclass

import paddle

from pdfewshot.errors import PdfewshotError


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``world_size`` training processes (0 of 1 when not launched)."""

    rank: int = 0
    world_size: int = 1

    @property
    def writer(self) -> bool:
        """Whether this process writes checkpoints and shows progress."""
        return self.rank == 0

    def share(self, steps: int) -> int:
        """Steps per process for ``steps`` in all: an epoch stays one pass over the data."""
        return max(1, -(-steps // self.world_size))


SINGLE_PROCESS = Ranks()


def launched_ranks() -> Ranks:
    """The rank and world size that ``paddle.distributed.launch`` put in the environment."""
    try:
        rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
        world_size = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    except ValueError:
        raise PdfewshotError("PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM: not whole numbers") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise PdfewshotError(f"PADDLE_TRAINER_ID {rank} of PADDLE_TRAINERS_NUM {world_size}: not a valid rank")
    return Ranks(rank, world_size)


def start(ranks: Ranks) -> None:
    """Joins the process group when there is more than one process (once per process)."""
    if ranks.world_size > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()


def data_parallel(layer: paddle.nn.Layer, ranks: Ranks) -> paddle.nn.Layer:
    """``layer`` itself for one process; else wrapped so backward averages gradients over processes.

    Unused parameters are allowed: a pair head sits idle during a softmax warm-up.
    """
    if ranks.world_size == 1:
        return layer
    return paddle.DataParallel(layer, find_unused_parameters=True)


def wait_for_all(ranks: Ranks) -> None:
    """A barrier, so no process finishes before rank 0 has written the checkpoint."""
    if ranks.world_size > 1:
        paddle.distributed.barrier()

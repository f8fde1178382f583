"""Data-parallel pretraining: processes that ``pretrain`` starts itself on a CPU with several cores, or
that ``python -m paddle.distributed.launch`` starts.

Each process is told its rank through the environment and draws its own batches (its sampler and
distortions are seeded with its rank too); ``paddle.DataParallel`` averages the gradients, so all
processes keep the same weights. Only rank 0 shows progress, validates and writes files; decisions
that all must take together (stopping early) are rank 0's, sent to the others.

Under the launcher each process takes a whole batch and its share of every epoch's steps. The
processes ``pretrain`` starts itself (:func:`run_processes`) split every batch instead and take every
step: the same training as one process, with the batch computed by several (on a 2-core CPU, two
processes of one thread each compute a step faster than one process of two threads).
"""

import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import Any

import paddle

from pdfewshot.errors import PdfewshotError
from pdfewshot.runtime import THREADS_VARIABLE

SPLIT_BATCHES_VARIABLE = "PDFEWSHOT_SPLIT_BATCHES"  # set for the processes pretrain starts itself


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``world_size`` training processes (0 of 1 when not launched)."""

    rank: int = 0
    world_size: int = 1
    split_batches: bool = False  # each process takes a part of every batch (pretrain's own processes)

    @property
    def writer(self) -> bool:
        """Whether this process writes checkpoints, validates and shows progress."""
        return self.rank == 0

    def share(self, steps: int) -> int:
        """Steps per process for ``steps`` in all: an epoch stays one pass over the data."""
        return steps if self.split_batches else max(1, -(-steps // self.world_size))

    def batch(self, batch_size: int) -> int:
        """This process's part of a batch of ``batch_size``."""
        return batch_size // self.world_size if self.split_batches else batch_size


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
    return Ranks(rank, world_size, world_size > 1 and os.environ.get(SPLIT_BATCHES_VARIABLE) == "1")


def start(ranks: Ranks) -> None:
    """Joins the process group when there is more than one process (once per process)."""
    if ranks.world_size > 1 and not paddle.distributed.is_initialized():
        with redirect_stderr(io.StringIO()):  # Paddle lists its changed flags there: nothing for the user
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


def agree(flag: bool, ranks: Ranks) -> bool:
    """Rank 0's ``flag``, in every process (for a decision they must all take at the same step)."""
    if ranks.world_size == 1:
        return flag
    decided = paddle.to_tensor([int(flag)], dtype="int32")
    paddle.distributed.broadcast(decided, src=0)
    return bool(decided.item())


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_processes(target: Callable[..., None], args: tuple[Any, ...], processes: int, threads_each: int) -> None:
    """Runs ``target(*args)`` in ``processes`` new processes that split every batch between them (gloo on
    CPU), each with ``threads_each`` threads; returns when all have finished. When one fails, the others
    are stopped and an exception says which failed (``target`` reports its own errors to its caller)."""
    values = {SPLIT_BATCHES_VARIABLE: "1", THREADS_VARIABLE: str(threads_each)}
    with _environment(values), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CPUONLY mode.*")  # that is the point here
        logging.disable(logging.INFO)  # the free ports found, one line per start
        try:
            paddle.distributed.spawn(target, args=args, nprocs=processes, backend="gloo")
        finally:
            logging.disable(logging.NOTSET)

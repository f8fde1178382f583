import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdfewshot.data.sampling import ShuffledBatchSampler, TripleBatchSampler
from pdfewshot.errors import PdfewshotError
from pdfewshot.runtime import default_threads
from pdfewshot.train.distributed import Ranks, launched_ranks
from tests.conftest import make_nested


def test_ranks_come_from_the_launchers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PADDLE_TRAINER_ID", raising=False)
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    assert launched_ranks() == Ranks(0, 1) and launched_ranks().writer
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    assert launched_ranks() == Ranks(1, 2) and not launched_ranks().writer
    monkeypatch.setenv("PADDLE_TRAINER_ID", "2")
    with pytest.raises(PdfewshotError, match="PADDLE_TRAINER_ID 2 of PADDLE_TRAINERS_NUM 2: not a valid rank"):
        launched_ranks()


def test_each_process_takes_its_share_of_steps_and_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [Ranks(0, world).share(75) for world in (1, 2, 4)] == [75, 38, 19]
    assert Ranks(0, 8).share(3) == 1
    monkeypatch.setattr("pdfewshot.runtime.available_cores", lambda: 16)
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "4")
    assert default_threads() == 4


def test_shuffled_batches_are_split_between_processes_without_overlap() -> None:
    alone = ShuffledBatchSampler(count=40, batch_size=4, steps=10, seed=3)
    halves = [ShuffledBatchSampler(40, 4, 5, 3, rank=rank, world_size=2) for rank in (0, 1)]
    for sampler in (alone, *halves):
        sampler.set_epoch(2)
    first, second = (list(sampler) for sampler in halves)
    assert first == list(alone)[0::2] and second == list(alone)[1::2]
    assert sorted(np.concatenate(first + second).tolist()) == list(range(40))  # one pass, each index once


def test_triples_of_other_ranks_come_from_their_own_stream() -> None:
    labels = np.repeat(np.arange(6), 5)
    batches = {}
    for rank in (0, 1):
        sampler = TripleBatchSampler(labels, batch_size=8, steps=2, seed=0, rank=rank)
        batches[rank] = list(sampler)
    assert batches[0] != batches[1]
    assert batches[0] == list(TripleBatchSampler(labels, batch_size=8, steps=2, seed=0))  # rank 0: as alone


def test_pretrain_runs_data_parallel_in_two_cpu_processes(tmp_path: Path) -> None:
    data = make_nested(tmp_path / "data", alphabets=3, characters=3, per_class=4)
    out = tmp_path / "models" / "m.pdparams"
    pdfewshot = Path(sys.executable).with_name("pdfewshot")
    command = [
        sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "log"),
        str(pdfewshot), "pretrain", "--data", str(data), "--out", str(out), "--backbone", "conv4",
        "--image-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "5",
        "--warmup-epochs", "1", "--novel-fraction", "0.34", "--save-every", "2", "--loss", "cosine-mse",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    logs = {rank: (tmp_path / "log" / f"workerlog.{rank}").read_text() for rank in (0, 1)}
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:] + logs[1][-3000:]
    meta = json.loads(out.with_suffix(".json").read_text())
    # 5 steps an epoch shared by 2 processes: 3 each, for 1 warm-up and 2 triple epochs.
    assert meta["training"]["processes"] == 2 and meta["training"]["steps"] == 9
    assert f"wrote {out}" in logs[0] and "wrote" not in logs[1]  # only rank 0 writes and reports
    written = {path.name for path in out.parent.iterdir()} - {"m.loss.png"}  # the picture needs matplotlib
    assert written == {"m.pdparams", "m.json", "m.split.json"}  # and no resume state left behind


def test_processes_pretrain_starts_split_every_batch_and_take_every_step() -> None:
    split = Ranks(1, 2, split_batches=True)
    assert split.share(75) == 75 and split.batch(64) == 32
    assert Ranks(1, 2).batch(64) == 64  # launched: a whole batch each, a share of the steps


def test_how_many_processes_pretrain_trains_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdfewshot.config import PretrainConfig
    from pdfewshot.stages.pretrain import training_processes

    monkeypatch.setattr("pdfewshot.stages.pretrain.thread_count", lambda: 2)
    alone = Ranks()
    assert training_processes(PretrainConfig(), alone) == 2  # the default run: one process per core
    assert training_processes(PretrainConfig(epochs=1, steps_per_epoch=5, warmup_epochs=0), alone) == 1  # short
    assert training_processes(PretrainConfig(processes=3), alone) == 3  # asked for
    assert training_processes(PretrainConfig(batch_size=16), alone) == 1  # 16 images a process at least
    assert training_processes(PretrainConfig(), Ranks(0, 2)) == 1  # launched: the launcher's processes
    monkeypatch.setattr("pdfewshot.stages.pretrain.thread_count", lambda: 1)
    assert training_processes(PretrainConfig(), alone) == 1


def test_pretrain_in_its_own_processes_is_seeded_validated_and_reports_errors(tmp_path: Path) -> None:
    import paddle

    from pdfewshot.config import PretrainConfig
    from pdfewshot.stages.pretrain import pretrain

    data = make_nested(tmp_path / "data", alphabets=3, characters=4, per_class=4)
    settings = dict(data=[str(data)], backbone="conv4", loss="ce", image_size=16, embedding_dim=8, batch_size=8,
                    epochs=2, steps_per_epoch=3, warmup_epochs=0, validation_fraction=0.2, validate_every=2,
                    processes=2, show_progress=False)  # fmt: skip
    weights = []
    for run in ("a", "b"):
        result = pretrain(PretrainConfig(out=tmp_path / run / "m.pdparams", **settings))  # type: ignore[arg-type]
        assert result.writer and len(result.losses) == 6  # every step, each process half of every batch
        meta = json.loads((tmp_path / run / "m.json").read_text())
        assert meta["training"]["processes"] == 2 and meta["config"]["processes"] == 2
        assert [step for step, *_ in meta["training"]["validations"]] == [0, 2, 4, 6]
        weights.append(paddle.load(str(tmp_path / run / "m.pdparams")))
    for name, value in weights[0].items():
        if hasattr(value, "numpy"):
            np.testing.assert_array_equal(value.numpy(), weights[1][name].numpy(), err_msg=name)

    (data / "alpha0" / "empty").mkdir()
    with pytest.raises(PdfewshotError, match="class folder alpha0/empty has no images"):
        pretrain(PretrainConfig(out=tmp_path / "c" / "m.pdparams", **settings))  # type: ignore[arg-type]
    assert not (tmp_path / "c").exists()

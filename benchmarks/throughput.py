"""Throughput of pdfewshot's network on this machine, beside PyTorch's on the same network.

    python benchmarks/throughput.py                # all sizes, PyTorch columns when torch is installed
    python benchmarks/throughput.py --sizes 28 --steps 5

Prints, in one run: training and inference images/s (ResNet18 -> 128-d, 1 channel, batch 64) at each
size for Paddle eager, Paddle through paddle.inference (pdfewshot's fast path) and PyTorch eager; a
training step fed by the triple sampler against one on a fixed in-memory batch; the time of one
20-way 5-shot fine-tune and of scoring 1350 test queries; and the peak resident memory of each stage
run as its own process. Starts with the CPU model and its vector extensions; ends with
`training ours/torch @28: R`, `training ours/torch @84: R`, `inference ours/torch @28: R` and
`inference ours/torch @84: R`, measured side by side in this run. A benchmark, not a test: it
measures, it asserts nothing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import pdfewshot  # noqa: F401  (sets the MKL code path before Paddle is imported)
from pdfewshot.config import PretrainConfig
from pdfewshot.runtime import cpu_info, set_paddle_threads, thread_count
from pdfewshot.stages.pretrain import training_processes
from pdfewshot.train.distributed import Ranks

VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16")


def describe_cpu() -> str:
    """The processor's model and which of the vector extensions that matter for speed it has."""
    info = cpu_info()
    flags = set(info.get("flags", "").split())
    extensions = ", ".join(name for name in VECTOR_EXTENSIONS if name in flags) or "none of " + "/".join(
        VECTOR_EXTENSIONS
    )
    mkl = os.environ.get("MKL_DEBUG_CPU_TYPE", "unset")
    model = f"{info.get('model name', 'unknown')} ({info.get('vendor_id', '?')})"
    return f"CPU: {model}; {extensions}; MKL_DEBUG_CPU_TYPE={mkl}"


BATCH = 64
EMBEDDING_DIM = 128


def rate(step: Callable[[], object], images_per_step: int, steps: int, warmup: int = 2) -> float:
    """Images per second over ``steps`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return images_per_step * steps / (time.perf_counter() - started)


def paddle_rates(size: int, steps: int, backbone: str = "resnet18", channels: int = 1) -> dict[str, float]:
    import paddle

    from pdfewshot.nets.embedding import EmbeddingNet, to_input
    from pdfewshot.nets.inference import InferenceEmbedder

    paddle.seed(0)
    net = EmbeddingNet(backbone, channels, EMBEDDING_DIM, size)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
    images = np.random.default_rng(0).integers(0, 256, size=(BATCH, size, size, channels), dtype=np.uint8)
    batch = to_input(images)

    def train_step() -> None:
        loss = net(batch).pow(2).sum(axis=1).mean()  # a stand-in loss: the cost is the network's
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    net.train()
    results = {"train": rate(train_step, BATCH, steps)}
    net.eval()
    with paddle.no_grad():
        results["infer eager"] = rate(lambda: net(batch), BATCH, steps * 2)
    fast = InferenceEmbedder(net, channels, size)
    results["infer fast"] = rate(lambda: fast(images, batch_size=BATCH), BATCH, steps * 2)
    return results


def _parallel_train_process(size: int, steps: int, folder: str) -> None:
    """One of the processes of :func:`parallel_train_rate`: its part of every batch, gradients averaged."""
    import paddle

    from pdfewshot.nets.embedding import EmbeddingNet, to_input
    from pdfewshot.train.distributed import data_parallel, launched_ranks, start

    set_paddle_threads()
    ranks = launched_ranks()
    start(ranks)
    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, EMBEDDING_DIM, size)
    trainer = data_parallel(net, ranks)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
    images = np.random.default_rng(ranks.rank).integers(
        0, 256, size=(ranks.batch(BATCH), size, size, 1), dtype=np.uint8
    )
    batch = to_input(images)

    def train_step() -> None:
        loss = trainer(batch).pow(2).sum(axis=1).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    net.train()
    measured = rate(train_step, BATCH, steps)  # images of the whole batch, all processes together
    if ranks.writer:
        (Path(folder) / "rate").write_text(str(measured))


def parallel_train_rate(size: int, steps: int, processes: int) -> float:
    """Training img/s as ``pretrain`` runs it in ``processes`` processes that split every batch."""
    from pdfewshot.train.distributed import run_processes

    with tempfile.TemporaryDirectory() as folder:
        run_processes(_parallel_train_process, (size, steps, folder), processes, max(1, thread_count() // processes))
        return float((Path(folder) / "rate").read_text())


def torch_resnet18() -> Any:
    """The same ResNet18 -> 128-d, one channel, in PyTorch (torchvision's BasicBlock layout; no CPU
    torchvision build here)."""
    import torch
    from torch import nn

    class Block(nn.Module):  # type: ignore[misc]
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.skip = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return torch.relu(self.body(x) + self.skip(x))

    layers: list[nn.Module] = [
        nn.Conv2d(1, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(channels, width, stride), Block(width, width, 1)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, EMBEDDING_DIM))


def torch_rates(size: int, steps: int) -> dict[str, float] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(thread_count())
    net = torch_resnet18()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = torch.rand(BATCH, 1, size, size) * 2 - 1

    def train_step() -> None:
        loss = nn.functional.normalize(net(batch), dim=1).pow(2).sum(dim=1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    net.train()
    results = {"train": rate(train_step, BATCH, steps)}
    net.eval()
    with torch.no_grad():
        results["infer eager"] = rate(lambda: net(batch), BATCH, steps * 2)
    return results


def sampler_fed_rate(steps: int) -> tuple[float, float]:
    """Training img/s at 28 px with batches from the triple sampler and DataLoader, and on one fixed batch."""
    import paddle

    from pdfewshot.data.sampling import TripleBatchSampler, TripleDataset
    from pdfewshot.nets.embedding import EmbeddingNet, to_input
    from pdfewshot.train.losses import cosine_mse_triples

    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, EMBEDDING_DIM, 28)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
    images = np.random.default_rng(0).integers(0, 256, size=(5000, 28, 28, 1), dtype=np.uint8)
    labels = np.repeat(np.arange(250), 20)
    triples = BATCH // 3 + 1  # 3 images per triple: about BATCH images a step
    sampler = TripleBatchSampler(labels, triples, steps + 2, seed=0)
    loader = iter(paddle.io.DataLoader(TripleDataset(images), batch_sampler=sampler))
    fixed = to_input(images[: 3 * triples])

    def step(batch: paddle.Tensor) -> None:
        loss = cosine_mse_triples(*paddle.split(net(batch), 3))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    fed = rate(lambda: step(to_input(paddle.concat(next(loader)))), 3 * triples, steps)
    return fed, rate(lambda: step(fixed), 3 * triples, steps)


def finetune_and_test_times() -> tuple[float, float]:
    """Seconds for one 20-way 5-shot fine-tune (embedding the 100 support images and 100 steps on
    them) and for scoring 1350 test queries with a predictor, both at 28 px."""
    import paddle

    from pdfewshot.methods.fitting import FitSettings, fit_on_features
    from pdfewshot.nets.classifier import Predictor
    from pdfewshot.nets.embedding import EmbeddingNet, embed, to_input

    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, EMBEDDING_DIM, 28)
    rng = np.random.default_rng(0)
    support = rng.integers(0, 256, size=(100, 28, 28, 1), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(1350, 28, 28, 1), dtype=np.uint8)
    labels = np.repeat(np.arange(20), 5)
    embed(net, support)  # warm-up
    started = time.perf_counter()
    settings = FitSettings(steps=100, lr=0.01, entropy_weight=0.1, scale=10.0)
    classifier, _ = fit_on_features(embed(net, support), labels, 20, settings=settings)
    finetune = time.perf_counter() - started
    predictor = Predictor(net, classifier)
    predictor.eval()
    started = time.perf_counter()
    with paddle.no_grad():
        for i in range(0, len(queries), 256):
            predictor(to_input(queries[i : i + 256])).argmax(axis=1).numpy()
    return finetune, time.perf_counter() - started


def stage_memory() -> dict[str, float]:
    """Peak resident memory (MiB) of pretrain, finetune and test, each run as its own short process."""
    peaks = {}
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "emb.pdparams"
        predictor = Path(folder) / "pred.pdparams"
        commands = {
            "pretrain": ["pretrain", "--epochs", "1", "--steps-per-epoch", "3", "--out", str(model)],
            "finetune": ["finetune", "--shot", "2", "--model", str(model), "--out", str(predictor)],
            "test": ["test", "--model", str(predictor), "--report", str(Path(folder) / "r.json")],
        }
        for stage, arguments in commands.items():
            # VmHWM belongs to the new process image; ru_maxrss would not do, as Linux carries it
            # across execve from this (larger) process.
            code = (
                "import sys; from pdfewshot.cli import app\n"
                "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
                "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
            )
            done = subprocess.run(
                [sys.executable, "-c", code, *arguments], capture_output=True, text=True, check=True,
                env={**os.environ, "COLUMNS": "200"},
            )  # fmt: skip
            peaks[stage] = int(done.stdout.strip().splitlines()[-1]) / 1024  # VmHWM is in KiB
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 84, 105])
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per measurement")
    parser.add_argument(
        "--backbones", nargs="*", default=["resnet18", "resnet50", "vgg16", "mobilenet_v2", "conv4"],
        help="also time these backbones at --backbone-size px, 3 channels, one process (none: skip)",
    )  # fmt: skip
    parser.add_argument("--backbone-size", type=int, default=84)
    args = parser.parse_args()
    set_paddle_threads()
    print(describe_cpu())
    processes = training_processes(PretrainConfig(), Ranks())  # what a default pretrain run uses here
    print(
        f"threads: {thread_count()}, batch {BATCH}, ResNet18 -> {EMBEDDING_DIM}-d, 1 channel; images/s; "
        f"'train ours' is pretrain's way here: {processes} process(es) splitting every batch"
    )
    print(
        f"{'size':>4} {'train 1 proc':>12} {f'train {processes} procs':>13} {'train torch':>11} {'infer eager':>11} "
        f"{'infer fast':>10} {'infer torch':>11}"
    )
    ratios: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        ours = paddle_rates(size, args.steps)
        ours["train ours"] = parallel_train_rate(size, args.steps, processes) if processes > 1 else ours["train"]
        theirs = torch_rates(size, args.steps)
        torch_train = f"{theirs['train']:11.1f}" if theirs else f"{'-':>11}"
        torch_infer = f"{theirs['infer eager']:11.1f}" if theirs else f"{'-':>11}"
        row = (
            f"{size:>4} {ours['train']:12.1f} {ours['train ours']:13.1f} {torch_train} {ours['infer eager']:11.1f} "
            f"{ours['infer fast']:10.1f}"
        )
        print(f"{row} {torch_infer}", flush=True)
        if theirs:
            ratios[size] = {
                "infer": ours["infer fast"] / theirs["infer eager"],
                "train": ours["train ours"] / theirs["train"],
            }
    if args.backbones:
        print(f"backbones at {args.backbone_size} px, 3 channels, batch {BATCH}, one process; images/s")
        print(f"{'backbone':>12} {'train':>8} {'infer eager':>11} {'infer fast':>10}")
        for backbone in args.backbones:
            timed = paddle_rates(args.backbone_size, max(2, args.steps // 2), backbone, channels=3)
            print(f"{backbone:>12} {timed['train']:8.1f} {timed['infer eager']:11.1f} {timed['infer fast']:10.1f}",
                  flush=True)  # fmt: skip
    fed, fixed = sampler_fed_rate(args.steps)
    print(f"training at 28 px, sampler-fed {fed:.1f} img/s vs fixed batch {fixed:.1f} img/s ({fed / fixed:.2f}x)")
    finetune, test = finetune_and_test_times()
    print(f"one 20-way 5-shot fine-tune: {finetune:.2f} s; scoring 1350 test queries: {test:.2f} s")
    peaks = stage_memory()
    print("peak resident memory: " + ", ".join(f"{stage} {mib:.0f} MiB" for stage, mib in peaks.items()))
    for kind, label in (("train", "training"), ("infer", "inference")):
        for size in (28, 84):
            shown = f"{ratios[size][kind]:.2f}" if size in ratios else "- (torch not installed or size not measured)"
            print(f"{label} ours/torch @{size}: {shown}")


if __name__ == "__main__":
    main()

"""Why a Paddle training step is slower than PyTorch's on this CPU, and what changes it.

    python benchmarks/train_step.py            # PyTorch columns when torch is installed
    python benchmarks/train_step.py --repeat 3
    KMP_BLOCKTIME=0 python benchmarks/train_step.py --part1-only   # one setting against another

Part 1 times the whole training step of the Conv-4 embedding (batch 64, 28 px, 1 channel, softmax
over 700 classes, Adam) in the variants worth trying from our side: threads, NHWC instead of NCHW,
``paddle.jit.to_static``, bfloat16 autocast, and the same step in PyTorch. Part 2 times each kind of
layer of ResNet18 at 28 px alone (forward + backward, batch 64) in both frameworks, weighted by how
often it occurs in the network, to show where the gap lies. Part 3 times Adam's update, plain and
with ``use_multi_tensor``. A benchmark: it measures, asserts nothing.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import pdfewshot  # noqa: F401  (sets the MKL code path before Paddle is imported)
from pdfewshot.runtime import thread_count

BATCH = 64
SIZE = 28
CLASSES = 700


def seconds_per_call(call: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    started = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - started) / repeat


def paddle_conv4_step(data_format: str = "NCHW", static: bool = False, bf16: bool = False) -> Callable[[], None]:
    import paddle
    import paddle.nn.functional as F
    from paddle import nn

    paddle.seed(0)

    def block(cin: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2D(cin, 64, 3, padding=1, data_format=data_format), nn.BatchNorm2D(64, data_format=data_format),
            nn.ReLU(), nn.MaxPool2D(2, data_format=data_format),
        )  # fmt: skip

    net = nn.Sequential(block(1), block(64), block(64), block(64), nn.Flatten(), nn.Linear(64, CLASSES))
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
    shape = [BATCH, SIZE, SIZE, 1] if data_format == "NHWC" else [BATCH, 1, SIZE, SIZE]
    images = paddle.randn(shape)
    labels = paddle.to_tensor(np.random.default_rng(0).integers(0, CLASSES, BATCH))
    forward = paddle.jit.to_static(net, full_graph=True) if static else net

    def step() -> None:
        if bf16:
            with paddle.amp.auto_cast(dtype="bfloat16"):
                loss = F.cross_entropy(forward(images).astype("float32"), labels)
        else:
            loss = F.cross_entropy(forward(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    return step


def torch_conv4_step() -> Callable[[], None] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(thread_count())

    def block(cin: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))

    net = nn.Sequential(block(1), block(64), block(64), block(64), nn.Flatten(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch.randn(BATCH, 1, SIZE, SIZE)
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, CLASSES, BATCH))

    def step() -> None:
        loss = nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


# ResNet18 at 28 px, batch 64: (kind, layer arguments, input shape [c, h, w], times it occurs).
# Convolutions are (in, out, kernel, stride, padding); the rest name their channels.
RESNET18_AT_28: list[tuple[str, tuple[int, ...], tuple[int, int, int], int]] = [
    ("conv", (1, 64, 7, 2, 3), (1, 28, 28), 1),
    ("batchnorm", (64,), (64, 14, 14), 1),
    ("relu", (), (64, 14, 14), 1),
    ("maxpool", (3, 2, 1), (64, 14, 14), 1),
    ("conv", (64, 64, 3, 1, 1), (64, 7, 7), 4),
    ("batchnorm", (64,), (64, 7, 7), 4),
    ("relu", (), (64, 7, 7), 4),
    ("conv", (64, 128, 3, 2, 1), (64, 7, 7), 1),
    ("conv", (64, 128, 1, 2, 0), (64, 7, 7), 1),
    ("conv", (128, 128, 3, 1, 1), (128, 4, 4), 3),
    ("batchnorm", (128,), (128, 4, 4), 5),
    ("relu", (), (128, 4, 4), 4),
    ("conv", (128, 256, 3, 2, 1), (128, 4, 4), 1),
    ("conv", (128, 256, 1, 2, 0), (128, 4, 4), 1),
    ("conv", (256, 256, 3, 1, 1), (256, 2, 2), 3),
    ("batchnorm", (256,), (256, 2, 2), 5),
    ("conv", (256, 512, 3, 2, 1), (256, 2, 2), 1),
    ("conv", (256, 512, 1, 2, 0), (256, 2, 2), 1),
    ("conv", (512, 512, 3, 1, 1), (512, 1, 1), 3),
    ("batchnorm", (512,), (512, 1, 1), 5),
]


def paddle_layer(kind: str, args: tuple[int, ...]) -> Any:
    from paddle import nn

    if kind == "conv":
        cin, cout, kernel, stride, padding = args
        return nn.Conv2D(cin, cout, kernel, stride, padding, bias_attr=False)
    if kind == "batchnorm":
        return nn.BatchNorm2D(args[0])
    if kind == "maxpool":
        return nn.MaxPool2D(*args)
    return nn.ReLU()


def torch_layer(kind: str, args: tuple[int, ...]) -> Any:
    from torch import nn

    if kind == "conv":
        cin, cout, kernel, stride, padding = args
        return nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
    if kind == "batchnorm":
        return nn.BatchNorm2d(args[0])
    if kind == "maxpool":
        return nn.MaxPool2d(*args)
    return nn.ReLU()


def paddle_layer_seconds(kind: str, args: tuple[int, ...], shape: tuple[int, ...], repeat: int) -> float:
    import paddle

    layer = paddle_layer(kind, args)
    inputs = paddle.randn([BATCH, *shape])
    inputs.stop_gradient = False

    def call() -> None:
        layer(inputs).sum().backward()

    return seconds_per_call(call, repeat)


def torch_layer_seconds(kind: str, args: tuple[int, ...], shape: tuple[int, ...], repeat: int) -> float:
    import torch

    layer = torch_layer(kind, args)
    inputs = torch.randn(BATCH, *shape, requires_grad=True)

    def call() -> None:
        layer(inputs).sum().backward()

    return seconds_per_call(call, repeat)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def paddle_resnet18_adam(multi_tensor: bool, repeat: int) -> tuple[float, float]:
    """(whole training step img/s, Adam update alone in ms) for pdfewshot's ResNet18 -> 128-d at 28 px."""
    import paddle

    from pdfewshot.nets.embedding import EmbeddingNet, to_input

    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, 128, SIZE)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters(), use_multi_tensor=multi_tensor)
    images = to_input(np.random.default_rng(0).integers(0, 256, (BATCH, SIZE, SIZE, 1), dtype=np.uint8))

    def step() -> None:
        net(images).pow(2).sum(axis=1).mean().backward()
        optimizer.step()
        optimizer.clear_grad()

    whole = seconds_per_call(step, repeat)
    net(images).pow(2).sum(axis=1).mean().backward()
    return BATCH / whole, seconds_per_call(optimizer.step, repeat) * 1000


def profile_step(size: int, steps: int = 3, top: int = 8) -> None:
    """Where one ResNet18 training step's time goes, per operator: ``paddle.profiler`` beside
    ``torch.profiler`` (batch 64, 1 channel, ``size`` px, Adam)."""
    import paddle
    import paddle.profiler as profiler

    from pdfewshot.nets.embedding import EmbeddingNet

    paddle.seed(0)
    net = EmbeddingNet("resnet18", 1, 128, size)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
    images = paddle.rand([BATCH, 1, size, size]) * 255

    def step() -> None:
        net(images).pow(2).sum(axis=1).mean().backward()
        optimizer.step()
        optimizer.clear_grad()

    for _ in range(2):
        step()
    recorder = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    recorder.start()
    for _ in range(steps):
        step()
        recorder.step()
    recorder.stop()
    totals: dict[str, float] = {}
    for event in _paddle_events(recorder):
        totals[event[0]] = totals.get(event[0], 0.0) + event[1]
    print(f"\nProfile: ResNet18 training step at {size} px, batch {BATCH}; ms per step, top operators")
    _print_top_operators("paddle", "", list(totals.items()), steps, top)
    if not torch_available():
        print("  torch: not installed")
        return
    import torch
    from throughput import torch_resnet18  # the script beside this one (on sys.path when run)
    from torch.profiler import ProfilerActivity, profile

    model = torch_resnet18()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = torch.rand(BATCH, 1, size, size)

    def torch_step() -> None:
        model(batch).pow(2).sum(dim=1).mean().backward()
        adam.step()
        adam.zero_grad()

    for _ in range(2):
        torch_step()
    with profile(activities=[ProfilerActivity.CPU]) as recorded:
        for _ in range(steps):
            torch_step()
    rows = [(e.key, e.self_cpu_time_total / 1000) for e in recorded.key_averages()]
    _print_top_operators("torch", ", self time", rows, steps, top)


def _print_top_operators(framework: str, note: str, rows: list[tuple[str, float]], steps: int, top: int) -> None:
    """The ``top`` operators of (operator, ms over ``steps`` steps) rows: ms per step and share of the whole."""
    whole = sum(ms for _, ms in rows)
    print(f"  {framework} ({whole / steps:.0f} ms of operators per step{note})")
    for name, ms in sorted(rows, key=lambda item: -item[1])[:top]:
        print(f"    {name:40s} {ms / steps:8.1f}  {100 * ms / whole:5.1f}%")


def _paddle_events(recorder: Any) -> list[tuple[str, float]]:
    """(operator, ms) of the operators the Paddle profiler recorded (the rows of its operator view)."""
    import paddle.profiler as profiler

    result = profiler.profiler_statistic.StatisticData(
        recorder.profiler_result.get_data(),
        recorder.profiler_result.get_extra_info(),
    )
    items = result.event_summary.items
    return [(name, item.cpu_time / 1e6) for name, item in items.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per measurement")
    parser.add_argument("--part1-only", action="store_true", help="only the Conv-4 step, at the threads set")
    parser.add_argument(
        "--profile", type=int, nargs="*", metavar="SIZE", help="only the per-operator profile at these sizes"
    )
    args = parser.parse_args()
    import paddle

    if args.profile:
        for size in args.profile:
            profile_step(size)
        return

    threads = thread_count()
    print(f"Part 1: Conv-4 training step, batch {BATCH}, {SIZE} px, softmax over {CLASSES} classes; images/s")
    variants: list[tuple[str, int, Callable[[], Callable[[], None] | None]]] = [
        ("paddle eager NCHW", threads, paddle_conv4_step),
        ("paddle eager NCHW", 1, paddle_conv4_step),
        ("paddle eager NHWC", threads, lambda: paddle_conv4_step("NHWC")),
        ("paddle jit.to_static", threads, lambda: paddle_conv4_step(static=True)),
        ("paddle bf16 autocast", threads, lambda: paddle_conv4_step(bf16=True)),
        ("torch eager", threads, torch_conv4_step),
    ]
    if args.part1_only:
        variants = variants[:1]  # e.g. to compare settings read at import, such as KMP_BLOCKTIME
    for name, count, make in variants:
        paddle.base.core.set_num_threads(count)
        step = make()
        if step is None:
            print(f"  {name:24s} -  (torch not installed)")
            continue
        try:
            seconds = seconds_per_call(step, args.repeat)
        except Exception as error:  # a variant the installed Paddle cannot run is reported, not fatal
            print(f"  {name:24s} fails: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
            continue
        print(f"  {name:24s} {count} thread(s) {BATCH / seconds:8.1f}")
    paddle.base.core.set_num_threads(threads)
    if args.part1_only:
        return

    print(
        f"\nPart 2: ResNet18 at {SIZE} px, each kind of layer alone, forward + backward, "
        f"batch {BATCH}, {threads} threads"
    )
    with_torch = torch_available()
    if with_torch:
        import torch

        torch.set_num_threads(threads)
    totals: dict[str, list[float]] = {}
    print(f"  {'layer':34s} {'times':>5} {'paddle ms':>10} {'torch ms':>9} {'ratio':>6}")
    for kind, layer_args, shape, times in RESNET18_AT_28:
        ours = paddle_layer_seconds(kind, layer_args, shape, args.repeat) * 1000
        theirs = torch_layer_seconds(kind, layer_args, shape, args.repeat) * 1000 if with_torch else float("nan")
        label = f"{kind} {layer_args} on {shape}"
        print(f"  {label:34s} {times:5d} {ours:10.2f} {theirs:9.2f} {ours / theirs:6.2f}")
        total = totals.setdefault(kind, [0.0, 0.0])
        total[0] += times * ours
        total[1] += times * theirs
    print("  per kind, weighted by occurrences (ms per step):")
    for kind, (ours, theirs) in totals.items():
        print(f"    {kind:10s} paddle {ours:8.1f}  torch {theirs:8.1f}  ratio {ours / theirs:5.2f}")
    ours_all = sum(t[0] for t in totals.values())
    theirs_all = sum(t[1] for t in totals.values())
    print(f"    {'all':10s} paddle {ours_all:8.1f}  torch {theirs_all:8.1f}  ratio {ours_all / theirs_all:5.2f}")

    print(f"\nPart 3: Adam in a ResNet18 training step at {SIZE} px, batch {BATCH}, {threads} threads")
    for multi_tensor in (False, True):
        rate, update = paddle_resnet18_adam(multi_tensor, args.repeat * 2)
        print(f"  use_multi_tensor={multi_tensor!s:5s}  step {rate:6.1f} img/s, Adam update alone {update:5.1f} ms")


if __name__ == "__main__":
    main()

"""How the cost of a base set grows with its size: decoding, starting again from the cache, memory, speed.

Makes a synthetic photograph-like base set of N images (256 px JPEG files of smooth colour fields with
shapes and grain, 100 per class folder; generated here, nothing downloaded) for each N, and prints:

- first-run decode seconds into an empty cache (``--threads`` processes), and with one process (for the
  speed-up; only up to ``--single-up-to`` images, since it takes as long again); the files are read once
  before each, so that both find them in the page cache;
- cached start: seconds of a ``pretrain`` process whose images are cached, from its launch to its first
  training step (importing Paddle, reading the cache's description, splitting, building the network);
- peak resident memory of that ``pretrain`` (224 px, MobileNetV2, softmax, 3 steps of 8 images, no
  validation), measured by the kernel for its process;
- training images/s of the same run for 10 steps of 16 images with ``--augment photo`` and ``none`` (two
  runs each, in the order none, photo, photo, none), and the share of training time spent stacking and
  distorting batches: with ``--workers 0``, as on a CPU, that is what augmentation can cost.

    python benchmarks/scale.py                      # N = 5,000, 20,000 and 80,000
    python benchmarks/scale.py --sizes 5000 --work /tmp/scale
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pdfewshot.runtime import cpu_info, thread_count

PER_CLASS = 100
SOURCE_SIZE = 256


def _make_images(job: tuple[str, int, int]) -> None:
    """Images ``start .. start + count`` of the set under ``root``: class ``i // PER_CLASS``."""
    root, start, count = job
    for index in range(start, start + count):
        folder = Path(root) / f"class{index // PER_CLASS:05d}"
        path = folder / f"{index:07d}.jpg"
        if path.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(index)
        field = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # a smooth colour field, as light falls
        image = Image.fromarray(field).resize((SOURCE_SIZE, SOURCE_SIZE), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 6))):  # things in the picture
            x, y, w, h = (int(v) for v in rng.integers(0, SOURCE_SIZE, 4))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse((x, y, x + w // 2, y + h // 2), fill=colour)
        grain = rng.normal(0, 6, (SOURCE_SIZE, SOURCE_SIZE, 3))
        pixels = np.clip(np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32) + grain, 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)


def make_set(root: Path, count: int) -> float:
    """Seconds to write the set's missing files (in one process per core)."""
    started = time.perf_counter()
    jobs = [(str(root), start, min(1000, count - start)) for start in range(0, count, 1000)]
    with ProcessPoolExecutor(thread_count()) as pool:
        list(pool.map(_make_images, jobs))
    return time.perf_counter() - started


def read_files(root: Path) -> None:
    """Reads every file of the set once, so that each timed decode finds them in the page cache alike (the
    first would otherwise also pay for reading them from disk)."""
    for path in sorted(root.rglob("*.jpg")):
        path.read_bytes()


def decode_seconds(root: Path, cache: Path, threads: int) -> float:
    """Seconds to decode the set at 224 px into the empty cache ``cache`` with ``threads`` processes."""
    read_files(root)
    code = (
        "import time; from pdfewshot.data.sources import load_sources; t = time.perf_counter(); "
        f"load_sources([{str(root)!r}], 224); print(time.perf_counter() - t)"
    )
    environment = {**os.environ, "PDFEWSHOT_CACHE": str(cache), "PDFEWSHOT_THREADS": str(threads)}
    output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return float(output.stdout.strip().splitlines()[-1])


PRETRAIN_CODE = """
import json, sys, time
from pathlib import Path
from pdfewshot.runtime import configure_runtime
configure_runtime()
from pdfewshot.config import PretrainConfig
import pdfewshot.data.batches as batches
import pdfewshot.stages.pretrain as stage
started = {}
train = stage.train
def timed(*args, **kwargs):
    started["first_step"] = time.time()
    return train(*args, **kwargs)
stage.train = timed
collating = {"seconds": 0.0}
collate = batches.DistortingCollate.__call__
def timed_collate(self, samples):
    begun = time.perf_counter()
    try:
        return collate(self, samples)
    finally:
        collating["seconds"] += time.perf_counter() - begun
batches.DistortingCollate.__call__ = timed_collate
options = json.loads(sys.argv[1])
result = stage.pretrain(PretrainConfig(**{**options, "out": Path(options["out"])}))
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"first_step": started["first_step"], "train_seconds": result.seconds,
                  "collate_seconds": collating["seconds"], "peak_kib": peak}))
"""


def pretrain_run(root: Path, cache: Path, out: Path, steps: int, batch: int, augment: str) -> dict[str, float]:
    """A ``pretrain`` process on the set: seconds from its start to its first training step, images/s of its
    steps, the share of its training time spent stacking and distorting batches, and its peak resident
    memory. The peak is the process's own high-water mark (``VmHWM``), read before it exits: the kernel's
    ``ru_maxrss`` of a child started by ``vfork`` + ``exec`` (as ``subprocess`` starts it) begins at the
    parent's peak, so it counted this script's own memory."""
    options = {
        "data": [str(root)], "out": str(out), "image_size": 224, "backbone": "mobilenet_v2", "loss": "ce",
        "warmup_epochs": 0, "epochs": 1, "steps_per_epoch": steps, "batch_size": batch, "validation_fraction": 0.0,
        "processes": 1, "augment": augment, "pretrained": "none", "show_progress": False,
    }  # fmt: skip
    environment = {**os.environ, "PDFEWSHOT_CACHE": str(cache), "PDFEWSHOT_OFFLINE": "1"}
    command = [sys.executable, "-c", PRETRAIN_CODE, json.dumps(options)]
    launched = time.time()
    output = subprocess.run(command, env=environment, capture_output=True, text=True)
    if output.returncode != 0:
        raise RuntimeError(f"pretrain failed:\n{output.stdout}{output.stderr}")
    timing = json.loads(output.stdout.strip().splitlines()[-1])
    return {
        "start_seconds": timing["first_step"] - launched, "peak_gib": timing["peak_kib"] / 2**20,
        "images_per_second": steps * batch / timing["train_seconds"],
        "collate_share": timing["collate_seconds"] / timing["train_seconds"],
    }  # fmt: skip


def measure(work: Path, count: int, single_up_to: int) -> dict[str, float]:
    root = work / f"set-{count}"
    made = make_set(root, count)
    cache = work / f"cache-{count}"
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    row: dict[str, float] = {"images": count, "generate_seconds": made}
    row["decode_seconds"] = decode_seconds(root, cache, thread_count())
    if count <= single_up_to:
        single = work / f"cache-{count}-single"
        subprocess.run(["rm", "-rf", str(single)], check=True)
        row["decode_one_process_seconds"] = decode_seconds(root, single, 1)
        subprocess.run(["rm", "-rf", str(single)], check=True)
    cached = pretrain_run(root, cache, work / "emb.pdparams", 3, 8, "none")
    row["cached_start_seconds"] = cached["start_seconds"]
    row["peak_resident_gib"] = cached["peak_gib"]
    # none, photo, photo, none: a drift of the machine's speed over the four runs weighs on both alike
    runs: dict[str, list[dict[str, float]]] = {"none": [], "photo": []}
    for augment in ("none", "photo", "photo", "none"):
        runs[augment].append(pretrain_run(root, cache, work / "emb.pdparams", 10, 16, augment))
    for augment, measured in runs.items():
        row[f"images_per_second_{augment}"] = float(np.mean([run["images_per_second"] for run in measured]))
        row[f"batch_share_{augment}"] = float(np.mean([run["collate_share"] for run in measured]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--work", type=Path, default=Path("models/scale"))
    parser.add_argument("--single-up-to", type=int, default=20000, help="Largest N also decoded in one process.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_info().get('model name', '?')}, {thread_count()} processes for decoding")
    rows = []
    for count in args.sizes:
        row = measure(args.work, count, args.single_up_to)
        rows.append(row)
        print(json.dumps({key: round(value, 3) for key, value in row.items()}), flush=True)
    columns = ["images", "first decode", "one process", "cached start", "start / decode", "peak memory",
               "img/s none", "img/s photo", "photo / none", "batches' share of training (photo)"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        single = row.get("decode_one_process_seconds")
        print(
            f"| {row['images']:,} | {row['decode_seconds']:.1f} s | {f'{single:.1f} s' if single else '-'} | "
            f"{row['cached_start_seconds']:.1f} s | {row['cached_start_seconds'] / row['decode_seconds']:.1%} | "
            f"{row['peak_resident_gib']:.2f} GiB | {row['images_per_second_none']:.2f} | "
            f"{row['images_per_second_photo']:.2f} | "
            f"{row['images_per_second_photo'] / row['images_per_second_none']:.0%} | {row['batch_share_photo']:.1%} |"
        )


if __name__ == "__main__":
    main()

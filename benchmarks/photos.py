"""Few-shot accuracy on real photographs: ../shared/data/caltech101_dev (47 Caltech-101 categories) or
../shared/data/lfw_dev (faces of 158 people).

Pretrains on the base categories with only ``--data`` (the defaults chosen from the data) or with a recipe's
options, then scores seeded episodes on the novel ones: 5-way 1-shot, 5-way 5-shot and 10-way 2-shot (and
20-way 1-shot where there are 20 novel classes), methods prototype, finetune and nn-pixels, with the
pretraining time and each evaluation's time (loading, embedding, episodes); then verification of
``--pairs`` seeded pairs of the novel categories (accuracy at a threshold chosen on half of them, ROC AUC,
equal error rate). The two groups of categories are folders of symbolic links to the data where it lies
(nothing is copied). Splits:

- ``seeded``: 10 categories drawn with ``--seed`` (the from-scratch rows of docs/results.md);
- ``caltech10``: brain, buddha, butterfly, chandelier, crab, electric_guitar, ewer, flamingo, kangaroo,
  starfish (the ImageNet issue's split of caltech101_dev);
- ``people40``: lfw_dev's sorted folder names shuffled by ``random.Random(7)``, the first 40;
- ``people20``: the same 40 new people; as base only 20 of the others with 10 portraits each (the first 20 in
  that order with at least 10, their first 10 files by name): the small face set a user brings.

The ImageNet recipes start from ``--weights`` (a paddle.vision ImageNet classifier's state dict; by default
the MobileNetV2 of ../shared/weights, the one such file this machine has).

    python benchmarks/photos.py                                   # every from-scratch recipe
    python benchmarks/photos.py --recipe defaults                 # one recipe
    python benchmarks/photos.py --split caltech10 --recipe imagenet-224px
    python benchmarks/photos.py --data ../shared/data/lfw_dev --split people40 --recipe imagenet-224px
    python benchmarks/photos.py --data ../shared/data/lfw_dev --split people40 --recipe imagenet-224px --evaluate-only
    python benchmarks/photos.py --table                           # the results table from the saved rows
"""

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import EvaluateConfig, PretrainConfig
from pdfewshot.runtime import thread_count
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "caltech101_dev"
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pdparams"
WEIGHTS = "{weights}"  # a recipe's stand-in for --weights
NOVEL_CATEGORIES = 10
TASKS = ((5, 1), (5, 5), (10, 2), (20, 1))  # those with enough novel classes are run
METHODS = ["prototype", "finetune", "nn-pixels"]
CALTECH10 = ("brain", "buddha", "butterfly", "chandelier", "crab", "electric_guitar", "ewer", "flamingo", "kangaroo",
             "starfish")  # fmt: skip


def _seeded(categories: list[str], seed: int) -> set[str]:
    rng = np.random.default_rng(seed)
    return set(rng.choice(categories, size=NOVEL_CATEGORIES, replace=False).tolist())


def _people40(categories: list[str], seed: int) -> set[str]:
    shuffled = list(categories)
    random.Random(7).shuffle(shuffled)
    return set(shuffled[:40])


# The novel categories of each split, from the sorted category names and --seed.
SPLITS: dict[str, Callable[[list[str], int], set[str]]] = {
    "seeded": _seeded, "caltech10": lambda categories, seed: set(CALTECH10), "people40": _people40,
    "people20": _people40,
}  # fmt: skip
SMALL_BASE = {"people20": (20, 10)}  # split: (base classes, images of each) where the base is cut down

# Pretraining recipes: options of PretrainConfig beside --data. "defaults" gives none.
RECIPES: dict[str, dict[str, Any]] = {
    "defaults": {},  # Conv-4, softmax, 84 px, photo augmentation, validation on 4 classes (what the data chose)
    "defaults-20m": {"time_budget": "20m"},  # the same, stopped at 20 minutes at the latest
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
    # ImageNet weights with no training at all, at four image sizes (the weights were made at 224 px).
    **{f"imagenet-{size}px": {"backbone": "mobilenet_v2", "pretrained": WEIGHTS, "epochs": 0, "image_size": size}
       for size in (84, 112, 160, 224)},
    # ImageNet weights and training on the base categories: the defaults of an ImageNet start (benchmarks/base_set.py
    # compares them with other recipes); the tutorial's recipe (frozen backbone, a 128-d head trained with
    # cosine-MSE, read at the head); every layer fine-tuned with softmax at 1e-4 (with the batch-norm statistics
    # frozen, or smaller batches). Each pins what it was measured with where the defaults have moved since.
    "imagenet-defaults": {"backbone": "mobilenet_v2", "pretrained": WEIGHTS},
    "imagenet-frozen-head": {"backbone": "mobilenet_v2", "pretrained": WEIGHTS, "freeze_backbone": True,
                             "loss": "cosine-mse", "warmup_epochs": 0, "lr": 1e-4, "time_budget": "20m"},
    # the same trained ten times longer: with the features computed once, its steps take seconds
    "imagenet-frozen-head-300": {"backbone": "mobilenet_v2", "pretrained": WEIGHTS, "freeze_backbone": True,
                                 "loss": "cosine-mse", "warmup_epochs": 0, "max_epochs": 300, "lr": 1e-4,
                                 "time_budget": "20m"},
    **{name: {"backbone": "mobilenet_v2", "pretrained": WEIGHTS, "loss": "ce", "lr": 1e-4, "backbone_lr": 1e-4,
              "freeze_to": "none", "probe_epochs": 0, "readout": "backbone", "time_budget": "20m", **extra}
       for name, extra in (("imagenet-every-layer", {}), ("imagenet-frozen-bn", {"freeze_batch_norm": True}),
                           ("imagenet-finetune-ce", {"batch_size": 16}))},
}  # fmt: skip


def split_categories(data: Path, work: Path, split: str, seed: int) -> tuple[Path, Path]:
    """``work/base`` and ``work/novel``: folders of links to the base and novel categories of ``data``."""
    data = data.resolve()  # the links must lead to it from anywhere
    categories = sorted(p.name for p in data.iterdir() if p.is_dir())
    novel = SPLITS[split](categories, seed)
    folders = {"base": work / "base", "novel": work / "novel"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    if split in SMALL_BASE:
        return _small_base(data, categories, novel, folders["base"], *SMALL_BASE[split]), _link_novel(
            data, novel, folders["novel"]
        )
    for name in categories:
        link = folders["novel" if name in novel else "base"] / name
        if not link.exists():
            link.symlink_to(data / name, target_is_directory=True)
    return folders["base"], folders["novel"]


def _link_novel(data: Path, novel: set[str], folder: Path) -> Path:
    for name in sorted(novel):
        if not (folder / name).exists():
            (folder / name).symlink_to(data / name, target_is_directory=True)
    return folder


def _small_base(data: Path, categories: list[str], novel: set[str], folder: Path, classes: int, each: int) -> Path:
    """``classes`` base categories (in ``random.Random(7)`` order) of ``each`` images linked one by one."""
    shuffled = list(categories)
    random.Random(7).shuffle(shuffled)
    chosen = [name for name in shuffled if name not in novel and sum(1 for _ in (data / name).iterdir()) >= each]
    for name in chosen[:classes]:
        (folder / name).mkdir(exist_ok=True)
        for image in sorted((data / name).iterdir())[:each]:
            if not (folder / name / image.name).exists():
                (folder / name / image.name).symlink_to(image)
    return folder


def recipe_options(name: str, weights: Path) -> dict[str, Any]:
    return {key: str(weights) if value == WEIGHTS else value for key, value in RECIPES[name].items()}


def run_recipe(
    name: str,
    data: Path,
    work: Path,
    split: str,
    episodes: int,
    seed: int,
    weights: Path,
    pairs: int,
    evaluate_only: bool = False,
) -> dict[str, Any]:
    base, novel = split_categories(data, work / "data", split, seed)
    out = work / name / "emb_model.pdparams"
    config = PretrainConfig(data=[str(base)], out=out, seed=seed)
    for key, value in recipe_options(name, weights).items():
        setattr(config, key, value)
    started = time.perf_counter()
    saved = json.loads((work / name / "row.json").read_text()) if evaluate_only else None
    steps = saved["steps"] if saved else len(pretrain(config).losses)
    meta = json.loads(out.with_suffix(".json").read_text())
    training = meta["training"]
    row: dict[str, Any] = {
        "recipe": name, "options": RECIPES[name], "data": data.name, "split": split,
        "train_seconds": saved["train_seconds"] if saved else round(time.perf_counter() - started), "steps": steps,
        "threads": thread_count(),
        "processes": meta["training"]["processes"], "image_size": meta["image_size"], "backbone": meta["backbone"],
        "loss": meta["loss"], "pretrained": meta["config"]["pretrained"], "augment": meta["config"]["augment"],
        "stopped_because": training["stopped_because"], "best_validation": training["best_validation"],
        "best_accuracy": training.get("best_accuracy"), "validation_measure": training.get("validation_measure"),
        "validations": training["validations"], "best_step": training["best_step"], "tasks": {},
        "evaluate_seconds": {},
    }  # fmt: skip
    print(f"{name}: pretrained in {row['train_seconds']} s, {row['steps']} steps ({row['stopped_because']})")
    classes = sum(1 for p in novel.iterdir() if p.is_dir())
    for way, shot in [(way, shot) for way, shot in TASKS if way <= classes]:
        evaluation = EvaluateConfig(model=out, data=[str(novel)], way=way, shot=[shot], episodes=episodes, seed=seed,
                                    method=METHODS, report=work / name / f"episodes-{way}w{shot}s.json")  # fmt: skip
        started = time.perf_counter()
        for result in evaluate(evaluation).results:
            row["tasks"].setdefault(f"{way}w{shot}s", {})[result.method] = [result.mean, result.interval]
            print(f"  {way}-way {shot}-shot {result.method}: {result.mean:.4f} +- {result.interval:.4f}")
        row["evaluate_seconds"][f"{way}w{shot}s"] = round(time.perf_counter() - started)
    if pairs:
        row["pairs"] = verify_pairs(out, novel, pairs, seed, work / name / f"pairs-{pairs}.json")
    (work / name / "row.json").write_text(json.dumps(row, indent=1))
    return row


def verify_pairs(model: Path, novel: Path, pairs: int, seed: int, report: Path) -> dict[str, Any]:
    """``evaluate --pairs`` on a copy of the checkpoint (it stores the threshold it chooses)."""
    copy = model.with_name("pairs_" + model.name)
    copy.write_bytes(model.read_bytes())
    copy.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    started = time.perf_counter()
    result = evaluate(EvaluateConfig(model=copy, data=[str(novel)], pairs=pairs, seed=seed, report=report)).pairs
    assert result is not None
    shown = {
        "pairs": result.pairs, "threshold_from": result.threshold_from, "accuracy": result.accuracy,
        "accuracy_interval": result.accuracy_interval, "auc": result.auc, "eer": result.eer,
        "seconds": round(time.perf_counter() - started),
    }  # fmt: skip
    print(f"  pairs: accuracy {result.accuracy:.4f} +- {result.accuracy_interval:.4f} ({result.threshold_from}), "
          f"ROC AUC {result.auc:.4f}, EER {result.eer:.4f}")  # fmt: skip
    return shown


def table(rows: list[dict[str, Any]]) -> str:
    tasks = [(w, s) for w, s in TASKS if any(f"{w}w{s}s" in row["tasks"] for row in rows)]
    pairs = any("pairs" in row for row in rows)
    lines = [
        "| recipe | network, size, loss, augmentation | pretraining | evaluation | method | "
        + " | ".join(f"{w}-way {s}-shot" for w, s in tasks)
        + (" | pairs: accuracy, ROC AUC, EER" if pairs else "")
        + " |",
        "| --- " * (5 + len(tasks) + pairs) + "|",
    ]
    for row in rows:
        minutes = f"{row['train_seconds'] / 60:.1f} min, {row['steps']} steps"
        evaluation = f"{sum(row.get('evaluate_seconds', {}).values()) / 60:.1f} min"
        start = " from ImageNet" if row.get("pretrained") not in (None, "none") else ""
        trained = f"{row['loss']}, {row['augment']}" if row["steps"] else "no training"
        setting = f"{row['backbone']}{start}, {row['image_size']} px, {trained}"
        for method in METHODS:
            cells = [row["tasks"].get(f"{w}w{s}s", {}).get(method) for w, s in tasks]
            shown = " | ".join(f"{100 * cell[0]:.1f} +- {100 * cell[1]:.1f}" if cell else "" for cell in cells)
            if pairs:
                verified = row.get("pairs")
                shown += " | " + (
                    f"{100 * verified['accuracy']:.1f} +- {100 * verified['accuracy_interval']:.1f}, "
                    f"{verified['auc']:.3f}, {100 * verified['eer']:.1f}"
                    if verified and method == METHODS[0] else ""
                )  # fmt: skip
            lines.append(f"| {row['recipe']} | {setting} | {minutes} | {evaluation} | {method} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=sorted(SPLITS), default="seeded")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="ImageNet weights of the imagenet-* "
                        "recipes: a paddle.vision ImageNet classifier's state dict.")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="Default: models/photos/<data>-<split>.")
    parser.add_argument("--recipe", choices=sorted(RECIPES), action="append")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=2000, help="Verification pairs of the novel categories (0: none).")
    parser.add_argument("--evaluate-only", action="store_true", help="Evaluate the saved embeddings again.")
    parser.add_argument("--table", action="store_true", help="Print the table of the saved rows and stop.")
    args = parser.parse_args()
    work = args.work or REPO / "models" / "photos" / f"{args.data.name}-{args.split}"
    if not args.table:
        scratch = [name for name in RECIPES if not name.startswith("imagenet")]
        for name in args.recipe or scratch:
            run_recipe(name, args.data, work, args.split, args.episodes, args.seed, args.weights, args.pairs,
                       args.evaluate_only)  # fmt: skip
    rows = [json.loads(path.read_text()) for name in RECIPES if (path := work / name / "row.json").is_file()]
    print(table(rows))


if __name__ == "__main__":
    main()

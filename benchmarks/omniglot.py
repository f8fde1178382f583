"""Omniglot benchmark: pretrain on the two reduced background sets, evaluate on the 20 official runs
and on episodes from held-out background alphabets; print a Markdown table beside published results.

    python benchmarks/omniglot.py --config conv4-ce-affine --out benchmarks/omniglot.md

Each --config is one pretraining recipe (see CONFIGS); every recipe is evaluated on the same runs and
the same seeded episodes. Takes tens of minutes per recipe on 2 CPU cores: a benchmark, not a test.
Each finished recipe leaves its row in <work>/<config>/row.json, so recipes can run in separate
processes (e.g. two at once with PDFEWSHOT_THREADS=1) and ``--table`` assembles every saved row.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pdfewshot.config import EvaluateConfig, PretrainConfig
from pdfewshot.runtime import thread_count
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "omniglot"

# Pretraining recipes: options of PretrainConfig (the warm-up spelt out where the default would add
# one). Both reduced sets merged, rotations as new classes.
CONFIGS: dict[str, dict[str, Any]] = {
    "resnet18-cosine-mse": {"warmup_epochs": 0, "epochs": 1},
    "resnet18-ce-warmup": {"warmup_epochs": 2, "epochs": 1},
    "conv4-triplet": {"backbone": "conv4", "loss": "triplet", "warmup_epochs": 0, "epochs": 3},
    # Koch's net at his 105 px costs ~15-20 s per step of 64 pairs here: a few minutes of his recipe.
    "koch-pair-bce-affine": {
        "backbone": "koch", "image_size": 105, "loss": "pair-bce", "augment": "affine", "warmup_epochs": 0,
        "epochs": 2, "steps_per_epoch": 40,
    },
    # The same at a tenth of the rate: at 1e-3, Adam drove the net (no batch norm) into a saturated
    # sigmoid layer, every image the same embedding, the loss stuck at ln 2.
    "koch-pair-bce-affine-lr1e-4": {
        "backbone": "koch", "image_size": 105, "loss": "pair-bce", "augment": "affine", "warmup_epochs": 0,
        "epochs": 2, "steps_per_epoch": 40, "lr": 1e-4,
    },
    "conv4-ce-affine": {"backbone": "conv4", "loss": "ce", "epochs": 20, "augment": "affine"},
    # For the 20 runs only: all 8 background alphabets in pretraining, none held out for episodes.
    "conv4-ce-affine-all-alphabets": {
        "backbone": "conv4", "loss": "ce", "epochs": 20, "augment": "affine", "novel_fraction": 0.0,
    },
    "conv4-ce-affine-cosine": {
        "backbone": "conv4", "loss": "ce", "epochs": 40, "augment": "affine", "lr_schedule": "cosine",
    },
    # Twice the resolution (4x the compute per image: half the epochs cost twice the time).
    "conv4-ce-affine-56px": {"backbone": "conv4", "loss": "ce", "epochs": 10, "augment": "affine", "image_size": 56},
}  # fmt: skip
EPISODE_TASKS = ((5, 1), (5, 5), (20, 1), (20, 5))

PUBLISHED = [
    ("Koch et al. 2015, convolutional Siamese net (full 30-alphabet background set)", "92.0", "", "", "", ""),
    ("Lake et al. 2015, Hierarchical Bayesian Program Learning", "95.2", "", "", "", ""),
    ("People (Lake et al. 2015)", "95.5", "", "", "", ""),
    ("1-nearest-neighbour on raw pixels (Koch et al. 2015)", "21.7", "", "", "", ""),
    (
        "Snell et al. 2017, Prototypical Networks (Vinyals split, 4800 training classes)",
        "",
        "98.8",
        "99.7",
        "96.0",
        "98.9",
    ),
]


METHODS = ["finetune", "transductive", "prototype"]  # a pair-bce embedding is scored by its pair head ("pair")


def train_config(name: str, data_dir: Path, work: Path, seed: int) -> dict[str, Any]:
    """Pretrains one recipe; the row so far: options, training time and steps."""
    sources = [str(data_dir / "images_background_small1.zip"), str(data_dir / "images_background_small2.zip")]
    # The recipes were measured at 28 px, without augmentation or validation unless they say otherwise, and
    # read at the projection head (the embedding before the backbone readout became the default).
    config = PretrainConfig(
        data=sources, out=work / name / "emb_model.pdparams", rotations=True, novel_fraction=0.25, image_size=28,
        augment="none", validation_fraction=0.0, readout="projection",
    )  # fmt: skip
    config.seed = seed
    for key, value in CONFIGS[name].items():
        setattr(config, key, value)
    started = time.perf_counter()
    trained = pretrain(config)
    return {
        "config": name, "options": CONFIGS[name], "train_seconds": round(time.perf_counter() - started),
        "threads": thread_count(), "steps": len(trained.losses),
    }  # fmt: skip


def evaluate_config(
    row: dict[str, Any], data_dir: Path, work: Path, episodes: int, seed: int, views: int
) -> dict[str, Any]:
    """Adds the 20 runs and the episode tasks to a trained recipe's row and saves it: each method as it
    is and, when ``views`` > 0, with that many test-time views (keyed "<method>, <views> views")."""
    folder = work / row["config"]
    checkpoint = folder / "emb_model.pdparams"
    row["runs"], row["episodes"] = {}, {}
    held_out = row["options"].get("novel_fraction") != 0.0  # else nothing held out: no episodes to draw
    for count in sorted({0, views}):
        suffix = f", {count} views" if count else ""
        tag = f"-views{count}" if count else ""
        runs_config = EvaluateConfig(model=checkpoint, runs=data_dir / "all_runs.zip", views=count, seed=seed)
        methods = ["pair"] if row["options"].get("loss") == "pair-bce" else METHODS
        runs_config.method = [*methods, "nn-pixels"] if not count else methods
        runs_config.report = folder / f"runs{tag}.json"
        row["runs"].update({r.method + suffix: r.trial_accuracy for r in evaluate(runs_config).results})
        for way, shot in EPISODE_TASKS if held_out else ():
            config = EvaluateConfig(model=checkpoint, way=way, shot=[shot], episodes=episodes, seed=seed, views=count)
            config.method, config.report = methods, folder / f"episodes-{way}w{shot}s{tag}.json"
            task = row["episodes"].setdefault(f"{way}w{shot}s", {})
            task.update({r.method + suffix: (r.mean, r.interval) for r in evaluate(config).results})
    (folder / "row.json").write_text(json.dumps(row, indent=1))
    return row


def markdown(rows: list[dict[str, Any]], episodes: int) -> str:
    lines = [
        "| model | pretraining (this CPU) | 20 runs | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot | 20-way 5-shot |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        # A pair-bce embedding is scored through its pair head ("pair"), the others by every method.
        for method in [m for m in row["runs"] if m != "nn-pixels"]:
            scores = [row["episodes"].get(f"{w}w{s}s", {}).get(method) for w, s in EPISODE_TASKS]
            cells = [f"{100 * score[0]:.1f} +- {100 * score[1]:.1f}" if score else "-" for score in scores]
            minutes = f"{row['train_seconds'] / 60:.0f} min ({row['steps']} steps, {row['threads']} thread(s))"
            lines.append(
                f"| ours: {row['config']}, {method} | {minutes} | {100 * row['runs'][method]:.1f} | "
                + " | ".join(cells)
                + " |"
            )
    for size in sorted({row["options"].get("image_size", 28) for row in rows}):
        pixels = next(r["runs"]["nn-pixels"] for r in rows if r["options"].get("image_size", 28) == size)
        lines.append(f"| ours: 1-NN raw pixels at {size} px | - | {100 * pixels:.1f} | | | | |")
    for name, *cells in PUBLISHED:
        lines.append(f"| {name} | | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Our episodes: {episodes} seeded episodes with 15 queries per class, drawn from the 2 background alphabets "
        "held out of pretraining (within- and across-alphabet classes mixed); mean +- 95% interval, in %. "
        "The 20 runs are 20-way one-shot within evaluation alphabets (400 trials). Published episode numbers "
        "use a different split (Vinyals et al.'s 1200 training characters x 4 rotations): not directly comparable."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="recipe(s) to run [all]")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=REPO / "models" / "omniglot-benchmark")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--views", type=int, default=8, help="also score with this many test-time views (evaluate --views; 0: not)"
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--table", action="store_true", help="train nothing: tabulate the rows saved in --work")
    parser.add_argument(
        "--reevaluate", action="store_true", help="train nothing: evaluate the saved recipes again (new methods)"
    )
    args = parser.parse_args()
    names = args.config or list(CONFIGS)
    if args.table or args.reevaluate:
        saved = [args.work / name / "row.json" for name in names]
        rows = [json.loads(path.read_text()) for path in saved if path.is_file()]
        if args.reevaluate:
            rows = [
                evaluate_config(row, args.data_dir, args.work, args.episodes, args.seed, args.views) for row in rows
            ]
    else:
        rows = [
            evaluate_config(train_config(name, args.data_dir, args.work, args.seed), args.data_dir, args.work,
                            args.episodes, args.seed, args.views)
            for name in names
        ]  # fmt: skip
    table = markdown(rows, args.episodes)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()

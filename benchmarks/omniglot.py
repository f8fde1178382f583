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

from pdfewshot.runtime import thread_count
from pdfewshot.stages.evaluate import EvaluateConfig, evaluate
from pdfewshot.stages.pretrain import PretrainConfig, pretrain

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "omniglot"

# Pretraining recipes: options of PretrainConfig. Both reduced sets merged, rotations as new classes.
CONFIGS: dict[str, dict[str, Any]] = {
    "resnet18-cosine-mse": {"epochs": 1},
    "resnet18-ce-warmup": {"warmup_epochs": 2, "epochs": 1},
    "conv4-triplet": {"backbone": "conv4", "loss": "triplet", "epochs": 3},
    # Koch's net at his 105 px costs ~15-20 s per step of 64 pairs here: a few minutes of his recipe.
    "koch-pair-bce-affine": {
        "backbone": "koch", "image_size": 105, "loss": "pair-bce", "augment": "affine", "epochs": 2,
        "steps_per_epoch": 40,
    },
    "conv4-ce-affine": {"backbone": "conv4", "loss": "ce", "epochs": 20, "augment": "affine"},
    "conv4-ce-affine-cosine": {
        "backbone": "conv4", "loss": "ce", "epochs": 40, "augment": "affine", "lr_schedule": "cosine",
    },
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


def run_config(name: str, data_dir: Path, work: Path, episodes: int, seed: int) -> dict[str, Any]:
    sources = [str(data_dir / "images_background_small1.zip"), str(data_dir / "images_background_small2.zip")]
    checkpoint = work / name / "emb_model.pdparams"
    config = PretrainConfig(data=sources, out=checkpoint, rotations=True, novel_fraction=0.25, seed=seed)
    for key, value in CONFIGS[name].items():
        setattr(config, key, value)
    started = time.perf_counter()
    trained = pretrain(config)
    train_seconds = time.perf_counter() - started

    runs = evaluate(EvaluateConfig(model=checkpoint, runs=data_dir / "all_runs.zip", report=work / name / "runs.json"))
    row: dict[str, Any] = {
        "config": name, "options": CONFIGS[name], "train_seconds": round(train_seconds),
        "threads": thread_count(),
        "steps": len(trained.losses), "runs": {r.method: r.trial_accuracy for r in runs.results},
        "episodes": {},
    }  # fmt: skip
    for way, shot in EPISODE_TASKS:
        result = evaluate(
            EvaluateConfig(
                model=checkpoint,
                methods=["finetune", "prototype"],  # "pair" for a pair-bce embedding
                way=way,
                shots=[shot],
                episodes=episodes,
                seed=seed,
                report=work / name / f"episodes-{way}w{shot}s.json",
            )
        )
        row["episodes"][f"{way}w{shot}s"] = {r.method: (r.mean, r.interval) for r in result.results}
    (work / name / "row.json").write_text(json.dumps(row, indent=1))
    return row


def markdown(rows: list[dict[str, Any]], episodes: int) -> str:
    lines = [
        "| model | pretraining (this CPU) | 20 runs | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot | 20-way 5-shot |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        # A pair-bce embedding is scored through its pair head ("pair"), the others by both methods.
        for method in [m for m in ("finetune", "prototype", "pair") if m in row["runs"]]:
            scores = [row["episodes"][f"{w}w{s}s"][method] for w, s in EPISODE_TASKS]
            cells = [f"{100 * mean:.1f} +- {100 * interval:.1f}" for mean, interval in scores]
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
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--table", action="store_true", help="train nothing: tabulate the rows saved in --work")
    args = parser.parse_args()
    if args.table:
        saved = [args.work / name / "row.json" for name in args.config or CONFIGS]
        rows = [json.loads(path.read_text()) for path in saved if path.is_file()]
    else:
        rows = [run_config(name, args.data_dir, args.work, args.episodes, args.seed) for name in args.config or CONFIGS]
    table = markdown(rows, args.episodes)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()

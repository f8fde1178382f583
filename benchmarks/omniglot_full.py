"""Omniglot's full background set (30 alphabets, 964 characters) as a user has it, scored on the 20 official runs,
with how the runs' accuracy grows with minutes of training.

One ``pdfewshot pretrain --data images_background.zip`` run (the data choose the rest; ``--option KEY=VALUE`` adds
options, as ``rotations=true``) under ``--time-budget``, its training state saved every ``--save-every`` steps. While
it trains, this script keeps a copy of that state as it stood at each of ``--marks`` minutes; afterwards the final
embedding and each copy are scored on ``all_runs.zip`` (400 trials, prototype, mean +- 95% interval over the
trials) and the validation classes' record (background characters held out of the steps) is printed beside them.
A copy is the weights the run had then, not those a shorter ``--time-budget`` would keep (early stopping keeps the
best validated weights).

    python benchmarks/omniglot_full.py --option rotations=true --time-budget 60m --marks 10 20 40
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "omniglot"


def train(work: Path, options: list[str], budget: str, save_every: int, marks: list[float]) -> dict[float, float]:
    """Runs pretrain in a child process; copies its resume file at each mark (minutes). Returns mark -> the minute
    at which the copied state was written."""
    out = work / "emb_model.pdparams"
    resume = work / "emb_model.resume.pdparams"
    command = [str(Path(sys.executable).parent / "pdfewshot"), "pretrain",
               "--data", str(DATA / "images_background.zip"), "--out", str(out), "--time-budget", budget,
               "--save-every", str(save_every)]  # fmt: skip
    for option in options:
        key, value = option.split("=", 1)
        flag = "--" + key.replace("_", "-")
        command += [flag] if value == "true" else [f"--no-{flag[2:]}"] if value == "false" else [flag, value]
    print("pdfewshot " + " ".join(command[1:]), flush=True)
    started = time.time()
    child = subprocess.Popen(command)
    copied: dict[float, float] = {}
    while child.poll() is None:
        time.sleep(2)
        minutes = (time.time() - started) / 60
        for mark in marks:
            if mark not in copied and minutes >= mark and resume.is_file():
                shutil.copy(resume, work / f"at-{mark:g}min.resume.pdparams")
                copied[mark] = (resume.stat().st_mtime - started) / 60
                print(f"kept the state written at {copied[mark]:.1f} min for the {mark:g} min mark", flush=True)
    if child.returncode != 0:
        raise SystemExit(f"pretrain failed ({child.returncode})")
    print(f"pretrain took {(time.time() - started) / 60:.1f} min", flush=True)
    return copied


def as_embedding(snapshot: Path, final: Path) -> Path:
    """The weights of a resume file in an embedding checkpoint made like the final one."""
    import pdfewshot  # noqa: F401  (before Paddle: sets its threads)
    from pdfewshot.stages.common import open_embedding
    from pdfewshot.storage.checkpoint import read_checkpoint, save_checkpoint
    from pdfewshot.storage.metadata import ResumeMeta

    net, meta = open_embedding(final)
    state, _ = read_checkpoint(snapshot, ResumeMeta)
    net.set_state_dict({key: value for key, value in state.items() if key in net.state_dict()})
    path = snapshot.with_name(snapshot.name.replace(".resume.pdparams", ".emb.pdparams"))
    save_checkpoint(path, net, meta)
    return path


def score_runs(model: Path) -> tuple[float, float]:
    import pdfewshot  # noqa: F401
    from pdfewshot.config import EvaluateConfig
    from pdfewshot.stages.evaluate import evaluate

    config = EvaluateConfig(model=model, runs=DATA / "all_runs.zip", method=["prototype"], show_progress=False,
                            report=model.with_suffix(".runs.json"))  # fmt: skip
    result = evaluate(config).results[0]
    return result.trial_accuracy, result.trial_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--option", action="append", default=[], help="a pretrain option KEY=VALUE (repeatable)")
    parser.add_argument("--time-budget", default="60m")
    parser.add_argument("--marks", type=float, nargs="*", default=[10, 20, 40])
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--work", type=Path, default=REPO / "models" / "omniglot-full")
    parser.add_argument("--score-only", action="store_true", help="score what --work holds, train nothing")
    args = parser.parse_args()
    name = "-".join(["default", *(o.replace("=", "_") for o in args.option)])
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    copied = {} if args.score_only else train(work, args.option, args.time_budget, args.save_every, args.marks)
    final = work / "emb_model.pdparams"
    meta = json.loads(final.with_suffix(".json").read_text())
    record = meta["training"]
    print(
        f"settings: {meta['backbone']}, {meta['image_size']} px, loss {meta['loss']}; {record['stopped_because']}; "
        f"{record['steps']} steps, kept step {record['best_step']}; validation: {record.get('validations', [])[-3:]}"
    )
    rows = []
    for snapshot in sorted(work.glob("at-*min.resume.pdparams"), key=lambda p: float(p.name[3:].split("min")[0])):
        mark = float(snapshot.name[3:].split("min")[0])
        accuracy, interval = score_runs(as_embedding(snapshot, final))
        rows.append((f"{mark:g} min (state of {copied.get(mark, mark):.1f} min)", accuracy, interval))
    accuracy, interval = score_runs(final)
    rows.append((f"end: {record['stopped_because']}", accuracy, interval))
    cpu = Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"\n{cpu}; options: {' '.join(args.option) or 'none'}, --time-budget {args.time_budget}\n")
    print("| training | 20 runs (prototype, 400 trials) |\n| --- | --- |")
    for when, accuracy, interval in rows:
        print(f"| {when} | {accuracy:.4f} +- {interval:.4f} |")


if __name__ == "__main__":
    main()

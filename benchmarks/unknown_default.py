"""What answering "unknown" by default costs and gains, as a user meets it: ``finetune`` on a few photos of
some classes, then ``predict`` with no option on held-out photos of those classes and on photos of others.

Photographs (caltech101_dev, the ImageNet MobileNetV2 file as it is): five categories taught from 6 photos
each (``--shot 5``), up to 12 more of each held out, and 20 outside photos (2 each of 10 other categories).
Faces (lfw_dev, face-api's networks): five people taught from 2 photos each (``--shot 1``), up to 12 more of
each held out, and one photo each of 20 other people; the embedding with no ``--data`` (the face start's
own threshold) and with ``--data`` of the people left over (the threshold ``pretrain`` chooses on them).
Each on several seeded draws of the classes:

    python benchmarks/unknown_default.py --seeds 0 1 2 3 4

prints, per route and seed, the share of held-out known photos answered with their class (closed-set right:
not "unknown" and the right class), the share of outside photos answered "unknown", and the stored threshold.
"""

import argparse
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import FinetuneConfig, PredictConfig, PretrainConfig
from pdfewshot.data.sources import IMAGE_SUFFIXES
from pdfewshot.runtime import cpu_info, thread_count
from pdfewshot.stages.finetune import finetune
from pdfewshot.stages.predict import UNKNOWN, predict
from pdfewshot.stages.pretrain import pretrain

KNOWN, OUTSIDE_CLASSES, HELD_OUT = 5, 10, 12


def photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def draw(data: Path, work: Path, seed: int, taught: int, outside: int, each_outside: int) -> dict[str, Any]:
    """Links a teaching folder (``taught`` photos of each of KNOWN classes) and returns the held-out and
    outside photos, the classes drawn by ``seed`` among those with enough photos."""
    classes = sorted(p for p in data.iterdir() if p.is_dir())
    rng = random.Random(seed)
    rng.shuffle(classes)
    known = [c for c in classes if len(photos(c)) >= taught + 1][:KNOWN]
    others = [c for c in classes if c not in known]
    teach = work / "teach"
    shutil.rmtree(teach, ignore_errors=True)
    held_out: list[tuple[Path, str]] = []
    for folder in known:
        files = photos(folder)
        rng.shuffle(files)
        (teach / folder.name).mkdir(parents=True)
        for file in files[:taught]:
            (teach / folder.name / file.name).symlink_to(file.resolve())
        held_out += [(file, folder.name) for file in files[taught : taught + HELD_OUT]]
    outside_files = [file for folder in others[:outside] for file in rng.sample(photos(folder), each_outside)]
    return {"teach": teach, "held_out": held_out, "outside": outside_files, "rest": others[outside:]}


def answers(model: Path, files: list[Path]) -> list[list[str]]:
    """The labels ``predict`` gives each file with no option (the face route: one per face found)."""
    predictions, _ = predict(PredictConfig(inputs=files, model=model))
    by_file: dict[str, list[str]] = {}
    for prediction in predictions:
        by_file.setdefault(prediction.image, []).append(prediction.label)
    return [by_file.get(str(file), ["no face found"]) for file in files]


def measure(
    embedding: Path, drawn: dict[str, Any], shot: int, work: Path, seed: int, reject_rate: float = 0.05
) -> dict[str, Any]:
    model = work / "predictor.pdparams"
    finetune(FinetuneConfig(model=embedding, out=model, shot=shot, data=[str(drawn["teach"])], seed=seed,
                            reject_rate=reject_rate, show_progress=False))  # fmt: skip
    meta = json.loads(model.with_suffix(".json").read_text())
    known = answers(model, [file for file, _ in drawn["held_out"]])
    right = [labels[0] == name for labels, (_, name) in zip(known, drawn["held_out"], strict=True)]
    rejected = [labels[0] == UNKNOWN for labels in answers(model, drawn["outside"])]
    return {"known_right": float(np.mean(right)), "known": len(right), "outside_unknown": float(np.mean(rejected)),
            "outside": len(rejected), "threshold": meta.get("suggested_reject_below")}  # fmt: skip


def link_people(folders: list[Path], target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in folders:
        (target / folder.name).symlink_to(folder.resolve())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/caltech101_dev"))
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/lfw_dev"))
    parser.add_argument("--imagenet", type=Path, default=Path("../shared/weights/mobilenet_v2_imagenet.pdparams"))
    parser.add_argument("--face-weights", type=Path, default=Path("../shared/weights/face-api/model"))
    parser.add_argument("--work", type=Path, default=Path("models/unknown_default"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--routes", nargs="+", default=["photos", "faces", "faces-data"])
    parser.add_argument("--reject-rates", type=float, nargs="+", default=[0.05], help="finetune's, for photos")
    args = parser.parse_args()
    print(f"{cpu_info().get('model name', 'unknown CPU')}, {thread_count()} threads")
    rows = []
    photo_embedding, face_embedding = args.work / "photos" / "emb_model.pdparams", args.work / "faces" / "emb.pdparams"
    if "photos" in args.routes:
        pretrain(PretrainConfig(pretrained=str(args.imagenet), backbone="mobilenet_v2", epochs=0, out=photo_embedding))
    if "faces" in args.routes:
        pretrain(PretrainConfig(pretrained=str(args.face_weights), epochs=0, out=face_embedding))
    for seed in args.seeds:
        started = time.perf_counter()
        work = args.work / f"seed{seed}"
        if "photos" in args.routes:
            drawn = draw(args.photos, work / "photos", seed, 6, OUTSIDE_CLASSES, 2)
            for rate in args.reject_rates:
                row = measure(photo_embedding, drawn, 5, work, seed, rate)
                rows.append({"route": f"photos 5-shot, --reject-rate {rate}", "seed": seed, **row})
        drawn = draw(args.faces, work / "faces", seed, 2, 20, 1)
        if "faces" in args.routes:
            rows.append({"route": "faces 1-shot", "seed": seed, **measure(face_embedding, drawn, 1, work, seed)})
        if "faces-data" in args.routes:
            embedding = work / "faces-data" / "emb.pdparams"
            others = link_people(drawn["rest"], work / "others")
            pretrain(PretrainConfig(pretrained=str(args.face_weights), epochs=0, data=[str(others)], out=embedding))
            row = measure(embedding, drawn, 1, work, seed)
            rows.append({"route": "faces 1-shot, --data others", "seed": seed, **row})
        for row in [row for row in rows if row["seed"] == seed]:
            print(f"{row['route']}, seed {seed}: known right {row['known_right']:.3f} of {row['known']}, "
                  f"outside unknown {row['outside_unknown']:.3f} of {row['outside']}, "
                  f"threshold {row['threshold']}", flush=True)  # fmt: skip
        print(f"  seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    print("| route | seeds | known right | outside unknown |")
    print("| --- | --- | --- | --- |")
    for route in dict.fromkeys(row["route"] for row in rows):
        mine = [row for row in rows if row["route"] == route]
        print(f"| {route} | {len(mine)} | {np.mean([r['known_right'] for r in mine]):.3f} | "
              f"{np.mean([r['outside_unknown'] for r in mine]):.3f} |")  # fmt: skip
    (args.work / "unknown_default.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

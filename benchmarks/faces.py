"""The face route on ../shared/data/lfw_dev: one photo of a person is enough.

Split ``people40`` (benchmarks/photos.py): lfw_dev's sorted folder names shuffled by ``random.Random(7)``, the
first 40 are the new people; the other 118 are the base set. Rows:

- ``faces``: ``pretrain --data BASE --pretrained WEIGHTS --epochs 0`` (face-api's networks, no training; the
  pair threshold chosen on the base people), then ``evaluate --data NOVEL``: the time from nothing (an empty
  decoded cache) to the first 5-way 1-shot evaluation is printed;
- ``faces-trained``: the same start trained on the 118 base people with pretrain's defaults (``--time-budget``);
- ``whole-image``: the same descriptor given the whole image centre-cropped and resized to 150 px (no detector,
  no landmarks).

Each row: 5-way 1-shot, 5-way 5-shot and 20-way 1-shot (prototype and finetune, 300 episodes), pair
verification at the threshold pretrain stored (1000 pairs of the new people; ROC AUC, EER). Then the share of
lfw_dev's images in which a face is found, and seconds per image for detection, landmarks and descriptor.

Then faces framed as users frame them (``--framings``; benchmarks/face_framings.py makes them from the 40 new
people's images): for each detector setting (the default search, face-api.js's own 416 px input, and the two
square sizes 160 and 320 px the route used before), the share of images with a face found (of the group
photos: of the faces placed), faces found on background-only corners, and seconds per image for finding every
face (detection and landmarks, one image at a time); and with the default search, 5-way and 20-way 1-shot
``evaluate`` (prototype) of the ``faces`` embedding on each framing.

    python benchmarks/faces.py --weights ../shared/weights/face-api/model --work models/faces
    python benchmarks/faces.py --rows faces --framings lfw tight turned25 turned45 small56 small40 group corners
"""

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from face_framings import write_framing
from photos import split_categories

from pdfewshot.config import EvaluateConfig, PretrainConfig
from pdfewshot.data.sources import load_sources
from pdfewshot.nets.faces.descriptor import CHIP_SIZE, FaceRecognitionNet, load_descriptor
from pdfewshot.nets.faces.finder import FaceChips, FaceFinder
from pdfewshot.nets.faces.search import PACKAGE_SEARCH, PACKAGE_SSD_SEARCH, FaceSearch
from pdfewshot.runtime import cpu_info, set_paddle_threads, thread_count
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.pretrain import pretrain
from pdfewshot.storage.checkpoint import META_KEY

TASKS = [(5, 1), (5, 5), (20, 1)]
METHODS = ["prototype", "finetune"]


def evaluate_row(
    model: Path, novel: Path, work: Path, episodes: int, pairs: int, seed: int,
    tasks: list[tuple[int, int]] = TASKS, methods: list[str] = METHODS,
) -> dict[str, Any]:  # fmt: skip
    """Episodes of each task and (``pairs`` above 0) pair verification of the embedding ``model`` on the new
    people."""
    row: dict[str, Any] = {"tasks": {}}
    for way, shot in tasks:
        config = EvaluateConfig(model=model, data=[str(novel)], way=way, shot=[shot], episodes=episodes, seed=seed,
                                method=methods, report=work / f"episodes-{way}w{shot}s.json")  # fmt: skip
        for result in evaluate(config).results:
            row["tasks"].setdefault(f"{way}w{shot}s", {})[result.method] = [result.mean, result.interval]
            print(f"  {way}-way {shot}-shot {result.method}: {result.mean:.4f} +- {result.interval:.4f}", flush=True)
        row.setdefault("first_evaluation_done", time.perf_counter())
    if not pairs:
        return row
    copy = model.with_name("pairs_" + model.name)  # evaluate --pairs may store a threshold: keep the original
    shutil.copy(model, copy)
    verified = evaluate(EvaluateConfig(model=copy, data=[str(novel)], pairs=pairs, seed=seed, report=None)).pairs
    assert verified is not None
    row["pairs"] = {"accuracy": verified.accuracy, "interval": verified.accuracy_interval,
                    "threshold": verified.threshold, "threshold_from": verified.threshold_from,
                    "auc": verified.auc, "eer": verified.eer}  # fmt: skip
    print(f"  pairs: accuracy {verified.accuracy:.4f} +- {verified.accuracy_interval:.4f} at "
          f"{verified.threshold:.4f} ({verified.threshold_from}), ROC AUC {verified.auc:.4f}, EER {verified.eer:.4f}",
          flush=True)  # fmt: skip
    return row


def face_row(name: str, base: Path, novel: Path, work: Path, weights: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Pretrain from face-api's networks (no training, or trained on the base people), then evaluate."""
    out = work / name / "emb_model.pdparams"
    started = time.perf_counter()
    training = {"epochs": 0} if name == "faces" else {"time_budget": args.time_budget}
    result = pretrain(PretrainConfig(data=[str(base)], out=out, pretrained=str(weights), seed=args.seed, **training))
    pretrain_seconds = time.perf_counter() - started
    print(f"{name}: pretrain {pretrain_seconds:.0f} s, {len(result.losses)} steps", flush=True)
    row = evaluate_row(out, novel, work / name, args.episodes, args.pairs, args.seed)
    row["first_evaluation_seconds"] = round(row.pop("first_evaluation_done") - started)
    row["pretrain_seconds"] = round(pretrain_seconds)
    row["steps"] = len(result.losses)
    meta = json.loads(out.with_suffix(".json").read_text())
    row["stopped_because"] = meta["training"]["stopped_because"]
    if name == "faces":
        print(f"  from nothing to the first evaluation: {row['first_evaluation_seconds']} s", flush=True)
    return row


def whole_image_row(faces_model: Path, novel: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The face descriptor on whole images: the face checkpoint without its face finder."""
    import paddle

    state = paddle.load(str(faces_model))
    meta = json.loads(state[META_KEY])
    meta["face_alignment"] = None
    state = {key: value for key, value in state.items() if not key.startswith("face_finder.")}
    state[META_KEY] = json.dumps(meta)
    out = work / "whole-image" / "emb_model.pdparams"
    out.parent.mkdir(parents=True, exist_ok=True)
    paddle.save(state, str(out))
    print("whole-image:", flush=True)
    return evaluate_row(out, novel, work / "whole-image", args.episodes, args.pairs, args.seed)


def found_share(folders: list[Path], chips: FaceChips) -> dict[str, Any]:
    """How many of the images a face is found in (read from the decoded cache the rows built)."""
    missing, total = [], 0
    for folder in folders:
        imageset, report = load_sources([str(folder.resolve())], CHIP_SIZE, 3, shaper=chips)
        missing += [path for path, why in report.skipped if why == "no face found"]
        total += len(imageset.labels) + len(report.skipped)
    print(f"face found in {total - len(missing)} of {total} images ({1 - len(missing) / total:.4f})", flush=True)
    return {"images": total, "no_face": len(missing), "share": 1 - len(missing) / total, "examples": missing[:5]}


def seconds_per_image(data: Path, weights: Path, count: int = 60) -> dict[str, float]:
    """Detection, landmarks and descriptor each timed on ``count`` images (after one warm-up image)."""
    import paddle
    from PIL import Image

    finder, descriptor = FaceFinder(), FaceRecognitionNet()
    finder.load_face_api(weights)
    load_descriptor(descriptor, weights)
    finder.eval()
    descriptor.eval()
    files = sorted(data.glob("*/*.jpg"))[:: max(1, len(list(data.glob("*/*.jpg"))) // count)][:count]
    images = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    timings = {"detection": 0.0, "landmarks": 0.0, "descriptor": 0.0}
    for index, image in enumerate([images[0], *images]):
        started = time.perf_counter()
        found = finder.detect(image)
        detected = time.perf_counter()
        points = finder.locate_landmarks(image, found[0].box) if found else None
        located = time.perf_counter()
        if points is not None:
            chip = finder.find(image)[0].chip
            pixels = paddle.to_tensor(chip.transpose(2, 0, 1)[None].astype("float32"))
            before = time.perf_counter()
            with paddle.no_grad():
                descriptor((pixels - paddle.to_tensor([122.782, 117.001, 104.298]).reshape([1, 3, 1, 1])) / 255)
            described = time.perf_counter() - before
        else:
            described = 0.0
        if index:  # the first is a warm-up
            timings["detection"] += detected - started
            timings["landmarks"] += located - detected
            timings["descriptor"] += described
    shown = {key: round(value / count, 4) for key, value in timings.items()}
    print(f"seconds per image (eager, one at a time): {shown}", flush=True)
    return shown


SETTINGS = {
    "default search": FaceSearch(),
    "face-api.js (416 px)": PACKAGE_SEARCH,
    "160 + 320 px (square)": replace(PACKAGE_SEARCH, sizes=(160, 320)),
    "ssd, face-api.js (512 px)": PACKAGE_SSD_SEARCH,
    "ssd, default checks": FaceSearch(detector="ssd"),
    "default + whole image as a face": FaceSearch(whole_image=True),
}
EPISODE_FRAMINGS = ("lfw", "tight", "turned25", "turned45", "small56", "small40")
PEOPLE_IN_GROUP = 4  # face_framings' group photos


def detection_row(folder: Path, finder: FaceFinder, framing: str, count: int) -> dict[str, Any]:
    """Share of images with a face found (group photos: faces found of those placed, extra faces counted) and
    seconds per image for every face of up to ``count`` images spread over ``folder``."""
    from PIL import Image

    files = sorted(folder.glob("*/*.png"))
    files = files[:: max(1, len(files) // count)][:count]
    images = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    finder.locate(images[0])  # warm-up: the fast path is built on first use
    started = time.perf_counter()
    found = [len(finder.locate(image)) for image in images]
    seconds = (time.perf_counter() - started) / len(images)
    if framing == "group":
        share = sum(min(n, PEOPLE_IN_GROUP) for n in found) / (PEOPLE_IN_GROUP * len(found))
        extra = sum(max(0, n - PEOPLE_IN_GROUP) for n in found)
    else:
        share, extra = float(np.mean([n > 0 for n in found])), 0
    return {"images": len(images), "found": share, "extra_faces": extra, "seconds_per_image": round(seconds, 4)}


def framing_rows(novel: Path, work: Path, weights: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The detection table of every setting on every framing, and the episodes of the default search."""
    folders = {name: write_framing(novel, work / "framings" / name, name, args.seed) for name in args.framings}
    table: dict[str, Any] = {"detection": {}, "episodes": {}}
    for setting in args.settings:
        search = SETTINGS[setting]
        finder = FaceFinder(search)
        finder.load_face_api(weights)
        finder.eval()
        for name, folder in folders.items():
            row = detection_row(folder, finder, name, args.framing_images)
            table["detection"].setdefault(setting, {})[name] = row
            print(f"{setting}, {name}: found {row['found']:.4f} of {row['images']} (extra faces {row['extra_faces']}), "
                  f"{row['seconds_per_image']:.3f} s an image", flush=True)  # fmt: skip
    model = work / "faces" / "emb_model.pdparams"
    for name in (n for n in EPISODE_FRAMINGS if n in folders):
        print(f"{name}, default search:", flush=True)
        report = work / "framings" / f"{name}-report"
        row = evaluate_row(model, folders[name], report, args.episodes, 0, args.seed, [(5, 1), (20, 1)], ["prototype"])
        table["episodes"][name] = row["tasks"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/lfw_dev"))
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/face-api/model"))
    parser.add_argument("--work", type=Path, default=Path("models/faces"))
    parser.add_argument("--rows", nargs="+", default=["faces", "whole-image", "faces-trained"])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", default="10m", help="for faces-trained")
    parser.add_argument("--framings", nargs="*", default=[], help="framings of face_framings.FRAMINGS to measure")
    parser.add_argument(
        "--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), help="detector settings"
    )
    parser.add_argument("--framing-images", type=int, default=200, help="images of each framing timed and counted")
    args = parser.parse_args()
    import paddle  # after pdfewshot, which records the thread count before Paddle's import sets OMP_NUM_THREADS

    set_paddle_threads()
    cache = args.work / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # from nothing: every face found and chipped anew
    os.environ["PDFEWSHOT_CACHE"] = str(cache)
    base, novel = split_categories(args.data, args.work / "data", "people40", args.seed)
    print(f"{cpu_info().get('model name', 'unknown CPU')}, {thread_count()} threads, Paddle {paddle.__version__}")
    results: dict[str, Any] = {"cpu": cpu_info().get("model name"), "threads": thread_count(),
                               "paddle": paddle.__version__, "rows": {}}  # fmt: skip
    for name in args.rows:
        if name == "whole-image":
            results["rows"][name] = whole_image_row(args.work / "faces" / "emb_model.pdparams", novel, args.work, args)
        else:
            results["rows"][name] = face_row(name, base, novel, args.work, args.weights, args)
    finder = FaceFinder()
    finder.load_face_api(args.weights)
    finder.eval()
    results["found"] = found_share([base, novel], FaceChips(finder))
    results["seconds_per_image"] = seconds_per_image(args.data, args.weights)
    if args.framings:
        results["framings"] = framing_rows(novel, args.work, args.weights, args)
    (args.work / "faces.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.work / 'faces.json'}")


if __name__ == "__main__":
    main()

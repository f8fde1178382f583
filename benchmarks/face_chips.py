"""How the face route finds and cuts faces, chosen by measurement on the 40 new people of lfw_dev (people40,
see benchmarks/photos.py): the detector's input sizes (the share of images with a face found) and the way a
chip is cut from the landmarks (5-way and 20-way 1-shot, nearest prototype by cosine, 300 seeded episodes of
15 queries a class), each image's largest face.

    python benchmarks/face_chips.py                       # the default search (nets/faces/search.py)
    python benchmarks/face_chips.py --sizes 416           # face-api.js's one square input
    python benchmarks/face_chips.py --data FRAMED_FOLDER  # faces framed otherwise (benchmarks/face_framings.py)
"""

import argparse
import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from pdfewshot.nets.faces.descriptor import MEAN_RGB, FaceRecognitionNet, load_descriptor
from pdfewshot.nets.faces.finder import ALIGNMENTS, FaceFinder, face_chip
from pdfewshot.nets.faces.search import PACKAGE_SEARCH, FaceSearch
from pdfewshot.runtime import set_paddle_threads


def new_people(data: Path) -> list[str]:
    names = sorted(p.name for p in data.iterdir() if p.is_dir())
    random.Random(7).shuffle(names)
    return names[:40]


def episodes(embeddings: np.ndarray, labels: np.ndarray, way: int, seed: int = 0, count: int = 300) -> float:
    """Mean accuracy of ``count`` seeded ``way``-way 1-shot episodes, the prototype being the one support image."""
    rng, accuracies = np.random.default_rng(seed), []
    for _ in range(count):
        classes = rng.choice(np.unique(labels), way, replace=False)
        support, queries, truth = [], [], []
        for k, name in enumerate(classes):
            rows = rng.permutation(np.nonzero(labels == name)[0])
            support.append(embeddings[rows[0]])
            queries.append(embeddings[rows[1:16]])
            truth += [k] * len(rows[1:16])
        scores = np.concatenate(queries) @ np.stack(support).T
        accuracies.append(np.mean(scores.argmax(1) == np.array(truth)))
    return float(np.mean(accuracies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/lfw_dev"))
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/face-api/model"))
    parser.add_argument("--sizes", type=int, nargs="+", help="fixed square inputs (default: the default search)")
    parser.add_argument("--flip", action="store_true", help="also average each chip's descriptor with its mirror's")
    args = parser.parse_args()
    import paddle
    from PIL import Image

    set_paddle_threads()
    # --sizes: face-api.js's own search at those square sizes (no border, no landmark check, no turning)
    search = FaceSearch() if args.sizes is None else replace(PACKAGE_SEARCH, sizes=tuple(args.sizes))
    finder, descriptor = FaceFinder(search), FaceRecognitionNet()
    finder.load_face_api(args.weights)
    load_descriptor(descriptor, args.weights)
    finder.eval()
    descriptor.eval()
    chips: dict[str, list[np.ndarray]] = {name: [] for name in ALIGNMENTS}
    labels, total = [], 0
    for label, person in enumerate(new_people(args.data)):
        for path in sorted((args.data / person).iterdir()):
            image = np.asarray(Image.open(path).convert("RGB"))
            total += 1
            found = finder.locate(image, largest=True)
            if not found:
                continue
            points = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).landmarks
            for name in ALIGNMENTS:
                chips[name].append(face_chip(image, points, name))
            labels.append(label)
    print(f"{search}: a face found in {len(labels)} of {total} images ({len(labels) / total:.4f})")

    def described(rows: list[np.ndarray]) -> np.ndarray:
        out = []
        mean = paddle.to_tensor(MEAN_RGB, "float32").reshape([1, 3, 1, 1])
        for start in range(0, len(rows), 64):
            pixels = paddle.to_tensor(np.stack(rows[start : start + 64]).transpose(0, 3, 1, 2).astype("float32"))
            with paddle.no_grad():
                out.append(descriptor((pixels - mean) / 255.0).numpy())
        features = np.concatenate(out)
        return np.asarray(features / np.linalg.norm(features, axis=1, keepdims=True))

    truth = np.array(labels)

    def scored(embeddings: np.ndarray) -> str:
        return f"5-way 1-shot {episodes(embeddings, truth, 5):.4f}, 20-way 1-shot {episodes(embeddings, truth, 20):.4f}"

    for name in ALIGNMENTS:
        embeddings = described(chips[name])
        print(f"{name}: {scored(embeddings)}")
        if args.flip:
            both = embeddings + described([chip[:, ::-1] for chip in chips[name]])
            print(f"{name} + mirror: {scored(both / np.linalg.norm(both, axis=1, keepdims=True))}")


if __name__ == "__main__":
    main()

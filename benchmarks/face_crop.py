"""How much a central crop helps ImageNet features tell faces apart, with no training.

Faces in ../shared/data/lfw_dev are aligned in the middle of 250 px photographs that also hold hair,
shoulders and background. This embeds the 40 new people of ``benchmarks/photos.py --split people40`` with
an embedding checkpoint (by default that benchmark's ``imagenet-224px`` one: the shared ImageNet
MobileNetV2 with no training), each photograph first cut to the central ``FRACTION`` of its side, and
scores 300 seeded prototype episodes at each fraction:

    python benchmarks/photos.py --data ../shared/data/lfw_dev --split people40 --recipe imagenet-224px
    python benchmarks/face_crop.py 1.0 0.6 0.45
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pdfewshot.data.episodes import sample_episodes
from pdfewshot.methods.prototype import PrototypeClassifier
from pdfewshot.nets.inference import run_fast
from pdfewshot.stages.common import open_embedding

WORK = Path(__file__).resolve().parent.parent / "models" / "photos" / "lfw_dev-people40"


def central(path: Path, fraction: float, size: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    side = round(min(image.size) * fraction)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(ImageOps.fit(square, (size, size), Image.Resampling.LANCZOS))  # as pdfewshot resizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fractions", type=float, nargs="+")
    parser.add_argument("--model", type=Path, default=WORK / "imagenet-224px" / "emb_model.pdparams")
    parser.add_argument("--novel", type=Path, default=WORK / "data" / "novel")
    parser.add_argument("--episodes", type=int, default=300)
    args = parser.parse_args()
    net, meta = open_embedding(args.model)
    files = [(person.name, image) for person in sorted(args.novel.iterdir()) for image in sorted(person.iterdir())]
    people = sorted({name for name, _ in files})
    labels = np.array([people.index(name) for name, _ in files])
    for fraction in args.fractions:
        embeddings = run_fast(net, np.stack([central(path, fraction, meta.image_size) for _, path in files]))
        shown = []
        for way, shot in ((5, 1), (5, 5), (20, 1)):
            correct = []
            for episode in sample_episodes(labels, way, shot, 5, args.episodes, seed=0):
                support, support_labels = episode.support_at(shot)
                queries, query_labels = episode.queries()
                method = PrototypeClassifier()
                method.fit(embeddings[support], support_labels, way)
                correct.append(np.mean(method.scores(embeddings[queries]).argmax(axis=1) == query_labels))
            shown.append(f"{way}-way {shot}-shot {np.mean(correct):.3f}")
        print(f"central {fraction:.2f} of the side: " + ", ".join(shown), flush=True)


if __name__ == "__main__":
    main()

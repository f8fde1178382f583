"""Which layer is the embedding: the same trained weights read out at the backbone and at the projection head.

For each embedding checkpoint, the images of classes it never trained on (its held-out classes, or
``--data``'s classes it was not trained on) are embedded both ways, and the nearest-prototype method
(Snell et al. 2017) scores the very same seeded episodes on each: 5-way 1-shot and 5-way 5-shot, 15
queries per class, mean +- 95% interval. ``--validation`` scores the checkpoint's validation classes
instead (what early stopping watched).

    python benchmarks/readout.py --model models/emb_model.pdparams
    python benchmarks/readout.py --model M --data ../shared/data/caltech101_dev [--validation]
"""

import argparse
from pathlib import Path

import numpy as np

from pdfewshot.config import READOUT_NAMES
from pdfewshot.data.episodes import confidence_interval, sample_episodes
from pdfewshot.methods.prototype import PrototypeClassifier
from pdfewshot.nets.inference import run_fast
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import few_shot_classes, load_checkpoint_data, open_embedding

TASKS = ((5, 1), (5, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", action="append", default=[])
    parser.add_argument("--validation", action="store_true", help="Score the validation classes.")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--query", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_paddle_threads()
    net, meta = open_embedding(args.model)
    imageset, _, _ = load_checkpoint_data(meta, args.data)
    classes = list(meta.split.validation) if args.validation else few_shot_classes(meta, imageset, bool(args.data))
    images = imageset.subset_classes(classes)
    features = {}
    for readout in READOUT_NAMES:
        net.readout = readout  # the same weights, read at the other layer
        features[readout] = run_fast(net, images.images)
    print(f"{args.model} ({meta.backbone}, {meta.loss}, {meta.image_size} px): {len(classes)} classes, "
          f"{len(images)} images; readout of the checkpoint: {meta.readout}")  # fmt: skip
    print("| task | " + " | ".join(f"{readout} ({features[readout].shape[1]}-d)" for readout in READOUT_NAMES) + " |")
    print("| --- | " + " | ".join("---" for _ in READOUT_NAMES) + " |")
    for way, shot in TASKS:
        way_here = min(way, len(classes))
        query = min(args.query, int(np.bincount(images.labels).min()) - shot)
        drawn = sample_episodes(images.labels, way_here, shot, query, args.episodes, args.seed)
        support = np.stack([episode.support_at(shot)[0] for episode in drawn])
        support_labels = np.stack([episode.support_at(shot)[1] for episode in drawn])
        queries = np.stack([episode.queries()[0] for episode in drawn])
        query_labels = np.stack([episode.queries()[1] for episode in drawn])
        cells = []
        for readout in READOUT_NAMES:
            embedded = features[readout]
            scores = PrototypeClassifier().episode_scores(
                embedded[support], support_labels, way_here, embedded[queries]
            )
            accuracies = np.mean(scores.argmax(axis=2) == query_labels, axis=1)
            cells.append(f"{accuracies.mean():.4f} +- {confidence_interval(accuracies):.4f}")
        print(f"| {way_here}-way {shot}-shot ({query} queries) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

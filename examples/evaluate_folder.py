"""How well an embedding tells your classes apart: seeded N-way K-shot episodes on your folder.

python examples/evaluate_folder.py models/emb_model.pdparams my_classes/ [--way 5] [--shot 1 5]
"""

import argparse

import pdfewshot

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("embedding")
parser.add_argument("folder")
parser.add_argument("--way", type=int, default=5)
parser.add_argument("--shot", type=int, nargs="+", default=[1, 5])
parser.add_argument("--episodes", type=int, default=300)
parser.add_argument("--query", type=int, default=15, help="query images of each class in an episode")
args = parser.parse_args()

embedding = pdfewshot.load(args.embedding)
assert isinstance(embedding, pdfewshot.Embedding), f"{args.embedding}: not an embedding checkpoint"
for shot in args.shot:
    result = embedding.evaluate(args.folder, way=args.way, shot=[shot], query=args.query, episodes=args.episodes,
                                method=["prototype"])  # fmt: skip
    for method in result.results:
        print(f"{args.way}-way {shot}-shot {method.method}: {method.mean:.4f} +- {method.interval:.4f}")

"""Teach classes one at a time from a few images each, then name new images: all through the Python API.

    python examples/teach_and_predict.py models/emb_model.pdparams --teach cat=cats/ --teach dog=dogs/ new.jpg ...

The classifier is kept beside the embedding (where ``pdfewshot serve`` keeps what it is taught), so a second
run goes on from the classes the first one taught.
"""

import argparse
from pathlib import Path

import pdfewshot

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("embedding")
parser.add_argument("images", nargs="+", help="images to name")
parser.add_argument("--teach", action="append", default=[], metavar="NAME=FOLDER")
args = parser.parse_args()

embedding = pdfewshot.load(args.embedding)
assert isinstance(embedding, pdfewshot.Embedding), f"{args.embedding}: not an embedding checkpoint"
classifier = embedding.classifier()
for item in args.teach:
    name, folder = item.split("=", 1)
    taught = classifier.add_class(name, sorted(p for p in Path(folder).iterdir() if p.is_file()))
    print(f"taught {name} from {taught.images} images")
for prediction in classifier.predict(args.images, top_k=2):
    print(prediction.image, prediction.label, f"{prediction.ranked[0][1]:.3f}" if prediction.ranked else "")

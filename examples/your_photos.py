"""A classifier of your own photos from ImageNet weights, with no base set and no training.

    python examples/your_photos.py my_classes/ new_photo.jpg ... [--pretrained imagenet | FILE.pdparams]

``my_classes/<class>/<photo>``: a few photos a class (``--shot`` of them teach it).
"""

import argparse

import pdfewshot

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("photos")
parser.add_argument("new", nargs="+", help="photos to name")
parser.add_argument("--pretrained", default="imagenet", help="imagenet (downloaded once) or a weights file")
parser.add_argument("--shot", type=int, default=5)
parser.add_argument("--out", default="models/your_photos")
args = parser.parse_args()

embedding = pdfewshot.pretrain(pretrained=args.pretrained, epochs=0, out=f"{args.out}/embedding.pdparams")
classifier = pdfewshot.finetune(embedding, data=args.photos, shot=args.shot, out=f"{args.out}/classifier.pdparams")
print("classes:", ", ".join(classifier.classes))
for prediction in classifier.predict(args.new, top_k=2):
    print(prediction.image, prediction.label, ", ".join(f"{name} {p:.2f}" for name, p in prediction.ranked))

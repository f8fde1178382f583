"""Few-shot classifiers with one contract: ``fit`` on a support set, then ``scores`` for queries."""

from pdfewshot.methods.base import FewShotClassifier
from pdfewshot.methods.finetune import FinetuneClassifier
from pdfewshot.methods.nn_pixels import PixelNearestNeighbour
from pdfewshot.methods.prototype import PrototypeClassifier
from pdfewshot.methods.transductive import TransductiveFinetuneClassifier

METHODS: dict[str, type[FewShotClassifier]] = {
    "prototype": PrototypeClassifier,
    "finetune": FinetuneClassifier,
    "transductive": TransductiveFinetuneClassifier,
    "nn-pixels": PixelNearestNeighbour,
}

__all__ = [
    "METHODS",
    "FewShotClassifier",
    "FinetuneClassifier",
    "PixelNearestNeighbour",
    "PrototypeClassifier",
    "TransductiveFinetuneClassifier",
]

"""Few-shot classifiers with one contract: ``fit`` on a support set, then ``scores`` for queries.

:data:`METHODS` is the one registry: a method's name -> a factory that builds it from the settings a
caller has (:class:`MethodSettings`) and, for methods that need it, the embedding's pair head. A new
method is one module here and one entry in the registry.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from pdfewshot.config import METHOD_NAMES
from pdfewshot.errors import PdfewshotError, check_choice
from pdfewshot.methods.base import FewShotClassifier
from pdfewshot.methods.finetune import FinetuneClassifier
from pdfewshot.methods.fitting import FitSettings
from pdfewshot.methods.nn_pixels import PixelNearestNeighbour
from pdfewshot.methods.pair import PairHeadClassifier
from pdfewshot.methods.prototype import PrototypeClassifier
from pdfewshot.methods.transductive import TransductiveFinetuneClassifier
from pdfewshot.nets.pair_head import PairHead


@dataclass(frozen=True)
class MethodSettings:
    """What the methods' constructors may take: the fine-tuning settings, the transductive method's weight
    of the query entropy (in place of the support's), and the pair head of a pair-bce embedding."""

    fit: FitSettings = field(default_factory=FitSettings)
    query_entropy_weight: float = 0.1
    pair_head: PairHead | None = None


def _pair(settings: MethodSettings) -> FewShotClassifier:
    if settings.pair_head is None:
        raise PdfewshotError("pair: needs an embedding pretrained with --loss pair-bce", "method")
    return PairHeadClassifier(settings.pair_head)


METHODS: dict[str, Callable[[MethodSettings], FewShotClassifier]] = {
    "prototype": lambda settings: PrototypeClassifier(),
    "finetune": lambda settings: FinetuneClassifier(
        settings.fit.steps, settings.fit.lr, settings.fit.entropy_weight, settings.fit.scale
    ),
    "transductive": lambda settings: TransductiveFinetuneClassifier(
        settings.fit.steps, settings.fit.lr, settings.query_entropy_weight, settings.fit.scale
    ),
    "nn-pixels": lambda settings: PixelNearestNeighbour(),
    "pair": _pair,
}
assert tuple(METHODS) == METHOD_NAMES, "the registry and config.MethodName list the same methods"


def build_method(name: str, settings: MethodSettings) -> FewShotClassifier:
    """The method called ``name``, built with ``settings``; a one-line error for an unknown name."""
    check_choice(name, METHODS, "method")
    return METHODS[name](settings)


__all__ = [
    "METHODS",
    "FewShotClassifier",
    "FinetuneClassifier",
    "MethodSettings",
    "PixelNearestNeighbour",
    "PrototypeClassifier",
    "TransductiveFinetuneClassifier",
    "build_method",
]

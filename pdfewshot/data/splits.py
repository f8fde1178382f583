"""The base/novel split: which classes pretraining may see and which are kept for few-shot use."""

from collections.abc import Sequence

import numpy as np

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.metadata import Split

__all__ = ["Split", "split_classes"]


def _group(class_name: str) -> str:
    return class_name.rsplit("/", 1)[0] if "/" in class_name else ""


def split_classes(class_names: Sequence[str], novel_fraction: float, seed: int) -> Split:
    """Holds out a seeded ``novel_fraction`` of the alphabets (nested layouts) or of the classes.

    Holding out whole alphabets, as Omniglot's background/evaluation division does, keeps the novel
    classes from looking like near-copies of base ones. A fraction of 0 holds out nothing: every class
    is a base class (for a model evaluated on other data, such as Omniglot's runs).
    """
    if not 0.0 <= novel_fraction < 1.0:
        raise PdfewshotError(f"{novel_fraction}: must be at least 0 and below 1", "novel_fraction")
    groups = sorted({_group(name) for name in class_names})
    by_alphabet = len(groups) >= 2 and "" not in groups
    units = groups if by_alphabet else sorted(class_names)
    if len(units) < 2:
        raise PdfewshotError(f"the data has {len(units)} class: a split needs at least 2")
    count = min(len(units) - 1, max(1, round(novel_fraction * len(units)))) if novel_fraction else 0
    rng = np.random.default_rng(seed)
    novel_units = {units[i] for i in rng.permutation(len(units))[:count]}
    novel = tuple(n for n in sorted(class_names) if (_group(n) if by_alphabet else n) in novel_units)
    base = tuple(n for n in sorted(class_names) if n not in set(novel))
    return Split(base=base, novel=novel, unit="alphabet" if by_alphabet else "class")

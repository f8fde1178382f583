"""The base/novel split: which classes pretraining may see and which are kept for few-shot use."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pdfewshot.atomic import atomic_write_text
from pdfewshot.errors import PdfewshotError


@dataclass(frozen=True)
class Split:
    """Disjoint class lists: ``base`` for pretraining, ``novel`` for the few-shot stages."""

    base: tuple[str, ...]
    novel: tuple[str, ...]
    unit: str  # "alphabet" when whole alphabets were held out, else "class"

    def __post_init__(self) -> None:
        overlap = set(self.base) & set(self.novel)
        if overlap:
            raise ValueError(f"base and novel share classes: {sorted(overlap)[:3]}")

    def to_json(self) -> dict[str, object]:
        return {"unit": self.unit, "base": list(self.base), "novel": list(self.novel)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Split":
        base, novel, unit = data.get("base"), data.get("novel"), data.get("unit", "class")
        if not isinstance(base, list) or not isinstance(novel, list) or not isinstance(unit, str):
            raise PdfewshotError("split: expected lists 'base' and 'novel'")
        return cls(base=tuple(map(str, base)), novel=tuple(map(str, novel)), unit=unit)


def _group(class_name: str) -> str:
    return class_name.rsplit("/", 1)[0] if "/" in class_name else ""


def split_classes(class_names: Sequence[str], novel_fraction: float, seed: int) -> Split:
    """Holds out a seeded ``novel_fraction`` of the alphabets (nested layouts) or of the classes.

    Holding out whole alphabets, as Omniglot's background/evaluation division does, keeps the novel
    classes from looking like near-copies of base ones. A fraction of 0 holds out nothing: every class
    is a base class (for a model evaluated on other data, such as Omniglot's runs).
    """
    if not 0.0 <= novel_fraction < 1.0:
        raise PdfewshotError(f"--novel-fraction {novel_fraction}: must be at least 0 and below 1")
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


def write_split(split: Split, path: str) -> None:
    """Writes the split as JSON (used beside checkpoints so a person can read what was held out)."""
    atomic_write_text(path, json.dumps(split.to_json(), indent=1))

"""What each file that stages hand each other says about itself, as typed records.

Stages meet only at files: the embedding checkpoint (``pretrain``), the predictor checkpoint
(``finetune``, edited by ``support``), the training state (``pretrain --save-every``) and the query
manifest beside a predictor. Each is described here by a dataclass, written with :meth:`to_json`
and read back with :func:`from_json`, which checks that every field is there and of the right kind,
so a damaged or foreign file fails with one line instead of a ``KeyError`` deep in a stage.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pdfewshot.config import READOUT_NAMES
from pdfewshot.errors import PdfewshotError

Record = TypeVar("Record")


@dataclass(frozen=True)
class Split:
    """Disjoint class lists: ``base`` for pretraining, ``novel`` for the few-shot stages, and ``validation``
    (base classes kept out of the gradient steps, to score episodes during training)."""

    base: tuple[str, ...]
    novel: tuple[str, ...]
    unit: str = "class"  # "alphabet" when whole alphabets were held out, else "class"
    validation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        overlap = (set(self.base) | set(self.validation)) & set(self.novel)
        if overlap or set(self.base) & set(self.validation):
            raise ValueError(
                f"split parts share classes: {sorted(overlap or set(self.base) & set(self.validation))[:3]}"
            )

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = to_json(self)
        return record


@dataclass
class TrainingRecord:
    """How pretraining went."""

    steps: int
    processes: int
    final_loss: float | None  # None: no training (the start weights as they are)
    seconds: float
    stopped_because: str = "finished its epochs"
    best_validation: float | None = None  # the best score by ``validation_measure``, when validation ran
    best_step: int | None = None  # the step whose weights were kept
    # [step, score, accuracy] of each validation ([step, accuracy] before the measure was the log-probability)
    validations: list[list[float]] = field(default_factory=list)
    best_accuracy: float | None = None  # the validation accuracy of the kept weights
    validation_measure: str = "accuracy"  # what best_validation measures


def _check_readout(readout: str) -> None:
    if readout not in READOUT_NAMES:
        raise ValueError(f"readout {readout!r} is not one of {', '.join(READOUT_NAMES)}")


@dataclass
class Verification:
    """The threshold that answers "same class?" for pairs of images (``compare``), and where it was chosen."""

    threshold: float
    similarity: str  # "cosine" or "pair-probability" (pdfewshot.methods.verification)
    chosen_on: str  # e.g. "1000 pairs of the 4 validation classes"
    accuracy: float  # verification accuracy of the threshold on the pairs it was chosen on
    # Its accuracy flatters it for ``evaluate --pairs``, which chooses again: chosen on images of classes the
    # network was trained on, or on the novel classes that evaluate scores.
    optimistic: bool = False


@dataclass
class EmbeddingMeta:
    """An embedding checkpoint (``pretrain``): the network and what it was trained on."""

    KIND: ClassVar[str] = "embedding"

    backbone: str
    image_size: int
    channels: int
    embedding_dim: int
    class_names: list[str]
    data: list[str]
    split: Split
    seed: int
    loss: str
    warmup_epochs: int
    config: dict[str, Any]
    training: TrainingRecord
    normalisation: str = "symmetric"  # how pixels are scaled inside the network (nets.embedding)
    readout: str = "projection"  # what the embedding is read from (nets.embedding); older ones: the head
    verification: Verification | None = None  # chosen by pretrain (validation classes) or evaluate --pairs
    face_alignment: str | None = None  # the face route: images enter as aligned face chips cut this way

    def __post_init__(self) -> None:
        _check_readout(self.readout)

    @property
    def pair_head(self) -> bool:
        """Whether the network has Koch et al.'s pair head (pretrained with pair-bce)."""
        return self.loss == "pair-bce"


@dataclass
class PredictorMeta:
    """A predictor checkpoint (``finetune``, ``support add/remove``): embedding + classifier."""

    KIND: ClassVar[str] = "predictor"

    backbone: str
    image_size: int
    channels: int
    embedding_dim: int
    class_names: list[str]
    scale: float
    method: str  # "cosine" (the cosine classifier) or "pair" (Koch et al.'s pair head over stored support)
    loss: str
    support_count: int
    data: list[str]
    embedding_checkpoint: str
    embedding_config: dict[str, Any]
    shot: int
    seed: int
    queries_manifest: str
    suggested_reject_below: float | None
    config: dict[str, Any]
    added_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    normalisation: str = "symmetric"
    readout: str = "projection"
    reject_score: str = "max-softmax"  # what suggested_reject_below is a threshold of (older ones: softmax)
    reject_rate: float = 0.05
    face_alignment: str | None = None  # the face route (as its embedding's)
    reject_origin: str | None = None  # how suggested_reject_below was chosen (pdfewshot.stages.thresholds)

    def __post_init__(self) -> None:
        _check_readout(self.readout)

    @property
    def pair_head(self) -> bool:
        return self.method == "pair"


@dataclass
class ResumeMeta:
    """The training state saved by ``pretrain --save-every`` (see :mod:`pdfewshot.train.resume`)."""

    KIND: ClassVar[str] = "pretrain-state"

    phase: int
    epoch: int
    step: int
    losses: list[float]
    options: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)  # the loop's own record (validation, patience)


@dataclass
class ExportMeta:
    """``pdfewshot.json`` in a folder written by ``export``: how to use the inference model beside it."""

    FILE: ClassVar[str] = "pdfewshot.json"
    FORMAT: ClassVar[str] = "pdfewshot-export"

    format: str
    format_version: int
    pdfewshot_version: str
    program: str  # the model's files are <program>.json (or .pdmodel) and <program>.pdiparams
    class_names: list[str]
    image_size: int
    channels: int
    method: str
    input: str
    output: str
    suggested_reject_below: float | None
    source_checkpoint: str
    reject_score: str = "max-softmax"
    scored: bool = False  # the output carries the largest cosine to a class prototype after the logits
    face_alignment: str | None = None  # the face route: the input is face chips cut this way
    face_finder: str | None = None  # the face route: the file of the face detector's and landmarks' weights
    reject_origin: str | None = None  # how suggested_reject_below was chosen (as the predictor's)
    onnx: str | None = None  # the same model as ONNX (export --format onnx), same input and output
    embedding_onnx: str | None = None  # with --format onnx: the predictor's embedding as ONNX, same input
    embedding_output: str | None = None  # what the embedding gives


@dataclass(frozen=True)
class ImageRef:
    """One image of a data source, by its key, and its class."""

    key: str
    class_name: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "class": self.class_name}


@dataclass
class QueryManifest:
    """Which images ``finetune`` used as support and kept as test queries (beside the predictor)."""

    classes: list[str]
    support: list[ImageRef]
    queries: list[ImageRef]

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "support": [item.to_json() for item in self.support],
            "queries": [item.to_json() for item in self.queries],
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> "QueryManifest":
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise PdfewshotError(f"{where}: not a query manifest (no list of classes)")
        parts = {}
        for part in ("support", "queries"):
            items = data.get(part)
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("key"), str) and isinstance(i.get("class"), str) for i in items
            ):
                raise PdfewshotError(f"{where}: '{part}' must list {{key, class}} entries")
            parts[part] = [ImageRef(i["key"], i["class"]) for i in items]
        return cls([str(c) for c in data["classes"]], parts["support"], parts["queries"])


def to_json(record: Any) -> Any:
    """A record as JSON-ready values (tuples as lists, nested records as objects)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_json(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, list | tuple):
        return [to_json(item) for item in record]
    if isinstance(record, dict):
        return {key: to_json(value) for key, value in record.items()}
    return record


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against (and shaped into) the type ``hint``."""
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        kinds = [a for a in arguments if a is not type(None)]
        return _convert(value, kinds[0], where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise PdfewshotError(f"{where}: expected a list")
        items = [_convert(item, arguments[0], where) for item in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise PdfewshotError(f"{where}: expected an object")
        return {str(k): _convert(v, arguments[1], where) for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise PdfewshotError(f"{where}: expected {hint.__name__}, found {type(value).__name__}")
    return value


def from_json(kind: type[Record], data: Any, where: str = "metadata") -> Record:
    """A record of type ``kind`` from parsed JSON, every field checked; unknown keys are ignored."""
    if not isinstance(data, dict):
        raise PdfewshotError(f"{where}: expected an object")
    hints = typing.get_type_hints(kind)
    values = {}
    for item in dataclasses.fields(kind):  # type: ignore[arg-type]
        if item.name not in data:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise PdfewshotError(f"{where}: field '{item.name}' is missing")
            continue
        values[item.name] = _convert(data[item.name], hints[item.name], f"{where}: field '{item.name}'")
    try:
        return kind(**values)
    except ValueError as error:
        raise PdfewshotError(f"{where}: {error}") from None

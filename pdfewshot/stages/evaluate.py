"""N-way K-shot episodic evaluation with 95% intervals, and Omniglot's 20 official one-shot runs.

All methods (and all shot counts) of one call are scored on the very same episodes, so they compare
pair for pair. Embeddings are computed once for every image, then episodes index into them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pdfewshot.config import DEFAULT_EMBEDDING, DEFAULT_EVALUATE_REPORT, DEFAULT_REJECT_SCORE, EvaluateConfig
from pdfewshot.data.episodes import confidence_interval, sample_episodes
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.omniglot_runs import read_runs
from pdfewshot.data.sources import load_sources, resolve_source
from pdfewshot.data.views import ViewedFeatures, view_features
from pdfewshot.errors import PdfewshotError, about, check_choice
from pdfewshot.methods import METHODS, FewShotClassifier, MethodSettings, build_method
from pdfewshot.methods.fitting import FitSettings
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.inference import run_fast
from pdfewshot.reporting.console import ClassAccuracy, loss_progress
from pdfewshot.reporting.plots import accuracy_pictures, class_accuracy_bars, roc_curve, score_histogram
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import face_chips, few_shot_classes, load_checkpoint_data, open_embedding, warn_skipped
from pdfewshot.stages.open_set import OpenSetResult, evaluate_open_set
from pdfewshot.stages.pairs import PairsResult, evaluate_pairs
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.metadata import EmbeddingMeta
from pdfewshot.storage.pixels import Pixels

MAX_EPISODE_FEATURE_BYTES = 1 << 30  # query features gathered for one group of episodes, at most


@dataclass
class MethodResult:
    """One method at one shot count: accuracy per episode (or per run) and per class."""

    method: str
    way: int
    shot: int
    accuracies: list[float] = field(default_factory=list)
    trials_each: list[int] = field(default_factory=list)  # the queries of each episode (or run)
    correct: int = 0
    trials: int = 0
    per_class: dict[str, list[int]] = field(default_factory=dict)  # name -> [queries, correct]
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (true, predicted) -> count

    @property
    def label(self) -> str:
        return f"{self.method}, {self.way}-way {self.shot}-shot"

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies)) if self.accuracies else 0.0

    @property
    def interval(self) -> float:
        return confidence_interval(np.array(self.accuracies))

    @property
    def trial_accuracy(self) -> float:
        return self.correct / self.trials if self.trials else 0.0

    @property
    def trial_interval(self) -> float:
        """Half-width of the 95% interval of :attr:`trial_accuracy`, every trial counted once."""
        return trial_interval(self.trial_accuracy, self.trials)

    def run_intervals(self) -> list[float]:
        """Each episode's (or run's) own 95% interval over its trials."""
        return [trial_interval(a, n) for a, n in zip(self.accuracies, self.trials_each, strict=True)]

    def add(self, predicted: np.ndarray, truth: np.ndarray, class_names: Sequence[str]) -> None:
        hits = predicted == truth
        self.accuracies.append(float(hits.mean()))
        self.trials_each.append(len(hits))
        self.correct += int(hits.sum())
        self.trials += len(hits)
        for label, guess, hit in zip(truth.tolist(), predicted.tolist(), hits.tolist(), strict=True):
            counts = self.per_class.setdefault(class_names[label], [0, 0])
            counts[0] += 1
            counts[1] += int(hit)
            pair = (class_names[label], class_names[guess])
            self.confusion[pair] = self.confusion.get(pair, 0) + 1

    def class_rows(self) -> list[ClassAccuracy]:
        return [ClassAccuracy(name, q, c) for name, (q, c) in sorted(self.per_class.items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "way": self.way, "shot": self.shot, "mean": self.mean,
            "interval95": self.interval, "count": len(self.accuracies), "trials": self.trials,
            "trial_accuracy": self.trial_accuracy, "trial_interval95": self.trial_interval,
            "accuracies": self.accuracies,
            "per_class": [{"class": r.name, "queries": r.queries, "correct": r.correct} for r in self.class_rows()],
        }  # fmt: skip


def trial_interval(accuracy: float, trials: int) -> float:
    """Half-width of the 95% interval of an accuracy over ``trials`` right-or-wrong trials: 1.96 * std / sqrt(n),
    as :func:`confidence_interval` gives for the trials' 0s and 1s."""
    return float(1.96 * np.sqrt(accuracy * (1 - accuracy) / trials)) if trials else 0.0


@dataclass
class EvaluateResult:
    kind: str  # "episodes", "runs", "open-set" or "pairs"
    results: list[MethodResult]
    run_names: list[str] = field(default_factory=list)
    skipped_methods: list[str] = field(default_factory=list)
    views: int = 0
    open_set: list[OpenSetResult] = field(default_factory=list)
    pairs: PairsResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "runs": self.run_names, "skipped_methods": self.skipped_methods, "views": self.views,
            "results": [r.to_json() for r in self.results], "open_set": [r.to_json() for r in self.open_set],
            "pairs": self.pairs.to_json() if self.pairs is not None else None,
        }  # fmt: skip


def _resolve_model(config: EvaluateConfig) -> Path | None:
    if config.model is not None:
        return config.model
    return DEFAULT_EMBEDDING if DEFAULT_EMBEDDING.is_file() else None


def default_methods(meta: EmbeddingMeta | None) -> list[str]:
    """The methods compared when none are named: a pair-bce embedding is scored as Koch et al. did, by its
    pair head; any other by the prototype and fine-tuning; both beside the raw-pixel baseline."""
    if meta is not None and meta.pair_head:
        return ["pair", "nn-pixels"]
    return ["prototype", "finetune", "nn-pixels"]


def _pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _features(net: EmbeddingNet | None, rows: Pixels, views: int, seed: int) -> dict[bool, ViewedFeatures]:
    """Features keyed by ``uses_embedding``: embeddings with ``views`` distorted copies of each image
    (when there is a network) and raw pixels (never distorted: nn-pixels stays the classic baseline)."""
    images = np.asarray(rows)  # nn-pixels compares every image's pixels: the evaluated classes are in memory
    features = {False: ViewedFeatures.without_views(_pixels(images))}
    if net is not None:
        features[True] = view_features(lambda batch: run_fast(net, batch), images, views, seed)
    return features


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Scores every method on seeded episodes, or on the official runs when ``config.runs`` is set."""
    set_paddle_threads()
    if any(shot < 1 for shot in config.shot) or not config.shot:
        raise PdfewshotError(f"{min(config.shot, default=0)}: must be at least 1", "shot")
    if config.views < 0:
        raise PdfewshotError(f"{config.views}: must be 0 or more", "views")
    if config.open_set and config.runs is not None:
        raise PdfewshotError(": the 20 runs have no unknown classes; give --data (or none) for open-set episodes",
                             "open_set")  # fmt: skip
    if config.pairs is not None and (config.runs is not None or config.open_set):
        raise PdfewshotError(f"{config.pairs}: pairs come from --data or the held-out classes, not with --runs or "
                             "--open-set", "pairs")  # fmt: skip
    if not 0.0 < config.reject_rate < 1.0:
        raise PdfewshotError(f"{config.reject_rate}: must be above 0 and below 1", "reject_rate")
    for name in config.method or ():
        check_choice(name, METHODS, "method")
    model = _resolve_model(config)
    net, meta = (None, None)
    if model is not None:
        with about("model"):
            net, meta = open_embedding(model)
    requested = list(dict.fromkeys(config.method or default_methods(meta)))
    settings = MethodSettings(
        FitSettings(config.finetune_steps, config.finetune_lr, config.entropy_weight, config.scale),
        config.query_entropy_weight,
        net.pair_head if net is not None else None,
    )
    built = {name: build_method(name, settings) for name in requested}
    methods = {name: method for name, method in built.items() if net is not None or not method.uses_embedding}
    skipped = [name for name in requested if name not in methods]
    if config.pairs is not None:
        if net is None or meta is None or model is None:
            raise PdfewshotError(f": no embedding checkpoint (looked for {DEFAULT_EMBEDDING}); pairs need one", "model")
        result = _evaluate_pairs(config, model, net, meta)
        _write(config, result)
        return result
    if not methods or (config.open_set and net is None):
        raise PdfewshotError(
            f": no embedding checkpoint (looked for {DEFAULT_EMBEDDING}); only nn-pixels runs without one, and "
            "open-set episodes need one",
            "model",
        )
    image_size = meta.image_size if meta else config.image_size
    channels = meta.channels if meta else 1
    if config.runs is not None:
        result = _evaluate_runs(config, net, methods, image_size, channels)
    else:
        result = _evaluate_episodes(config, net, meta, methods, image_size)
    result.skipped_methods, result.views = skipped, config.views
    _write(config, result)
    return result


def _write(config: EvaluateConfig, result: "EvaluateResult") -> None:
    with about("report"):
        if config.report is not None:
            write_json(config.report, result.to_json())
        if config.plots:
            write_plots(result, (config.report or DEFAULT_EVALUATE_REPORT).with_suffix(""))


def _novel_images(config: EvaluateConfig, meta: EmbeddingMeta, net: EmbeddingNet) -> ImageSet:
    """The images an embedding is evaluated on: its held-out classes, or ``--data``'s classes it was not
    trained on."""
    imageset, _, _ = load_checkpoint_data(meta, config.data, config.strict, face_chips(net, meta))
    return imageset.subset_classes(few_shot_classes(meta, imageset, bool(config.data)))


def _evaluate_pairs(config: EvaluateConfig, model: Path, net: EmbeddingNet, meta: EmbeddingMeta) -> "EvaluateResult":
    imageset = _novel_images(config, meta, net)
    embeddings = run_fast(net, imageset.images)
    return EvaluateResult("pairs", [], pairs=evaluate_pairs(config, model, net, meta, imageset, embeddings))


def write_plots(result: EvaluateResult, base: Path) -> list[Path]:
    """Per method and shot: confusion matrix and per-class accuracy (episodes), accuracy per run (runs), or
    the histogram of the default unknown score for known and unknown queries (open set)."""
    written = []
    if result.pairs is not None:
        stem = base.with_name(f"{base.name}.pairs.roc.png")
        title = f"{result.pairs.similarity}: ROC AUC {result.pairs.auc:.3f}, {result.pairs.pairs} pairs"
        written.append(roc_curve(result.pairs.false_accept, result.pairs.true_accept, stem, title))
    for row in result.open_set:
        if row.score == DEFAULT_REJECT_SCORE:
            stem = base.with_name(f"{base.name}.{row.method}.{row.shot}shot.{row.score}.histogram.png")
            threshold = float(np.mean(row.thresholds)) if row.thresholds else None
            written.append(score_histogram(row.known_scores, row.unknown_scores, threshold, stem, row.label))
    for item in result.results:
        stem = base.with_name(f"{base.name}.{item.method}.{item.shot}shot")
        if result.kind == "runs":
            written.append(
                class_accuracy_bars(
                    result.run_names,
                    item.accuracies,
                    stem.with_name(stem.name + ".per_run.png"),
                    f"{item.method}: accuracy per run",
                )
            )
            continue
        names = sorted(item.per_class)
        index = {name: i for i, name in enumerate(names)}
        truth = np.repeat([index[t] for t, _ in item.confusion], list(item.confusion.values()))
        guess = np.repeat([index[p] for _, p in item.confusion], list(item.confusion.values()))
        written += accuracy_pictures(truth, guess, names, stem, item.label)
    return written


def _evaluate_runs(
    config: EvaluateConfig,
    net: EmbeddingNet | None,
    methods: dict[str, FewShotClassifier],
    image_size: int,
    channels: int,
) -> EvaluateResult:
    with about("runs"):
        runs = read_runs(config.runs, image_size, channels) if config.runs else []
    results = {name: MethodResult(name, way=len(runs[0].training), shot=1) for name in methods}
    # Every run's images embedded in one call (with their views), then sliced run by run.
    every = np.concatenate([images for run in runs for images in (run.training, run.test)])
    features = _features(net, every, config.views, config.seed)
    start = 0
    first = next(iter(methods))
    with loss_progress("runs", len(runs), config.show_progress, label="accuracy") as progress:
        for run in runs:
            classes, trials = len(run.training), len(run.test)
            train_index, test_index = start + np.arange(classes), start + classes + np.arange(trials)
            start += classes + trials
            names = [f"{run.name}/class{i + 1:02d}" for i in range(classes)]
            for name, method in methods.items():
                chosen = features[method.uses_embedding]
                method.fit(*chosen.support(train_index, np.arange(classes)), classes)
                results[name].add(method.predict(chosen.queries(test_index)), run.test_labels, names)
            progress.update(results[first].accuracies[-1])
    return EvaluateResult("runs", list(results.values()), run_names=[r.name for r in runs])


def _episode_scores(
    method: FewShotClassifier,
    chosen: ViewedFeatures,
    support_index: np.ndarray,
    support_labels: np.ndarray,
    query_index: np.ndarray,
    way: int,
) -> np.ndarray:
    """The method's scores of every episode's queries, taken in as few groups of episodes as keep their
    gathered query features under :data:`MAX_EPISODE_FEATURE_BYTES` (raw pixels of large images would
    not fit in memory all at once)."""
    per_episode = query_index.shape[1] * chosen.original.shape[1] * chosen.original.itemsize
    group = max(1, MAX_EPISODE_FEATURE_BYTES // max(1, per_episode))
    scores = []
    for start in range(0, len(query_index), group):
        part = slice(start, start + group)
        support, labels = chosen.support(support_index[part], support_labels[part])
        scores.append(method.episode_scores(support, labels, way, chosen.queries(query_index[part])))
    return np.concatenate(scores)


def _evaluate_episodes(
    config: EvaluateConfig,
    net: EmbeddingNet | None,
    meta: EmbeddingMeta | None,
    methods: dict[str, FewShotClassifier],
    image_size: int,
) -> EvaluateResult:
    if meta is not None:
        assert net is not None, "a checkpoint's network comes with its metadata"
        imageset = _novel_images(config, meta, net)
    elif config.data:
        with about("data"):
            sources = [resolve_source(s) for s in config.data]
            imageset, report = load_sources(sources, image_size, 1, strict=config.strict)
        warn_skipped(report, imageset)
    else:
        raise PdfewshotError(": give a data source (or --model) to draw episodes from", "data")

    features = _features(net, imageset.images, config.views, config.seed)
    if config.open_set:
        return EvaluateResult("open-set", [], open_set=evaluate_open_set(config, imageset, features[True], methods))
    episodes = sample_episodes(
        imageset.labels, config.way, max(config.shot), config.query, config.episodes, config.seed
    )
    query_index = np.stack([episode.queries()[0] for episode in episodes])
    query_labels = np.stack([episode.queries()[1] for episode in episodes])
    results = []
    shots = sorted(set(config.shot))
    with loss_progress("methods", len(methods) * len(shots), config.show_progress, label="accuracy") as progress:
        for shot in shots:
            support_index = np.stack([episode.support_at(shot)[0] for episode in episodes])
            support_labels = np.stack([episode.support_at(shot)[1] for episode in episodes])
            for name, method in methods.items():
                scores = _episode_scores(method, features[method.uses_embedding], support_index, support_labels,
                                         query_index, config.way)  # fmt: skip
                result = MethodResult(name, config.way, shot)
                for episode, episode_scores, truth in zip(episodes, scores, query_labels, strict=True):
                    names = [imageset.class_names[c] for c in episode.classes]
                    result.add(episode_scores.argmax(axis=1), truth, names)
                results.append(result)
                progress.update(result.mean)
    return EvaluateResult("episodes", results)

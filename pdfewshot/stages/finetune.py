"""Stage 2: turn an embedding and K labelled images per novel class into a classifier."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle

from pdfewshot.config import REJECT_SCORE_NAMES, FinetuneConfig
from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sampling import split_support_query
from pdfewshot.errors import PdfewshotError, about, check_choice
from pdfewshot.methods.fitting import FitSettings, fit_on_features, fit_with_backbone, held_out_logits
from pdfewshot.methods.unknown import LOGIT_SCORES, suggest_threshold
from pdfewshot.nets.classifier import PairPredictor, Predictor, prototypes
from pdfewshot.nets.embedding import EmbeddingNet, embed
from pdfewshot.reporting.console import err_console, loss_progress
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import (
    face_chips,
    faceless_by_class,
    few_shot_classes,
    load_checkpoint_data,
    open_embedding,
)
from pdfewshot.stages.thresholds import stored_threshold
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import check_checkpoint_path, save_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, ImageRef, PredictorMeta, QueryManifest


@dataclass
class FinetuneResult:
    checkpoint: Path
    class_names: list[str]
    support: int
    queries: int
    losses: list[float]
    suggested_reject_below: float | None = None  # the threshold stored, which predict applies by default
    reject_origin: str | None = None  # how it was chosen (pdfewshot.stages.thresholds)


def queries_path(checkpoint: Path) -> Path:
    """The manifest of the held-out query images, beside a predictor checkpoint."""
    return checkpoint.with_name(checkpoint.stem + ".queries.json")


def choose_classes(candidates: list[str], way: int | None, rng: np.random.Generator) -> list[str]:
    """``way`` seeded classes out of ``candidates`` (all of them when ``way`` is None), sorted."""
    if way is None:
        return sorted(candidates)
    if way < 2:
        raise PdfewshotError(f"{way}: must be at least 2", "way")
    if way > len(candidates):
        raise PdfewshotError(f"{way}: only {len(candidates)} novel classes are available", "way")
    return sorted(rng.choice(sorted(candidates), size=way, replace=False).tolist())


def _check_options(config: FinetuneConfig) -> None:
    if config.steps < 0:
        raise PdfewshotError(f"{config.steps}: must not be negative", "steps")
    if config.shot < 1:
        raise PdfewshotError(f"{config.shot}: must be at least 1", "shot")
    if not 0.0 < config.reject_rate < 1.0:
        raise PdfewshotError(f"{config.reject_rate}: must be above 0 and below 1", "reject_rate")
    check_choice(config.reject_score, REJECT_SCORE_NAMES, "reject_score")


@dataclass
class Fitted:
    """What fitting on the support set gives: the predictor, its losses and the suggested rejection threshold."""

    predictor: paddle.nn.Layer
    losses: list[float]
    threshold: float | None


def _fit(config: FinetuneConfig, net: EmbeddingNet, pair_head: bool, images: np.ndarray, labels: np.ndarray,
         classes: int) -> Fitted:  # fmt: skip
    """The predictor fitted on the support images (``images``, ``labels``) of ``classes`` classes."""
    paddle.seed(config.seed)
    support_embeddings = embed(net, images)  # before any training: also what a frozen fit trains on
    if pair_head:
        # A pair-bce embedding classifies through its learnt pair head, as Koch et al. did: the
        # predictor keeps the support embeddings; there is nothing to fit. The leave-one-out threshold
        # is derived for the cosine classifier's probabilities, so none is suggested here.
        return Fitted(PairPredictor(net, support_embeddings, paddle.to_tensor(labels), classes), [], None)
    settings = FitSettings(config.steps, config.lr, config.entropy_weight, config.scale, config.backbone_lr)
    features = support_embeddings.numpy()
    # A logit score reads the fitted classifier's logits: its threshold comes from fits without each fold
    # (on the frozen embeddings, also when --train-backbone tunes the network: an approximation there).
    fitted = None
    if config.reject_score in LOGIT_SCORES and config.steps:
        fitted = held_out_logits(features, labels, classes, settings=settings)
    threshold = suggest_threshold(config.reject_score, features, labels, classes, config.scale, config.reject_rate,
                                  fitted)  # fmt: skip
    with loss_progress("finetune", config.steps, config.show_progress) as progress:
        if config.train_backbone:
            classifier, losses = fit_with_backbone(net, images, labels, classes, settings=settings,
                                                   on_step=progress.update)  # fmt: skip
        else:
            classifier, losses = fit_on_features(support_embeddings, labels, classes, settings=settings,
                                                 on_step=progress.update)  # fmt: skip
    # The prototypes as the (possibly tuned) network embeds the support set: what rejection compares with.
    label_tensor = paddle.to_tensor(labels)
    return Fitted(Predictor(net, classifier, prototypes(embed(net, images), label_tensor, classes)), losses, threshold)


def _predictor_meta(config: FinetuneConfig, meta: EmbeddingMeta, manifest: QueryManifest, sources: list[str],
                    fitted: Fitted) -> PredictorMeta:  # fmt: skip
    """The predictor checkpoint's description, with the threshold it answers "unknown" below (:mod:`.thresholds`)."""
    held = fitted.predictor.prototypes.numpy() if isinstance(fitted.predictor, Predictor) else np.zeros((0, 1))
    suggested, origin = stored_threshold(config.reject_score, fitted.threshold, meta, held)
    return PredictorMeta(
        backbone=meta.backbone, image_size=meta.image_size, channels=meta.channels,
        embedding_dim=meta.embedding_dim, readout=meta.readout, class_names=manifest.classes, scale=config.scale,
        method="pair" if meta.pair_head else "cosine", loss=meta.loss, support_count=len(manifest.support),
        data=sources, embedding_checkpoint=str(Path(config.model).resolve()), embedding_config=meta.config,
        shot=config.shot, seed=config.seed, queries_manifest=queries_path(config.out).name,
        suggested_reject_below=suggested, reject_score=config.reject_score, reject_rate=config.reject_rate,
        reject_origin=origin, config={
            "steps": config.steps, "lr": config.lr, "entropy_weight": config.entropy_weight,
            "train_backbone": config.train_backbone, "backbone_lr": config.backbone_lr,
        },
        normalisation=meta.normalisation, face_alignment=meta.face_alignment,
    )  # fmt: skip


def _say_short_classes(episode: ImageSet, shot: int, lost: dict[str, list[str]]) -> None:
    """One line for each class left with ``shot`` or fewer images once faces were looked for."""
    for name in episode.class_names:
        kept = episode.count(name)
        if name in lost and kept <= shot:
            err_console.print(
                f"note: class {name} keeps {kept} images with a face: taught from all of them (--shot {shot}), "
                "none left to test it",
                markup=False,
                soft_wrap=True,
            )


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Fits the cosine classifier on the support set and writes the predictor and its query manifest."""
    set_paddle_threads()
    _check_options(config)
    with about("out"):
        check_checkpoint_path(config.out)
    with about("model"):
        net, meta = open_embedding(config.model)
    imageset, sources, report = load_checkpoint_data(meta, config.data, config.strict, face_chips(net, meta))
    candidates = few_shot_classes(meta, imageset, bool(config.data))
    if len(candidates) < 2:
        raise PdfewshotError(
            f": one class ({candidates[0]}); a classifier needs two or more. Add a folder for another class, or "
            "teach the others later with 'pdfewshot support add' or the page of 'pdfewshot serve'",
            "data" if config.data else "model",
        )

    rng = np.random.default_rng(config.seed)
    class_names = choose_classes(candidates, config.way, rng)
    episode = imageset.subset_classes(class_names)
    lost = faceless_by_class(report)  # classes that lost images to face finding go on with what they keep
    support, query = split_support_query(episode, config.shot, rng, short=lost)
    _say_short_classes(episode, config.shot, lost)
    images, labels = np.asarray(episode.images[support]), episode.labels[support]
    fitted = _fit(config, net, meta.pair_head, images, labels, len(class_names))

    def refs(indices: np.ndarray) -> list[ImageRef]:
        return [ImageRef(episode.keys[i], class_names[episode.labels[i]]) for i in indices]

    manifest = QueryManifest(class_names, refs(support), refs(query))
    with about("out"):
        write_json(queries_path(config.out), manifest.to_json())
        described = _predictor_meta(config, meta, manifest, sources, fitted)
        save_checkpoint(config.out, fitted.predictor, described)
    return FinetuneResult(config.out, class_names, len(support), len(query), fitted.losses,
                          described.suggested_reject_below, described.reject_origin)  # fmt: skip

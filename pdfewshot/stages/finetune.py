"""Stage 2: turn an embedding and K labelled images per novel class into a classifier."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle

from pdfewshot.config import REJECT_SCORE_NAMES, FinetuneConfig
from pdfewshot.data.sampling import split_support_query
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.methods.fitting import FitSettings, fit_on_features, fit_with_backbone, held_out_logits
from pdfewshot.methods.unknown import LOGIT_SCORES, suggest_threshold
from pdfewshot.nets.classifier import PairPredictor, Predictor, prototypes
from pdfewshot.nets.embedding import embed
from pdfewshot.reporting.console import loss_progress
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import face_chips, few_shot_classes, load_checkpoint_data, open_embedding
from pdfewshot.stages.faces import face_pair_threshold
from pdfewshot.storage.atomic import write_json
from pdfewshot.storage.checkpoint import check_checkpoint_path, save_checkpoint
from pdfewshot.storage.metadata import ImageRef, PredictorMeta, QueryManifest


@dataclass
class FinetuneResult:
    checkpoint: Path
    class_names: list[str]
    support: int
    queries: int
    losses: list[float]
    suggested_reject_below: float | None = None


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


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Fits the cosine classifier on the support set and writes the predictor and its query manifest."""
    set_paddle_threads()
    if config.steps < 0:
        raise PdfewshotError(f"{config.steps}: must not be negative", "steps")
    if config.shot < 1:
        raise PdfewshotError(f"{config.shot}: must be at least 1", "shot")
    if not 0.0 < config.reject_rate < 1.0:
        raise PdfewshotError(f"{config.reject_rate}: must be above 0 and below 1", "reject_rate")
    if config.reject_score not in REJECT_SCORE_NAMES:
        raise PdfewshotError(
            f"{config.reject_score}: unknown, choose from {', '.join(REJECT_SCORE_NAMES)}", "reject_score"
        )
    with about("out"):
        check_checkpoint_path(config.out)
    with about("model"):
        net, meta = open_embedding(config.model)
    imageset, sources = load_checkpoint_data(meta, config.data, config.strict, face_chips(net, meta))
    candidates = few_shot_classes(meta, imageset, bool(config.data))

    rng = np.random.default_rng(config.seed)
    class_names = choose_classes(candidates, config.way, rng)
    episode = imageset.subset_classes(class_names)
    support, query = split_support_query(episode, config.shot, rng)

    paddle.seed(config.seed)
    images, labels = episode.images[support], episode.labels[support]
    support_embeddings = embed(net, images)  # before any training: also what a frozen fit trains on
    predictor: paddle.nn.Layer
    if meta.pair_head:
        # A pair-bce embedding classifies through its learnt pair head, as Koch et al. did: the
        # predictor keeps the support embeddings; there is nothing to fit. The leave-one-out threshold
        # is derived for the cosine classifier's probabilities, so none is suggested here.
        predictor = PairPredictor(net, support_embeddings, paddle.to_tensor(labels), len(class_names))
        losses: list[float] = []
        threshold = None
    else:
        settings = FitSettings(config.steps, config.lr, config.entropy_weight, config.scale, config.backbone_lr)
        features = support_embeddings.numpy()
        # A logit score reads the fitted classifier's logits: its threshold comes from fits without each fold
        # (on the frozen embeddings, also when --train-backbone tunes the network: an approximation there).
        fitted = None
        if config.reject_score in LOGIT_SCORES and config.steps:
            fitted = held_out_logits(features, labels, len(class_names), settings=settings)
        threshold = suggest_threshold(config.reject_score, features, labels, len(class_names), config.scale,
                                      config.reject_rate, fitted)  # fmt: skip
        with loss_progress("finetune", config.steps, config.show_progress) as progress:
            if config.train_backbone:
                classifier, losses = fit_with_backbone(
                    net, images, labels, len(class_names), settings=settings, on_step=progress.update
                )
            else:
                classifier, losses = fit_on_features(
                    support_embeddings, labels, len(class_names), settings=settings, on_step=progress.update
                )
        # The prototypes as the (possibly tuned) network embeds the support set: what rejection compares with.
        label_tensor = paddle.to_tensor(labels)
        predictor = Predictor(net, classifier, prototypes(embed(net, images), label_tensor, len(class_names)))

    def refs(indices: np.ndarray) -> list[ImageRef]:
        return [ImageRef(episode.keys[i], class_names[episode.labels[i]]) for i in indices]

    manifest = QueryManifest(class_names, refs(support), refs(query))
    manifest_file = queries_path(config.out)
    predictor_meta = PredictorMeta(
        backbone=meta.backbone,
        image_size=meta.image_size,
        channels=meta.channels,
        embedding_dim=meta.embedding_dim,
        readout=meta.readout,
        class_names=class_names,
        scale=config.scale,
        method="pair" if meta.pair_head else "cosine",
        loss=meta.loss,
        support_count=len(support),
        data=sources,
        embedding_checkpoint=str(Path(config.model).resolve()),
        embedding_config=meta.config,
        shot=config.shot,
        seed=config.seed,
        queries_manifest=manifest_file.name,
        suggested_reject_below=threshold
        if threshold is not None or config.reject_score != "max-cosine"
        else (face_pair_threshold(meta)),
        reject_score=config.reject_score,
        reject_rate=config.reject_rate,
        config={
            "steps": config.steps,
            "lr": config.lr,
            "entropy_weight": config.entropy_weight,
            "train_backbone": config.train_backbone,
            "backbone_lr": config.backbone_lr,
        },
        normalisation=meta.normalisation,
        face_alignment=meta.face_alignment,
    )
    with about("out"):
        write_json(manifest_file, manifest.to_json())
        save_checkpoint(config.out, predictor, predictor_meta)
    return FinetuneResult(config.out, class_names, len(support), len(query), losses, threshold)

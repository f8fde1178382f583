"""Stage 2: turn an embedding and K labelled images per novel class into a classifier."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paddle

from pdfewshot.atomic import atomic_write_text
from pdfewshot.checkpoint import check_checkpoint_path, save_checkpoint
from pdfewshot.data.sampling import split_support_query
from pdfewshot.errors import PdfewshotError
from pdfewshot.finetuning import fit_on_features, fit_with_backbone
from pdfewshot.nets.classifier import PairPredictor, Predictor
from pdfewshot.nets.embedding import embed
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import few_shot_classes, load_checkpoint_data, open_embedding
from pdfewshot.stages.pretrain import DEFAULT_EMBEDDING
from pdfewshot.threshold import leave_one_out_threshold

DEFAULT_PREDICTOR = Path("models/predictor.pdparams")


@dataclass
class FinetuneConfig:
    """Options of ``pdfewshot finetune`` (the CLI documents each)."""

    model: Path = DEFAULT_EMBEDDING
    out: Path = DEFAULT_PREDICTOR
    shot: int = 2
    way: int | None = None
    data: list[str] = field(default_factory=list)
    steps: int = 100
    lr: float = 0.01
    entropy_weight: float = 0.1
    scale: float = 10.0
    train_backbone: bool = False
    backbone_lr: float = 1e-4
    seed: int = 0
    strict: bool = False
    show_progress: bool = True


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
        raise PdfewshotError(f"--way {way}: must be at least 2")
    if way > len(candidates):
        raise PdfewshotError(f"--way {way}: only {len(candidates)} novel classes are available")
    return sorted(rng.choice(sorted(candidates), size=way, replace=False).tolist())


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Fits the cosine classifier on the support set and writes the predictor and its query manifest."""
    set_paddle_threads()
    if config.steps < 0:
        raise PdfewshotError(f"--steps {config.steps}: must not be negative")
    if config.shot < 1:
        raise PdfewshotError(f"--shot {config.shot}: must be at least 1")
    check_checkpoint_path(config.out)
    net, meta = open_embedding(config.model)
    imageset, sources = load_checkpoint_data(meta, config.data, config.strict)
    candidates = few_shot_classes(meta, imageset, bool(config.data))

    rng = np.random.default_rng(config.seed)
    class_names = choose_classes(candidates, config.way, rng)
    episode = imageset.subset_classes(class_names)
    support, query = split_support_query(episode, config.shot, rng)

    paddle.seed(config.seed)
    images, labels = episode.images[support], episode.labels[support]
    support_embeddings = embed(net, images)  # before any training: also what a frozen fit trains on
    pair = meta["loss"] == "pair-bce"
    predictor: paddle.nn.Layer
    if pair:
        # A pair-bce embedding classifies through its learnt pair head, as Koch et al. did: the
        # predictor keeps the support embeddings; there is nothing to fit. The leave-one-out threshold
        # is derived for the cosine classifier's probabilities, so none is suggested here.
        predictor = PairPredictor(net, support_embeddings, paddle.to_tensor(labels), len(class_names))
        losses: list[float] = []
        threshold = None
    else:
        threshold = leave_one_out_threshold(support_embeddings.numpy(), labels, len(class_names), config.scale)
        if config.train_backbone:
            classifier, losses = fit_with_backbone(
                net, images, labels, len(class_names), config.steps, config.lr,
                config.backbone_lr, config.entropy_weight, config.scale, config.show_progress,
            )  # fmt: skip
        else:
            classifier, losses = fit_on_features(
                support_embeddings, labels, len(class_names), config.steps, config.lr,
                config.entropy_weight, config.scale, config.show_progress,
            )  # fmt: skip
        predictor = Predictor(net, classifier)

    manifest = {
        "classes": class_names,
        "support": [{"key": episode.keys[i], "class": class_names[episode.labels[i]]} for i in support],
        "queries": [{"key": episode.keys[i], "class": class_names[episode.labels[i]]} for i in query],
    }
    manifest_file = queries_path(config.out)
    atomic_write_text(manifest_file, json.dumps(manifest, indent=1))
    predictor_meta = {
        "kind": "predictor",
        "backbone": meta["backbone"],
        "image_size": meta["image_size"],
        "channels": meta["channels"],
        "embedding_dim": meta["embedding_dim"],
        "class_names": class_names,
        "scale": config.scale,
        "method": "pair" if pair else "cosine",
        "loss": meta["loss"],
        "support_count": len(support),
        "data": sources,
        "embedding_checkpoint": str(Path(config.model).resolve()),
        "embedding_config": meta["config"],
        "shot": config.shot,
        "seed": config.seed,
        "queries_manifest": manifest_file.name,
        "suggested_reject_below": threshold,
        "config": {
            "steps": config.steps,
            "lr": config.lr,
            "entropy_weight": config.entropy_weight,
            "train_backbone": config.train_backbone,
            "backbone_lr": config.backbone_lr,
        },
    }
    save_checkpoint(config.out, predictor, predictor_meta)
    return FinetuneResult(config.out, class_names, len(support), len(query), losses, threshold)

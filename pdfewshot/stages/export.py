"""Export for deployment: the predictor as a Paddle inference model plus a JSON file that says how to
use it, loadable by ``paddle.inference`` alone (no pdfewshot network code needed)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdfewshot import __version__
from pdfewshot.atomic import atomic_folder, read_json
from pdfewshot.errors import PdfewshotError
from pdfewshot.fast import save_for_inference
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import open_predictor
from pdfewshot.stages.finetune import DEFAULT_PREDICTOR

EXPORT_FORMAT = "pdfewshot-export"
EXPORT_META = "pdfewshot.json"
PROGRAM = "predictor"  # the files are predictor.json (or .pdmodel) and predictor.pdiparams


@dataclass
class ExportConfig:
    """Options of ``pdfewshot export`` (the CLI documents each)."""

    model: Path = DEFAULT_PREDICTOR
    out: Path = Path("models/export")


def read_export_meta(folder: Path, option: str = "--model") -> dict[str, Any]:
    """The JSON description of an exported model, checked to be one."""
    if not (folder / EXPORT_META).is_file():
        raise PdfewshotError(f"{option} {folder}: not a pdfewshot export (no {EXPORT_META})")
    meta = read_json(folder / EXPORT_META, option)
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise PdfewshotError(f"{option} {folder}: {EXPORT_META} is not a pdfewshot export description")
    return meta


def export(config: ExportConfig) -> Path:
    """Writes the export folder: built beside it, then swapped into place, so a failure leaves it as it was."""
    set_paddle_threads()
    out = config.out
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_META).is_file())):
        raise PdfewshotError(f"--out {out}: exists and is not an earlier pdfewshot export")
    predictor, meta = open_predictor(config.model)
    with atomic_folder(out, "--out") as staging:
        save_for_inference(predictor, meta["channels"], meta["image_size"], str(staging / PROGRAM))
        description = {
            "format": EXPORT_FORMAT, "format_version": 1, "pdfewshot_version": __version__,
            "program": PROGRAM, "class_names": meta["class_names"], "image_size": meta["image_size"],
            "channels": meta["channels"], "method": meta.get("method", "cosine"),
            "input": "float32 [N, channels, image_size, image_size]: pixel values 0-255 of images centre-cropped "
                     "to square and resized (LANCZOS); scaling to [-1, 1] happens inside the model",
            "output": "logits [N, classes]; their softmax gives class probabilities",
            "suggested_reject_below": meta.get("suggested_reject_below"),
            "source_checkpoint": str(Path(config.model).resolve()),
        }  # fmt: skip
        (staging / EXPORT_META).write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
    return out

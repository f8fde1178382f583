"""Export for deployment: the predictor as a Paddle inference model plus a JSON file that says how to
use it, loadable by ``paddle.inference`` alone (no pdfewshot network code needed); in the ``onnx`` format, the
same model and its embedding as ONNX beside it, for other runtimes."""

import tempfile
from pathlib import Path

import paddle
from paddle import nn

from pdfewshot import __version__
from pdfewshot.config import EXPORT_FORMATS, ExportConfig
from pdfewshot.errors import PdfewshotError, about, check_choice
from pdfewshot.nets.classifier import scoring_network
from pdfewshot.nets.inference import save_for_inference
from pdfewshot.nets.onnx import write_onnx
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import open_predictor
from pdfewshot.storage.atomic import atomic_folder, read_json, write_json
from pdfewshot.storage.metadata import ExportMeta, from_json, to_json

PROGRAM = "predictor"  # the files are predictor.json (or .pdmodel) and predictor.pdiparams
ONNX_FILE = PROGRAM + ".onnx"  # in the onnx format: the same model as ONNX
EMBEDDING_ONNX_FILE = "embedding.onnx"  # in the onnx format: the predictor's embedding network as ONNX
FACE_FINDER = "face_finder.pdparams"  # the face route: the detector's and landmarks' weights (a Paddle state dict)


def read_export_meta(folder: Path) -> ExportMeta:
    """The JSON description of an exported model, checked to be one."""
    path = folder / ExportMeta.FILE
    if not path.is_file():
        raise PdfewshotError(f"{folder}: not a pdfewshot export (no {ExportMeta.FILE})")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != ExportMeta.FORMAT:
        raise PdfewshotError(f"{folder}: {ExportMeta.FILE} is not a pdfewshot export description")
    return from_json(ExportMeta, data, str(path))


def export(config: ExportConfig) -> Path:
    """Writes the export folder: built beside it, then swapped into place, so a failure leaves it as it was."""
    set_paddle_threads()
    check_choice(config.format, EXPORT_FORMATS, "format")
    out = config.out
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / ExportMeta.FILE).is_file())):
        raise PdfewshotError(f"{out}: exists and is not an earlier pdfewshot export", "out")
    with about("model"):
        predictor, meta = open_predictor(config.model)
    network, scored = scoring_network(predictor)
    finder = predictor.embedding.face_finder if meta.face_alignment is not None else None
    with about("out"), atomic_folder(out) as staging:
        save_for_inference(network, meta.channels, meta.image_size, str(staging / PROGRAM))
        onnx = config.format == "onnx"
        if onnx:
            write_onnx(staging / PROGRAM, staging / ONNX_FILE)
            write_embedding_onnx(predictor.embedding, meta.channels, meta.image_size, staging / EMBEDDING_ONNX_FILE)
        if finder is not None:
            paddle.save(finder.state_dict(), str(staging / FACE_FINDER))
        description = ExportMeta(
            format=ExportMeta.FORMAT, format_version=1, pdfewshot_version=__version__, program=PROGRAM,
            class_names=meta.class_names, image_size=meta.image_size, channels=meta.channels, method=meta.method,
            input="float32 [N, channels, image_size, image_size]: pixel values 0-255 of images centre-cropped "
                  "to square and resized (LANCZOS); their scaling happens inside the model" if finder is None else
                  "float32 [N, 3, image_size, image_size]: pixel values 0-255 of aligned face chips, which pdfewshot "
                  f"cuts ({meta.face_alignment}) with the face detector and landmarks of {FACE_FINDER}; their "
                  "scaling happens inside the model",
            output="[N, classes + 1]: the logits (their softmax gives class probabilities), then the largest cosine "
                   "of the image's embedding to a class prototype (the max-cosine unknown score)"
            if scored else "logits [N, classes]; their softmax gives class probabilities",
            suggested_reject_below=meta.suggested_reject_below,
            source_checkpoint=str(Path(config.model).resolve()),
            reject_score=meta.reject_score,
            scored=scored,
            face_alignment=meta.face_alignment,
            face_finder=FACE_FINDER if finder is not None else None,
            reject_origin=meta.reject_origin,
            onnx=ONNX_FILE if onnx else None,
            embedding_onnx=EMBEDDING_ONNX_FILE if onnx else None,
            embedding_output=EMBEDDING_OUTPUT if onnx else None,
        )  # fmt: skip
        write_json(staging / ExportMeta.FILE, to_json(description))
    return out


EMBEDDING_OUTPUT = (
    "float32 [N, dim]: the image's embedding, as the predictor's classifier and prototypes take it (its cosine to "
    "a class's normalised mean support embedding is the prototype method's score)"
)


def write_embedding_onnx(embedding: nn.Layer, channels: int, image_size: int, out: Path) -> None:
    """The embedding network, which takes what the predictor takes, as the ONNX file ``out`` (by way of an
    inference model in a scratch folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        prefix = Path(scratch) / "embedding"
        save_for_inference(embedding, channels, image_size, str(prefix))
        write_onnx(prefix, out)

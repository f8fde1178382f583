"""Requests per second and latency of `pdfewshot serve`, beside scoring the same images in process.

    python benchmarks/serve.py                       # a quick built-in predictor, 1 and 16 clients
    python benchmarks/serve.py --model models/predictor.pdparams --seconds 20

Starts a real server on 127.0.0.1 (a free port) for each setting, drives `POST /predict` with one image
a request from N client threads for a bounded time and count, and prints requests/s with p50 and p99
latency, for 1 and 16 clients, with cross-request batching on (the default) and off (`--max-batch 1`).
The last line is the same images scored one a call in this process through the predictor's own scorer
(decode and forward, no HTTP). Traffic goes to 127.0.0.1 only. A benchmark: it measures, asserts nothing.
"""

import argparse
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np

import pdfewshot  # noqa: F401  (sets the math library's code path before Paddle is imported)
from pdfewshot.runtime import cpu_info

HERE = Path(sys.executable).with_name("pdfewshot")


def quick_predictor(folder: Path) -> Path:
    """A predictor on the built-in glyphs at the default size and network, trained a few steps (speed
    does not depend on how well it is trained)."""
    embedding, predictor = folder / "e.pdparams", folder / "p.pdparams"
    subprocess.run([str(HERE), "pretrain", "--out", str(embedding), "--epochs", "1", "--steps-per-epoch", "3",
                    "--warmup-epochs", "0"], check=True, capture_output=True)  # fmt: skip
    subprocess.run([str(HERE), "finetune", "--model", str(embedding), "--out", str(predictor), "--steps", "5"],
                   check=True, capture_output=True)  # fmt: skip
    return predictor


def query_images(model: Path, count: int) -> list[bytes]:
    """PNG files of the predictor's held-out queries (or of its data's first images)."""
    import io

    from PIL import Image

    from pdfewshot.stages.common import load_checkpoint_data, open_predictor

    _, meta = open_predictor(model)
    imageset, _, _ = load_checkpoint_data(meta)
    encoded = []
    for image in imageset.images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(model: Path, max_batch: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(HERE), "serve", "--model", str(model), "--port", str(port), "--max-batch", str(max_batch)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(address + "/health", timeout=5).close()
            return server, address
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def drive(address: str, images: list[bytes], clients: int, seconds: float, cap: int) -> tuple[float, list[float]]:
    """Requests/s and each request's latency (s) from ``clients`` threads, each stopping after
    ``seconds`` or ``cap`` requests."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        with httpx.Client(base_url=address, timeout=60) as session:
            session.post("/predict", files=[("images", ("warm.png", images[0], "image/png"))])
            start_line.wait()
            until = time.perf_counter() + seconds
            done = 0
            while time.perf_counter() < until and done < cap:
                image = images[(number * 7 + done) % len(images)]
                began = time.perf_counter()
                response = session.post("/predict", files=[("images", ("q.png", image, "image/png"))])
                response.raise_for_status()
                latencies[number].append(time.perf_counter() - began)
                done += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = [latency for per_client in latencies for latency in per_client]
    return len(every) / elapsed, every


def in_process(model: Path, images: list[bytes], seconds: float, cap: int) -> tuple[float, list[float]]:
    from pdfewshot.data.decoding import decode_image, image_to_array
    from pdfewshot.runtime import set_paddle_threads
    from pdfewshot.stages.predict import open_scorer

    set_paddle_threads()
    scorer = open_scorer(model)
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < until and len(latencies) < cap:
        start = time.perf_counter()
        image = image_to_array(decode_image(images[len(latencies) % len(images)]), scorer.image_size, scorer.channels)
        scorer.logits_and_known(image[None], scorer.reject_score)
        latencies.append(time.perf_counter() - start)
    return len(latencies) / (time.perf_counter() - began), latencies


def line(label: str, rate: float, latencies: list[float]) -> str:
    p50 = statistics.median(latencies) * 1000
    p99 = float(np.percentile(latencies, 99)) * 1000
    return f"{label:<34} {rate:8.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   ({len(latencies)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="predictor to serve (default: a quick one on builtin:glyphs)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="per setting")
    parser.add_argument("--cap", type=int, default=2000, help="most requests per client per setting")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request

    info = cpu_info()
    print(f"CPU: {info.get('model name', 'unknown')}; one image a request")
    with tempfile.TemporaryDirectory(prefix="pdfewshot-serve-bench-") as folder:
        model = args.model or quick_predictor(Path(folder))
        images = query_images(model, 64)
        for max_batch, what in ((64, "batched"), (1, "not batched")):
            server, address = start(model, max_batch)
            try:
                for clients in args.clients:
                    rate, latencies = drive(address, images, clients, args.seconds, args.cap)
                    print(line(f"serve, {clients} client(s), {what}", rate, latencies), flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        rate, latencies = in_process(model, images, args.seconds, args.cap)
        print(line("in process, one image a call", rate, latencies))


if __name__ == "__main__":
    main()

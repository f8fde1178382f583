"""A saved inference model (``paddle.jit.save``'s files) written as ONNX by paddle2onnx, for runtimes other
than Paddle's (ONNX Runtime, OpenVINO, TensorRT, a browser). paddle2onnx is the ``onnx`` extra; its progress
lines are kept off the terminal."""

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.runner import saved_program

OPSET = 13  # ONNX Runtime 1.x and most runtimes run it


@contextmanager
def _quiet() -> Iterator[None]:
    """stdout and stderr, of Python and of the C++ underneath, sent to a file (its end shown on failure)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for descriptor, kept in zip((1, 2), saved, strict=True):
                os.dup2(kept, descriptor)
                os.close(kept)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace")[-2000:])


def write_onnx(prefix: Path, out: Path) -> None:
    """The inference model saved at ``prefix`` (``prefix.json`` or ``.pdmodel``, and ``prefix.pdiparams``) as
    the ONNX file ``out``; its input keeps a free batch size."""
    try:
        import paddle2onnx
    except ImportError:
        raise PdfewshotError("onnx: needs paddle2onnx (pip install '.[onnx]')", "format") from None
    weights = prefix.with_name(prefix.name + ".pdiparams")
    with _quiet():
        paddle2onnx.export(str(saved_program(prefix)), str(weights), str(out), opset_version=OPSET)

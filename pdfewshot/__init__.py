"""pdfewshot: few-shot image classification with PaddlePaddle.

Importing the package tunes the process for Paddle (threads, math library, log noise) before Paddle
itself is imported anywhere; see :mod:`pdfewshot.runtime`. The Python API (:mod:`pdfewshot.api`:
``pretrain``, ``finetune``, ``evaluate``, ``load``, ``Embedding``, ``Classifier``) is imported on first use,
so that ``import pdfewshot`` and the CLI's ``--help`` stay quick.
"""

import importlib
from typing import Any

from pdfewshot.runtime import configure_runtime

__version__ = "0.6.0"

configure_runtime()

API = ("pretrain", "finetune", "evaluate", "load", "Embedding", "Classifier")


def __getattr__(name: str) -> Any:
    if name in API:
        # Imported by name when first asked for: the API sits above every room, which import this package.
        return getattr(importlib.import_module("pdfewshot.api"), name)
    raise AttributeError(f"module 'pdfewshot' has no attribute {name!r}")


__all__ = ["API", "__version__", *API]

"""pdfewshot: few-shot image classification with PaddlePaddle.

Importing the package tunes the process for Paddle (threads, math library, log noise) before Paddle
itself is imported anywhere; see :mod:`pdfewshot.runtime`.
"""

from pdfewshot.runtime import configure_runtime

__version__ = "0.1.0"

configure_runtime()

"""The one exception type that the CLI turns into a one-line message and a non-zero exit code."""

from collections.abc import Collection, Iterator
from contextlib import contextmanager


class PdfewshotError(Exception):
    """A problem with the user's input (a path, a setting, a checkpoint), described in one line.

    ``parameter`` names the setting the problem is about, as the raising code calls it (a config field
    such as ``out`` or ``image_size``); the message then starts with its value. The CLI shows the
    parameter as its option (``--out``); elsewhere it reads ``out models/x: ...``. Code that knows
    only a file names the file in the message and leaves ``parameter`` to its caller (:func:`about`).
    """

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return self.shown_as(self.parameter) if self.parameter else self.message

    def shown_as(self, option: str) -> str:
        """The message with the parameter written as ``option`` (a command-line flag)."""
        return f"{option}{'' if self.message.startswith(':') else ' '}{self.message}"


def check_choice(value: str, allowed: Collection[str], parameter: str) -> None:
    """One line naming ``value`` and the choices when ``allowed`` (a registry's names) lacks it."""
    if value not in allowed:
        raise PdfewshotError(f"{value}: unknown, choose from {', '.join(allowed)}", parameter)


class UnusableImage(Exception):
    """An image that decodes but that a step of reading cannot use (the face route: no face found in it);
    skipped and counted as an unreadable image is, with its own reason (the message)."""


@contextmanager
def about(parameter: str) -> Iterator[None]:
    """Errors raised inside the block that name no parameter are about ``parameter``."""
    try:
        yield
    except PdfewshotError as error:
        if error.parameter is None:
            error.parameter = parameter
        raise

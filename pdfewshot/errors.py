"""The one exception type that the CLI turns into a one-line message and a non-zero exit code."""


class PdfewshotError(Exception):
    """A problem with the user's input (a path, an option, a checkpoint), described in one line."""

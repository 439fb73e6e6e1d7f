"""User-facing errors: one line that names the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class HecvlError(Exception):
    """An error caused by the user's input, reported without a traceback by the CLI.

    `path` is the file (or folder) at fault, so the message always says where to look.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path is not None else self.message

"""User-facing errors: one line that names the file and what is wrong."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

# One problem a reader found, collected rather than raised so a checker can list them all at once.
Issue = tuple[str, str]  # (severity "error" | "warning", message)


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


class WriteError(HecvlError):
    """An output that could not be written (disk full, no permission, read-only file system...): the
    environment's fault, not the code's, so it is one line naming the file and the cause."""


# torch (PytorchStreamWriter), numpy and others report a short write without an errno.
_SHORT_WRITE = re.compile(r"unexpected pos \d+ vs \d+|failed writing file|file write failed"
                          r"|\d+ requested and \d+ written", re.IGNORECASE)
# Rust's io::Error (safetensors, tokenizers) and Arrow put the errno in the message.
_ERRNO_IN_TEXT = re.compile(r"(?:os error|errno) (\d+)", re.IGNORECASE)
_LOW_SPACE = 1 << 20  # bytes: below this, a short write was for lack of space


def os_error_cause(exc: BaseException, folder: str | Path | None = None) -> str | None:
    """Why a write failed, in words ("no space left on device"), or None if `exc` is no I/O failure.

    `folder` is where the write went: when a library reports a short write without an errno, its free
    space tells whether the disk was full. Call this before deleting the partial file, which frees it.
    """
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code is None and (match := _ERRNO_IN_TEXT.search(str(exc))):
        code = int(match.group(1))
    if code is not None:
        return os.strerror(code).lower()
    if not _SHORT_WRITE.search(str(exc)):
        return None
    if folder is not None:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < _LOW_SPACE:
                return os.strerror(errno.ENOSPC).lower()
    return f"write failed ({str(exc).strip().splitlines()[-1]})"


def raise_first_error(issues: list[Issue], path: str | Path) -> None:
    """Raise the first error of collected issues as a HecvlError naming `path`; log the warnings."""
    for severity, message in issues:
        if severity == "error":
            raise HecvlError(message, path)
    for _, message in issues:
        log.warning("%s: %s", path, message)

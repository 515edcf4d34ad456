"""Audit stage: the JSONL trail of every published frame and event, one JSON object per line.

Input:  encoded messages (one line of JSON each, as published).
Output: lines appended to a file, each written through to the OS as soon as it is made, so a run that stops
        on an error or a signal leaves a file that is valid and complete up to its last message.

Whole lines only: a write that fails part way (a full disk: ENOSPC after some bytes) is cut back to the end
of the last whole line and raises `AuditError`; what the run does then is the runner's choice (live mode
goes on alerting without the audit, a replay stops). The file is opened unbuffered so that the size of what
reached the OS is known exactly.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pipeline.errors import UserError


class AuditError(UserError):
    """The audit file could not take another line (it still ends with a whole one)."""


class AuditLog:
    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        try:
            self.file = self.path.open("ab" if append else "wb", buffering=0)
            self.size = self.file.seek(0, os.SEEK_END)
        except OSError as error:
            raise UserError(f"cannot write the audit file {self.path}: {error.strerror}") from None
        self.lines = 0

    def write(self, line: str) -> None:
        encoded = (line + "\n").encode("utf-8")
        data = memoryview(encoded)
        try:
            while data:
                data = data[self.file.write(data):]
        except OSError as error:
            with contextlib.suppress(OSError):   # if even this fails, the error below still says what happened
                self.file.truncate(self.size)
            raise AuditError(f"cannot write the audit file {self.path}: {error.strerror} (it holds the "
                             f"{self.lines} whole lines written before)") from None
        self.size += len(encoded)
        self.lines += 1

    def close(self) -> None:
        self.file.close()

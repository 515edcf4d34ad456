"""Audit stage: the JSONL trail of every published frame and event, one JSON object per line.

Input:  encoded messages (one line of JSON each, as published).
Output: lines appended to a file, each flushed as soon as it is written, so a run that stops on an error or a
        signal leaves a file that is valid and complete up to its last message.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.file = self.path.open("w", encoding="utf-8", buffering=1)  # line-buffered: flushed per line
        except OSError as error:
            raise UserError(f"cannot write the audit file {self.path}: {error.strerror}") from None

    def write(self, line: str) -> None:
        self.file.write(line + "\n")

    def close(self) -> None:
        self.file.close()

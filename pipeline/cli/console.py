"""What a person at the terminal sees: log lines on stderr (text, or JSON lines for services), results on
stdout, and progress bars that never tear a log line apart.

Every module logs through stdlib `logging` under the `pipeline` and `stages` loggers; only the command's
result (a JSON line per image, a run's summary) goes to stdout, through `emit`.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


class TextFormatter(logging.Formatter):
    """`nero replay: message`; warnings and errors say so: `nero replay: warning: message`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{self.prefix}: {level}{record.getMessage()}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: t (unix s), level, logger, message; for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"t": round(record.created, 3), "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()})


def setup_logging(command: str, level: str = "info", form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter(f"nero {command}".strip()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)   # third-party libraries: only what matters
    for name in ("pipeline", "stages"):
        logging.getLogger(name).setLevel(level.upper())
    logging.Formatter.converter = time.gmtime


def emit(text: str) -> None:
    """A result for stdout (data, not a log line)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

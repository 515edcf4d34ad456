"""The `nero` command: one entry point, one subcommand per module in `pipeline/cli/commands/`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and imports
nothing heavy at module level: building the parser loads every command module, so `nero --help` answers at
once (no torch, scikit-learn or matplotlib; tests/pipeline/cli/test_cli.py checks it). The work is imported
inside `run`. Errors a user can fix (`UserError`) become one line on stderr and exit status 2; nothing else
is caught, so a real bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import os
import pkgutil
import shutil
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

from pipeline.cli import commands
from pipeline.cli.allocator import tune_allocator
from pipeline.cli.console import FORMATS, LEVELS, setup_logging
from pipeline.errors import UserError

log = logging.getLogger("pipeline.cli")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One width for every command's help: the terminal's, at most 100 columns."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=min(100, shutil.get_terminal_size().columns), max_help_position=32)


def package_version() -> str:
    try:
        return version("nero-monitor")
    except PackageNotFoundError:   # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nero", formatter_class=HelpFormatter,
        description="Real-time out-of-distribution monitor for endoscopy video (NERO).",
        epilog="`nero COMMAND --help` tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"nero-monitor {package_version()}")
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="what goes to stderr (default: info)")
    parser.add_argument("--log-format", choices=FORMATS, default="text",
                        help="text for people, json for services: one JSON object per line (default: text)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        sub = subparsers.add_parser(info.name, help=module.HELP, description=module.__doc__,
                                    formatter_class=HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.command, args.log_level, args.log_format)
    tune_allocator()   # before the command imports torch and allocates its first batch
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():   # log lines go above a running progress bar, not through it
            return int(args.handler(args) or 0)
    except UserError as error:
        log.error("%s", error)
        return 2
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130


def entry() -> None:
    """The `nero` program: `main`, then an immediate exit. Everything the command wrote is closed by then;
    skipping the interpreter's teardown (torch, FFmpeg and ZeroMQ threads in C code) avoids its aborts and a
    teardown slow enough that a second stop signal used to land in it and kill the process (rc -15)."""
    # `kill -USR1 PID` prints every thread's Python stack to stderr and the command carries on: where a
    # process that does not stop, or stops publishing, is waiting (a ZeroMQ call, a queue, a lock).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()

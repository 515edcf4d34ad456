"""The `nero` command: one entry point, one subcommand per module in `pipeline/commands/`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Errors a user can fix (`UserError`) become one line on stderr and exit status 2; nothing else is caught,
so a real bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from pipeline import commands
from pipeline.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nero",
        description="Real-time out-of-distribution monitor for endoscopy video (NERO).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        sub = subparsers.add_parser(
            info.name, help=module.HELP, description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"nero {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nero {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

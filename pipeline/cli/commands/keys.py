"""Make a CURVE key pair for a monitor or a subscriber: NAME.key (public: hand it out) and NAME.key_secret
(secret: only its owner may read it; written with mode 600). Existing keys are never replaced.

A monitor runs with its secret key and an allow-list folder holding the public keys of the subscribers it
admits; each subscriber runs with its own secret key and the monitor's public key (docs/SECURITY.md):

  nero keys monitor --out keys/                 # on the monitor's host
  nero keys display --out keys/                 # on the display's host; copy display.key to the monitor
  nero live cam=/dev/video0 --publish tcp://0.0.0.0:5556 --allow-remote \\
      --curve-key keys/monitor.key_secret --curve-clients keys/allowed/
  nero subscribe tcp://MONITOR:5556 --curve-server keys/monitor.key --curve-key keys/display.key_secret
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.errors import UserError

HELP = "make a CURVE key pair (NAME.key, NAME.key_secret) for a monitor or a subscriber"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="who the keys are for, e.g. monitor or display-room3")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="folder to write the two files in (made if missing; default: here)")


def run(args: argparse.Namespace) -> int:
    from pipeline.security import make_keys

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.name):
        raise UserError(f"key name {args.name!r} may hold only letters, digits, '_', '-' and '.'")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    public, secret = make_keys(args.out, args.name)
    emit(f"public key: {public}  (hand it out: a monitor's to its subscribers, a subscriber's to the "
         "monitor's allow-list folder)")
    emit(f"secret key: {secret}  (keep it: readable by you only)")
    return 0

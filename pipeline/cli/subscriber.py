"""What `nero subscribe` and `nero display` share: the CURVE keys of a subscriber.

Light at import (argparse only): the command modules import it to build the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.security import ClientKeys


def add_curve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--curve-server", type=Path, metavar="FILE",
                        help="CURVE: the monitor's public key file (NAME.key)")
    parser.add_argument("--curve-key", type=Path, metavar="FILE",
                        help="CURVE: this subscriber's secret key file (NAME.key_secret from `nero keys`)")


def curve_keys(args: argparse.Namespace) -> ClientKeys | None:
    """The keys from --curve-server and --curve-key (both or neither), read and checked."""
    from pipeline.security import client_keys

    if (args.curve_server is None) != (args.curve_key is None):
        raise UserError("CURVE needs both --curve-server (the monitor's public key) and --curve-key (this "
                        "subscriber's secret key)")
    return client_keys(args.curve_key, args.curve_server) if args.curve_key else None

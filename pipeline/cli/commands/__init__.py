"""Subcommands of `nero`; each module here becomes one (see pipeline/cli.py)."""

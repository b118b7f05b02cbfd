"""`fundarb config`: print the effective configuration (secrets redacted), or why it is invalid."""

from __future__ import annotations

import argparse
import json
import os
import sys

from fundarb.config import ConfigError, config_as_env, config_as_json, load_config, variables_markdown

HELP = "print the effective configuration from FUNDARB_* variables (secrets redacted); exit 2 if invalid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json`` for machine-readable output; ``--markdown`` for the README's table of variables."""
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the configuration as JSON")
    out.add_argument(
        "--markdown",
        action="store_true",
        help="print the table of every FUNDARB_* variable (name, type, default, meaning) as Markdown",
    )


def main(args: argparse.Namespace) -> int:
    """Print the configuration built from ``os.environ``; exit 2 with every problem listed if invalid."""
    if args.markdown:
        sys.stdout.write(variables_markdown())
        return 0
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"fundarb config: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(config_as_json(config), indent=2))
    else:
        print("# effective fundarb configuration (secrets shown as ***, unset values empty)")
        for name, value in config_as_env(config).items():
            print(f"{name}={value}")
    return 0

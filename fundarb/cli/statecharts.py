"""`fundarb statecharts`: render the position state machine into statecharts/ (or check it)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from fundarb.core.render import to_dot, to_markdown, to_mermaid

HELP = "render the position state machine to statecharts/ (Mermaid, DOT, Markdown, SVG with Graphviz)"

_DEFAULT_DIR = Path(__file__).resolve().parents[2] / "statecharts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--check`` compares instead of writing; ``--dir`` picks the output folder."""
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed file differs from the code"
    )
    parser.add_argument(
        "--dir", type=Path, default=_DEFAULT_DIR, help="output folder (default: statecharts/)"
    )


def render_all() -> dict[str, str]:
    """File name -> content for every text rendering (SVG is derived from the DOT file)."""
    return {"position.mmd": to_mermaid(), "position.dot": to_dot(), "position.md": to_markdown()}


def _svg(dot_source: str) -> str | None:
    if shutil.which("dot") is None:
        return None
    done = subprocess.run(["dot", "-Tsvg"], input=dot_source, capture_output=True, text=True, check=True)
    return done.stdout


def main(args: argparse.Namespace) -> int:
    """Write or check the diagrams; 0 when up to date (or written), 1 on drift."""
    out: Path = args.dir
    files = render_all()
    if args.check:
        stale = [name for name, text in files.items() if _read(out / name) != text]
        if stale:
            print(
                f"statecharts out of date: {', '.join(stale)} (run `python -m fundarb statecharts`)",
                file=sys.stderr,
            )
            return 1
        print(f"statecharts up to date ({len(files)} files checked in {out})")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    svg = _svg(files["position.dot"])
    if svg is not None:
        (out / "position.svg").write_text(svg)
    else:
        print("graphviz `dot` not found: skipped position.svg (apt-get install graphviz)", file=sys.stderr)
    print(f"wrote {len(files) + (svg is not None)} files to {out}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None

"""Rewrite (or, with --check, verify) docs/reference/ from the code's declarations."""

import sys
from pathlib import Path

from src.cli.reference_docs import stale_pages, write_pages

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        stale = stale_pages(DOCS)
        for name in stale:
            print(f"docs/reference/{name} is out of date: run "
                  f"python -m experiments.reference_docs")
        return 1 if stale else 0
    for path in write_pages(DOCS):
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

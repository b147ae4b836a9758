"""List the theory notebooks: those whose notebook metadata says ``"gan_book": {"part": "theory"}``.

The Makefile hands this list to nbval and tests/test_notebooks.py uses the same function, so the
theory set follows the notebooks' own metadata and survives renumbering. Standard library only:
the Makefile runs it before the virtual environment exists.

    python scripts/theory_notebooks.py        # prints notebooks/01_....ipynb ... (space separated)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def part(path: Path) -> str | None:
    """The ``gan_book.part`` entry of a notebook's metadata, if any."""
    return json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("gan_book", {}).get("part")


def theory_notebooks(root: Path = ROOT) -> list[Path]:
    """Chapter notebooks (``notebooks/NN_*.ipynb``) marked as part of the theory, in reading order."""
    return [p for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) if part(p) == "theory"]


if __name__ == "__main__":
    print(" ".join(str(p.relative_to(ROOT)) for p in theory_notebooks()))
    sys.exit(0)

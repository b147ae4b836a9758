"""Give every notebook the same first cell: the Colab set-up, with the repository URL
taken from ``_config.yml`` (the one place it is written).

Run after adding a notebook or changing ``repository.url``::

    python scripts/sync_notebooks.py          # rewrite cell 0 where it differs
    python scripts/sync_notebooks.py --check  # exit 1 if any notebook is out of date

Only the cell tagged ``colab-setup`` is touched; outputs elsewhere are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAG = "colab-setup"

CELL_TEMPLATE = '''\
# Colab set-up: makes this book's `gan_utils` importable. Outside Colab it does nothing.
import os, sys
REPO_URL = "{url}"  # copied from _config.yml by scripts/sync_notebooks.py
if "google.colab" in sys.modules or os.environ.get("GAN_FORCE_COLAB") == "1":
    import importlib, subprocess
    from importlib.metadata import PackageNotFoundError, version
    source = os.environ.get("GAN_COLAB_SOURCE", f"git+{{REPO_URL}}@{branch}")
    keep = []  # pin Colab's own torch and torchvision so that pip never replaces them
    for pkg in ("torch", "torchvision"):
        try:
            keep.append(f"{{pkg}}=={{version(pkg)}}")
        except PackageNotFoundError:
            pass
    extra = os.environ.get("GAN_COLAB_PIP_ARGS", "").split()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source, *keep, *extra], check=True)
    importlib.invalidate_caches()  # let this kernel see the package pip just installed
    import torch
    if not torch.cuda.is_available():
        print("No GPU attached: Runtime > Change runtime type > GPU, then run all cells again.")
'''


def repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_cell_source() -> str:
    url, branch = repository()
    return CELL_TEMPLATE.format(url=url, branch=branch)


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def sync(path: Path, check: bool) -> bool:
    """Return True if the notebook already had the right cell (or was fixed when not checking)."""
    nb = nbformat.read(path, as_version=4)
    source = colab_cell_source()
    first = nb.cells[0] if nb.cells else None
    if first is not None and TAG in first.get("metadata", {}).get("tags", []):
        if first.source == source:
            return True
        if check:
            return False
        first.source = source
    else:
        if check:
            return False
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": [TAG, "hide-input"]})
        nb.cells.insert(0, cell)
    nbformat.write(nb, path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ")
    args = parser.parse_args()
    stale = [p.name for p in notebooks() if not sync(p, args.check)]
    if stale:
        print("out of date (run python scripts/sync_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

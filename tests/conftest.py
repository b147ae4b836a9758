"""Shared test set-up: the offline MNIST data beside the repo, and the repo root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

if "GAN_DATA_DIR" not in os.environ and (SHARED_DATA / "MNIST" / "raw").is_dir():
    os.environ["GAN_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with real MNIST files; tests that need it skip (outside CI) when absent."""
    path = Path(os.environ.get("GAN_DATA_DIR", ROOT / "data"))
    if not (path / "MNIST" / "raw").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs MNIST under {path}/MNIST/raw (../shared/data)")
        pytest.skip(f"no MNIST files under {path}/MNIST/raw")
    return path

"""Reproducibility: seeds, device choice and a small run manifest.

A figure in the book is only worth something if the reader can tell how it was
made; :func:`run_manifest` records the profile, seed, device, library versions
and wall time, and every chapter prints it next to its results.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from typing import Any

import numpy as np
import torch

from .config import check_choice, check_seed

DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same.

    cuDNN autotuning is left on: bit-exact GPU runs cost speed, and the book's
    exactness claims (resume, determinism tests) are made on CPU.
    """
    seed = check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed)  # check_seed keeps it below 2**32, NumPy's limit
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(device: str = "auto") -> torch.device:
    """Resolve ``auto`` to cuda, then mps, then cpu; refuse an unavailable explicit choice."""
    check_choice("device", device, DEVICES)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """A human-readable name: the GPU model on CUDA, the core count on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads, cores = torch.get_num_threads(), os.cpu_count()
        return f"CPU ({threads} thread{'s' if threads != 1 else ''}, {cores} core{'s' if cores != 1 else ''})"
    return device.type


def run_manifest(*, profile: str, seed: int, device: torch.device, started: float,
                 **extra: Any) -> dict[str, Any]:
    """Everything needed to say how a run was made. ``started`` is a ``time.time()`` stamp."""
    import torchvision

    manifest: dict[str, Any] = {
        "profile": profile,
        "seed": seed,
        "device": device_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
    }
    manifest.update(extra)
    manifest["wall time (s)"] = round(time.time() - started, 1)
    return manifest


def format_manifest(manifest: dict[str, Any]) -> str:
    """Render a manifest as aligned ``key: value`` lines for a notebook cell."""
    width = max(len(k) for k in manifest)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in manifest.items())


def in_colab() -> bool:
    """True inside Google Colab (also when forced with ``GAN_FORCE_COLAB=1`` for tests)."""
    return os.environ.get("GAN_FORCE_COLAB") == "1" or "google.colab" in sys.modules

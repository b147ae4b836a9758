"""The Colab set-up cell: the same in every notebook, silent outside Colab, and in Colab it
installs ``gan_utils`` from the repository without touching Colab's torch/torchvision.

Colab itself is not reachable from a test, so the cell is run with Colab detection
forced (``GAN_FORCE_COLAB=1``), the package source pointed at this checkout
(``GAN_COLAB_SOURCE``), and pip told to resolve offline without installing
(``--dry-run --no-index --report``). pip's JSON report then says exactly what it
would install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load_sync():
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


sync = _load_sync()
CELL = sync.colab_cell_source()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_repository_configured_once_with_branch_main() -> None:
    repo = CONFIG["repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo["url"]), repo["url"]
    assert repo["branch"] == "main"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    # The cell reads the URL from the config, and installs from the main branch.
    assert f'REPO_URL = "{repo["url"]}"' in CELL
    assert 'f"git+{REPO_URL}@main"' in CELL


def test_sync_check_passes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_notebooks.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cell_is_the_synced_colab_cell(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "code"
    assert sync.TAG in first.metadata.get("tags", [])
    assert first.source == CELL, "run: python scripts/sync_notebooks.py"
    url = re.search(r'^REPO_URL = "([^"]+)"', first.source, re.M)
    assert url and url.group(1) == CONFIG["repository"]["url"]


def test_check_detects_a_stale_cell(tmp_path: Path, monkeypatch) -> None:
    """--check must fail on a notebook whose Colab cell differs (else the test above proves nothing)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.replace("github.com", "example.org"),
                                          metadata={"tags": [sync.TAG]}),
                nbformat.v4.new_markdown_cell("# T")]
    path = tmp_path / "notebooks" / "99_x.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    assert sync.sync(path, check=True) is False
    assert sync.sync(path, check=False) is True
    assert nbformat.read(path, as_version=4).cells[0].source == CELL
    assert sync.sync(path, check=True) is True


def test_cell_does_nothing_outside_colab(monkeypatch, capsys) -> None:
    monkeypatch.delenv("GAN_FORCE_COLAB", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(CELL, "colab-cell", "exec"), {})
    assert calls == []
    assert capsys.readouterr().out == ""


def test_cell_in_colab_pins_torch_and_installs_from_main(monkeypatch, capsys) -> None:
    """With google.colab imported (as in Colab), the pip command keeps the installed torch."""
    monkeypatch.delenv("GAN_FORCE_COLAB", raising=False)
    monkeypatch.delenv("GAN_COLAB_SOURCE", raising=False)
    monkeypatch.delenv("GAN_COLAB_PIP_ARGS", raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    exec(compile(CELL, "colab-cell", "exec"), {})
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert f"git+{CONFIG['repository']['url']}@main" in cmd
    assert f"torch=={version('torch')}" in cmd
    assert f"torchvision=={version('torchvision')}" in cmd
    assert not {"-U", "--upgrade", "--force-reinstall"} & set(cmd)


def test_forced_colab_install_resolves_without_reinstalling_torch(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update({
        "PIP_CONFIG_FILE": os.devnull,  # ignore machine-wide pip config (constraints, indexes)
        "GAN_FORCE_COLAB": "1",
        "GAN_COLAB_SOURCE": str(ROOT),
        "GAN_COLAB_PIP_ARGS": f"--dry-run --no-index --no-build-isolation --report {report}",
    })
    proc = subprocess.run([sys.executable, "-c", CELL], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower().replace("_", "-"): item for item in installs}
    assert "gan-utils" in names, names.keys()
    assert names["gan-utils"]["download_info"]["url"] == ROOT.as_uri()
    assert "torch" not in names and "torchvision" not in names, sorted(names)
    assert not [n for n in names if n.startswith("nvidia-")], sorted(names)
    import torch

    gpu_hint = "Runtime > Change runtime type > GPU" in proc.stdout
    assert gpu_hint == (not torch.cuda.is_available())

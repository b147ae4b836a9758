"""Every chapter runs end to end under papermill in the smoke profile.

Outputs go to a temporary folder: the committed notebooks (and their figures
from real runs) are never rewritten by the tests.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"
# The theory chapters run in seconds, so `make test` hands them to nbval, which re-runs them as
# committed and compares every checked cell. They are found by their notebook metadata
# ("gan_book": {"part": "theory"}), by the same function the Makefile calls, so the set survives
# renumbering. Re-running a model chapter as committed means minutes of training, so its checked
# cells -- which must not depend on the profile -- are compared here, after the smoke run, instead.
_spec = importlib.util.spec_from_file_location("theory_notebooks", ROOT / "scripts" / "theory_notebooks.py")
_theory_nbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_theory_nbs)
NBVAL_NOTEBOOKS = _theory_nbs.theory_notebooks(ROOT)


def _checked_outputs(nb: dict) -> dict[int, str]:
    """Printed text of every cell marked NBVAL_CHECK_OUTPUT, by cell index."""
    out = {}
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith(CHECK):
            out[i] = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                             for o in c.get("outputs", []) if o.get("name") != "stderr")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path: Path, tmp_path: Path) -> None:
    import papermill as pm

    out = tmp_path / path.name
    started = time.time()
    pm.execute_notebook(str(path), str(out), parameters={"profile": "smoke"},
                        cwd=str(path.parent), kernel_name="python3", progress_bar=False)
    elapsed = time.time() - started
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert elapsed < 240, f"{path.name} took {elapsed:.0f} s in the smoke profile"
    if path not in NBVAL_NOTEBOOKS:
        committed = _checked_outputs(json.loads(path.read_text()))
        assert _checked_outputs(nb) == committed, "a checked cell printed something else than its committed output"


def test_checked_cells_are_checked() -> None:
    """Every NBVAL_CHECK_OUTPUT cell is compared by one route; the Makefile hands nbval the theory set.

    The theory set comes from notebook metadata through scripts/theory_notebooks.py, which both the
    Makefile and this module use; no file name or number range is hard-coded anywhere.
    """
    makefile = (ROOT / "Makefile").read_text()
    rule = [line for line in makefile.splitlines() if line.startswith("NBVAL_NOTEBOOKS")]
    assert rule == ["NBVAL_NOTEBOOKS = $(shell $(PYTHON) scripts/theory_notebooks.py)"], rule
    assert "$(NBVAL_NOTEBOOKS) --nbval-lax" in makefile
    listed = subprocess.run([sys.executable, str(ROOT / "scripts" / "theory_notebooks.py")], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    assert [ROOT / p for p in listed] == NBVAL_NOTEBOOKS
    assert len(NBVAL_NOTEBOOKS) >= 3, "the theory part has at least the three theory chapters"
    toc = (ROOT / "_toc.yml").read_text()
    theory_toc = toc.split("- caption: Theory")[1].split("- caption:")[0]
    for path in NBVAL_NOTEBOOKS:   # the metadata agrees with the book's table of contents
        assert f"notebooks/{path.stem}" in theory_toc, f"{path.name} is marked theory but is not in the Theory part"
    for path in NOTEBOOKS:
        if f"notebooks/{path.stem}" in theory_toc:
            assert path in NBVAL_NOTEBOOKS, f"{path.name} is in the Theory part but lacks the theory metadata"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        checked = _checked_outputs(nb)
        assert all(text.strip() for text in checked.values()), f"{path.name}: a checked cell has no committed output"
        if path in NBVAL_NOTEBOOKS:   # a theory check must assert its claim, not only print it
            for i, c in enumerate(nb["cells"]):
                src = "".join(c["source"])
                if c["cell_type"] == "code" and src.lstrip().startswith(CHECK):
                    assert "assert " in src, f"{path.name} cell {i}: a checked cell without an assertion"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_conventions(path: Path) -> None:
    """A parameters cell with the four standard names, and committed outputs without errors."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(params[0]["source"])
    for name in ("profile", "seed", "device", "data_dir"):
        assert f"{name} =" in src, f"parameters cell lacks {name}"
    assert cells[0]["cell_type"] == "code" and "colab-setup" in cells[0]["metadata"].get("tags", [])
    assert cells[1]["cell_type"] == "markdown" and cells[1]["source"][0].startswith("# "), \
        "second cell is the chapter title"
    for c in cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", "committed outputs contain an error"


VANILLA = ROOT / "notebooks" / "04_vanilla_gan.ipynb"


@pytest.mark.slow
def test_bad_profile_fails_naming_the_choices(tmp_path: Path) -> None:
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(VANILLA), str(tmp_path / "out.ipynb"), parameters={"profile": "nonsense"},
                            cwd=str(VANILLA.parent), kernel_name="python3", progress_bar=False)
    msg = str(err.value)
    assert "ValueError" in msg and "unknown profile 'nonsense'" in msg
    for name in ("smoke", "quick", "full", "auto"):
        assert f"'{name}'" in msg


@pytest.mark.slow
def test_empty_data_dir_offline_gives_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    import papermill as pm

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("GAN_OFFLINE", "1")  # what a machine without internet sees, made certain
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(VANILLA), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "data_dir": str(empty)},
                            cwd=str(VANILLA.parent), kernel_name="python3", progress_bar=False)
    msg = str(err.value)
    assert "FileNotFoundError" in msg and str(empty) in msg and "Fix:" in msg


MODEL_NOTEBOOKS = [p for p in NOTEBOOKS if p not in NBVAL_NOTEBOOKS]
# Absolute paths of a machine (a home folder, a checkout, a data folder, Colab's /content): a
# committed page must not show where its run happened. Only printed text is searched; base64
# images could contain any such string by chance.
_LOCAL_PATH = re.compile(r"(?<![\w.~<])/(?:home|root|Users|work|tmp|mnt|content|opt|var|srv)/")


@pytest.mark.parametrize("path", MODEL_NOTEBOOKS, ids=[p.stem for p in MODEL_NOTEBOOKS])
def test_model_chapter_outputs_are_clean(path: Path) -> None:
    """Committed model-chapter outputs: no stderr (progress bars, warnings), no local paths,
    the quality section and a manifest that was also written as JSON."""
    nb = json.loads(path.read_text())
    printed = []
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            assert o.get("name") != "stderr", f"{path.name} cell {i}: stderr in the committed outputs"
            printed.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
            html = "".join(o.get("data", {}).get("text/html", ""))
            assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html), \
                f"{path.name} cell {i}: an HTML output loads something from the network (the book must work offline)"
    text = "\n".join(printed)
    for local in {str(ROOT), str(Path.home())}:
        assert local not in text, f"{path.name}: the outputs show the local path {local}"
    match = _LOCAL_PATH.search(text)
    assert match is None, f"{path.name}: the outputs show a local path: ...{text[max(0, match.start() - 60):match.end() + 60]}..."
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## How good is it?" in markdown
    assert "PLACEHOLDER" not in markdown, f"{path.name}: a placeholder was left in the text"
    assert "real (floor)" in text and "feature network" in text, f"{path.name}: no quality table in the outputs"
    assert f"manifest written to runs/{path.stem}/" in text, f"{path.name}: no manifest written as JSON"

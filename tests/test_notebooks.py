"""Every chapter runs end to end under papermill in the smoke profile.

Outputs go to a temporary folder: the committed notebooks (and their figures
from real runs) are never rewritten by the tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"
# The theory chapters (01-03) run in seconds, so `make test` hands them to nbval, which
# re-runs them as committed and compares every checked cell. Re-running a model chapter as
# committed means minutes of training, so its checked cells -- which must not depend on the
# profile -- are compared here, after the smoke run, instead.
NBVAL_NOTEBOOKS = [p for p in NOTEBOOKS if int(p.name[:2]) <= 3]


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
    """Every NBVAL_CHECK_OUTPUT cell is compared by one route; the Makefile hands nbval the theory set."""
    makefile = (ROOT / "Makefile").read_text()
    assert "notebooks/0[1-3]_*.ipynb" in makefile
    for path in NOTEBOOKS:
        checked = _checked_outputs(json.loads(path.read_text()))
        assert all(text.strip() for text in checked.values()), f"{path.name}: a checked cell has no committed output"


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

"""Sphinx extension with the book's build fixes (loaded from ``_config.yml``,
``sphinx.local_extensions``).

1. **MathJax served by the book itself**, never by a CDN. The rendered book must show its
   equations without network access (CI has none, and a downloaded ``_build/html`` should
   work offline), and the browser test must check what readers get. The npm package
   ``mathjax`` (pinned below) is installed once into ``.cache/mathjax`` (git-ignored); the
   parts of its ``es5`` folder that pages can load are copied to ``_static/mathjax`` and
   ``mathjax_path`` points there. Without npm and without an installed copy the build keeps
   Sphinx's CDN URL and says so; the browser test then fails, as it requires the local copy.
2. **Execute only notebooks without outputs.** myst-nb's ``execute_notebooks: "auto"``
   re-executes a notebook as soon as *one* code cell lacks outputs, and every chapter has
   such cells by design (the Colab cell is silent outside Colab, the parameters cell prints
   nothing), so plain "auto" would retrain every model on each ``make book``. Every
   notebook that carries outputs is therefore excluded from execution.
3. **No duplicated inline scripts.** With Sphinx 7, sphinx-thebe's inline configuration
   script is emitted twice per page; its second ``const THEBE_JS_URL`` is a JavaScript
   error in every browser. Identical script entries are dropped from each page.
4. **No CDN stylesheet from animations.** matplotlib's ``to_jshtml`` player links Font
   Awesome 4 from maxcdn for its button icons. Offline that link is a failed request (a
   console error); the book's theme already ships Font Awesome, which draws the same
   ``fa-*`` icons, so the link is removed from the rendered page. The notebooks keep it,
   for Jupyter and Colab.

By hand, ``python scripts/book_ext.py`` installs MathJax and prints its folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------- 1. local MathJax

MATHJAX_VERSION = "3.2.2"
BUNDLE = "tex-mml-chtml.js"  # the bundle Sphinx would load from the CDN
# The bundle plus what it may load lazily (TeX extensions, fonts, menu, accessibility);
# the other combined bundles and node-only files stay out (9 of 24 MB).
PARTS = (BUNDLE, "a11y", "adaptors", "input", "output", "sre", "ui")
PREFIX = ROOT / ".cache" / "mathjax"
STATIC_SUBDIR = "mathjax"


def es5_dir() -> Path:
    """The installed package's ``es5`` folder (``$GAN_MATHJAX_ES5`` overrides it)."""
    override = os.environ.get("GAN_MATHJAX_ES5")
    return Path(override) if override else PREFIX / "node_modules" / "mathjax" / "es5"


def ensure_mathjax(install: bool = True) -> Path | None:
    """Return the ``es5`` folder, installing ``mathjax@MATHJAX_VERSION`` with npm if needed."""
    es5 = es5_dir()
    if (es5 / BUNDLE).is_file():
        return es5
    npm = shutil.which("npm")
    if not install or npm is None or os.environ.get("GAN_MATHJAX_ES5"):
        return None
    PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--no-save",
                    "--prefix", str(PREFIX), f"mathjax@{MATHJAX_VERSION}"], check=True)
    return es5 if (es5 / BUNDLE).is_file() else None


def copy_mathjax(es5: Path, static_dir: Path) -> Path:
    """Copy the loadable parts of ``es5`` into ``<static_dir>/mathjax``."""
    target = static_dir / STATIC_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        src = es5 / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target / part)
    return target


def _use_local_mathjax(app) -> None:  # type: ignore[no-untyped-def]
    from sphinx.util import logging

    app.gan_mathjax_es5 = None
    if app.builder.format != "html":
        return
    es5 = ensure_mathjax()
    if es5 is None:
        logging.getLogger(__name__).info(
            "book_ext: npm not found and no MathJax under %s; pages will load it from the CDN", es5_dir())
        return
    app.config.mathjax_path = f"{STATIC_SUBDIR}/{BUNDLE}"  # relative to _static/
    app.gan_mathjax_es5 = es5


def _copy_mathjax(app, exception) -> None:  # type: ignore[no-untyped-def]
    es5 = getattr(app, "gan_mathjax_es5", None)
    if exception is None and es5 is not None:
        copy_mathjax(es5, Path(app.outdir) / "_static")


# ----------------------------------------------------- 2. execute only bare notebooks

def has_outputs(path: Path) -> bool:
    """True when any code cell of the notebook has at least one output."""
    nb = nbformat.read(path, as_version=4)
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def committed_notebooks(srcdir: Path) -> list[str]:
    """Notebooks under ``srcdir/notebooks`` that carry outputs (POSIX paths relative to srcdir)."""
    return [p.relative_to(srcdir).as_posix()
            for p in sorted((srcdir / "notebooks").glob("*.ipynb")) if has_outputs(p)]


def _exclude_committed(app, config) -> None:  # type: ignore[no-untyped-def]
    if config.nb_execution_mode != "auto":
        return
    patterns = list(config.nb_execution_excludepatterns or [])
    config.nb_execution_excludepatterns = patterns + [
        p for p in committed_notebooks(Path(app.srcdir)) if p not in patterns]


# ------------------------------------------------------- 3. no duplicate scripts

def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:  # type: ignore[no-untyped-def]
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for js in scripts:
        # an inline script's filename is None or "" depending on who added it
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


# ------------------------------------------------- 4. no CDN link from animations

_JSHTML_CDN_LINK = re.compile(
    r'<link\s+rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[^"]*"\s*/?>')


def _drop_cdn_links(app, pagename, templatename, context, doctree) -> None:  # type: ignore[no-untyped-def]
    body = context.get("body")
    if isinstance(body, str) and "maxcdn.bootstrapcdn.com" in body:
        context["body"] = _JSHTML_CDN_LINK.sub("", body)


def setup(app):  # type: ignore[no-untyped-def]
    app.setup_extension("sphinx.ext.mathjax")
    app.setup_extension("myst_nb")
    app.connect("builder-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("config-inited", _exclude_committed)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _drop_cdn_links)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    found = ensure_mathjax()
    if found is None:
        sys.exit("MathJax is not installed and npm is not available: install Node.js and npm")
    print(found)

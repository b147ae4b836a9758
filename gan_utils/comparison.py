"""The comparison chapter's runs and their tidy results table, resumable.

One *row* per (experiment, model, seed): its settings (hashed into ``config``), how long it
trained, and its metrics. Every finished run writes its row at once, as its own small JSON
file under ``<run folder>/rows/``, so an interrupted sweep loses at most the runs in progress,
and a rerun -- with the same settings and more seeds -- trains only the rows that are missing.
:meth:`ResultsTable.write` gathers the rows into ``results.csv`` and ``results.json``.

The three experiments (one job function each, all called through :func:`run_job`, which
:func:`gan_utils.sweep.run_sweep` can spread over devices):

* ``ring`` / ``grid``: a 2D mixture of :mod:`gan_utils.mixtures`, models ``vanilla``,
  ``wgan``, ``wgan_gp`` and ``pacgan2`` from :func:`gan_utils.recipes.toy_mlp`;
* ``stacked_mnist``: Stacked MNIST (:mod:`gan_utils.stacked`), a recipe with ``channels=3``,
  and the model ``real`` for the real-data floor;
* ``mnist``: one of :data:`gan_utils.recipes.RECIPES`, scored by
  :func:`gan_utils.evaluate.evaluate_generator` with its real-vs-real floor.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import check_choice, check_seed

EXPERIMENTS: tuple[str, ...] = ("ring", "grid", "stacked_mnist", "mnist")
MIXTURE_MODELS: tuple[str, ...] = ("vanilla", "wgan", "wgan_gp", "pacgan2")
STACKED_MODELS: tuple[str, ...] = ("vanilla", "dcgan", "wgan_gp", "real")
MNIST_MODELS: tuple[str, ...] = ("vanilla", "dcgan", "wgan", "wgan_gp", "bigan")

KEY_COLUMNS: tuple[str, ...] = ("experiment", "model", "seed")
RUN_COLUMNS: tuple[str, ...] = ("profile", "config", "device", "steps", "critic_steps", "batch_size",
                                "train_s", "eval_s", "stopped")
MIXTURE_COLUMNS: tuple[str, ...] = ("modes", "n_modes", "high_quality", "reverse_kl")
STACKED_COLUMNS: tuple[str, ...] = ("modes", "n_modes", "kl", "n_samples", "label_modes", "label_kl")
MNIST_METRICS: tuple[str, ...] = ("fid", "kid", "precision", "recall", "density", "coverage",
                                  "inception_score", "recognisable", "min_class_share")
MNIST_COLUMNS: tuple[str, ...] = MNIST_METRICS + tuple(f"floor_{m}" for m in MNIST_METRICS) + ("n_eval",)
COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(KEY_COLUMNS + RUN_COLUMNS + MIXTURE_COLUMNS + STACKED_COLUMNS
                                               + MNIST_COLUMNS + ("settings",)))
"""Every column of ``results.csv``, in order; a row leaves the ones of other experiments empty."""


def config_key(settings: Mapping[str, Any]) -> str:
    """A short hash of everything that determines a run except its seed."""
    blob = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class ResultsTable:
    """Finished rows of a run folder: one JSON file each, gathered into CSV and JSON on demand."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.rows_dir = self.folder / "rows"

    def stem(self, experiment: str, model: str, seed: int, config: str) -> str:
        return f"{experiment}__{model}__seed{seed}__{config}"

    def row_path(self, experiment: str, model: str, seed: int, config: str) -> Path:
        return self.rows_dir / f"{self.stem(experiment, model, seed, config)}.json"

    def artifact_path(self, experiment: str, model: str, seed: int, config: str, suffix: str = ".pt") -> Path:
        """Where a run keeps what the figures need (samples), beside its row."""
        return self.rows_dir / f"{self.stem(experiment, model, seed, config)}{suffix}"

    def get(self, experiment: str, model: str, seed: int, config: str) -> dict[str, Any] | None:
        path = self.row_path(experiment, model, seed, config)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None   # a damaged row counts as not finished: the run is repeated

    def put(self, row: Mapping[str, Any]) -> Path:
        missing = [c for c in KEY_COLUMNS + ("config",) if c not in row]
        if missing:
            raise ValueError(f"a row needs the columns {missing}")
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise ValueError(f"unknown columns {unknown}; valid columns are {list(COLUMNS)}")
        path = self.row_path(row["experiment"], row["model"], row["seed"], row["config"])
        _atomic_write(path, json.dumps(dict(row), indent=1, default=str) + "\n")
        return path

    def rows(self, experiment: str | None = None, config: str | None = None) -> list[dict[str, Any]]:
        """Finished rows, sorted by experiment, model and seed, optionally of one experiment / config."""
        out = []
        for path in sorted(self.rows_dir.glob("*.json")) if self.rows_dir.is_dir() else []:
            try:
                row = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if (experiment is None or row.get("experiment") == experiment) and \
                    (config is None or row.get("config") == config):
                out.append(row)
        return sorted(out, key=lambda r: (r["experiment"], r["model"], r["seed"]))

    def write(self, rows: Sequence[Mapping[str, Any]] | None = None) -> tuple[Path, Path]:
        """``results.csv`` and ``results.json`` in the folder (all finished rows unless ``rows`` given)."""
        rows = list(self.rows() if rows is None else rows)
        csv_path, json_path = self.folder / "results.csv", self.folder / "results.json"
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: (json.dumps(r[c], sort_keys=True) if c == "settings" and c in r else r.get(c, ""))
                        for c in COLUMNS})
        _atomic_write(csv_path, buf.getvalue())
        _atomic_write(json_path, json.dumps([dict(r) for r in rows], indent=1, default=str) + "\n")
        return csv_path, json_path


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ jobs

def make_job(experiment: str, model: str, seed: int, settings: Mapping[str, Any], *, run_dir: str | os.PathLike,
             profile: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """A job for :func:`run_job` (and :func:`gan_utils.sweep.run_sweep`): plain, picklable values."""
    check_choice("experiment", experiment, EXPERIMENTS)
    models = {"ring": MIXTURE_MODELS, "grid": MIXTURE_MODELS, "stacked_mnist": STACKED_MODELS,
              "mnist": MNIST_MODELS}[experiment]
    check_choice(f"model for {experiment}", model, models)
    check_seed("seed", seed)
    from . import train

    settings = dict(settings)
    with torch.random.fork_rng(devices=[]):     # building the networks must not move the caller's RNG
        setup = build_setup(experiment, model, settings)
    recipe = None if setup is None else train.setup_signature(setup)
    return {"experiment": experiment, "model": model, "seed": seed, "settings": settings,
            "config": config_key({"experiment": experiment, "model": model, **settings, "recipe": recipe}),
            "run_dir": str(run_dir), "profile": profile, "data_dir": None if data_dir is None else str(data_dir)}


def build_setup(experiment: str, model: str, s: Mapping[str, Any]) -> Any:
    """The ``GANSetup`` a job trains, from its recipe and settings (None for the real-data row)."""
    from . import recipes

    if experiment in ("ring", "grid"):
        kind, packing = ("vanilla", 2) if model == "pacgan2" else (model, 1)
        return recipes.toy_mlp(kind, packing=packing, hidden=s["hidden"], depth=s["depth"], latent_dim=s["latent_dim"])
    if model == "real":
        return None
    if experiment == "stacked_mnist":
        return recipes.RECIPES[model](channels=3, **({"width": s["width"]} if model != "vanilla" else {}))
    if model == "vanilla":
        return recipes.vanilla_mlp()
    if model == "bigan":
        return recipes.bigan(hidden=(s["bigan_hidden"],) * 2)
    return recipes.RECIPES[model](width=s["width"])


def pending(jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The jobs whose row is not in their run folder yet."""
    return [dict(j) for j in jobs
            if ResultsTable(j["run_dir"]).get(j["experiment"], j["model"], j["seed"], j["config"]) is None]


def run_jobs(jobs: Sequence[Mapping[str, Any]], *, progress: bool = True, slots: Sequence[str] | None = None,
             desc: str = "sweep") -> tuple[list[dict[str, Any]], int]:
    """Run the missing jobs through :func:`gan_utils.sweep.run_sweep`; (rows of all jobs, runs trained now)."""
    from .sweep import run_sweep

    todo = pending(jobs)
    if todo:
        run_sweep(run_job, todo, slots=slots, progress=progress, desc=desc)
    rows = []
    for j in jobs:
        row = ResultsTable(j["run_dir"]).get(j["experiment"], j["model"], j["seed"], j["config"])
        if row is None:
            raise RuntimeError(f"the run {j['experiment']}/{j['model']}/seed {j['seed']} wrote no row")
        rows.append(row)
    return rows, len(todo)


def run_job(*, experiment: str, model: str, seed: int, settings: Mapping[str, Any], config: str, run_dir: str,
            profile: str, data_dir: str | None, device: str | torch.device) -> dict[str, Any]:
    """Train and score one (experiment, model, seed); store and return its row (or return the stored one)."""
    table = ResultsTable(run_dir)
    done = table.get(experiment, model, seed, config)
    if done is not None:
        return done
    dev = torch.device(device)
    base = {"experiment": experiment, "model": model, "seed": seed, "profile": profile, "config": config,
            "device": str(dev), "settings": dict(settings)}
    if experiment in ("ring", "grid"):
        row = _mixture_run(experiment, model, seed, settings, dev, table.artifact_path(experiment, model, seed, config))
    elif experiment == "stacked_mnist":
        row = _stacked_run(model, seed, settings, dev, data_dir, table.artifact_path(experiment, model, seed, config))
    else:
        row = _mnist_run(model, seed, settings, dev, data_dir)
    row = {**base, **row}
    table.put(row)
    return row


def _quiet() -> contextlib.AbstractContextManager:
    """Loaders print notices naming local folders; the chapter prints its own summary instead."""
    return contextlib.redirect_stdout(io.StringIO())


_LOADED: dict[tuple[str, str | None], Any] = {}


def _loaded(what: str, data_dir: str | None) -> Any:
    """MNIST, the feature network and the held-out digits, loaded once per process (jobs share them)."""
    key = (what, data_dir)
    if key not in _LOADED:
        from . import data, evaluate

        with _quiet():
            _LOADED[key] = {"mnist": lambda: data.load_mnist(data_dir),
                            "net": lambda: evaluate.load_feature_net(data_dir, verbose=False),
                            "held_out": lambda: evaluate.held_out_real(data_dir)}[what]()
    return _LOADED[key]


def _train(setup: Any, batches: Any, steps: int, seed: int, dev: torch.device) -> Any:
    from . import train

    cfg = train.TrainConfig(steps=steps, seed=seed, device=dev, log_every=100, progress=False,
                            snapshot_every=steps, n_fixed=16)
    return train.train(setup, batches, cfg)


def _run_columns(res: Any, batch_size: int, eval_s: float) -> dict[str, Any]:
    return {"steps": res.steps_done, "critic_steps": res.critic_steps, "batch_size": batch_size,
            "train_s": round(res.wall_s, 2), "eval_s": round(eval_s, 2), "stopped": res.stopped}


def _mixture_run(mixture: str, model: str, seed: int, s: Mapping[str, Any], dev: torch.device,
                 artifact: Path) -> dict[str, Any]:
    from . import mixtures, repro

    repro.seed_everything(seed)
    setup = build_setup(mixture, model, s)
    batches = mixtures.MixtureBatches(mixture, s["batch_size"], seed=seed, device=dev)
    res = _train(setup, batches, s["steps"], seed, dev)
    t0 = time.monotonic()
    G = setup.generator.eval()
    g = torch.Generator().manual_seed(seed + 10_007)
    with torch.no_grad():
        points = G(torch.randn(s["n_eval"], setup.latent_dim, generator=g).to(dev)).float().cpu()
    m = mixtures.mode_metrics(points, mixture)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    torch.save(points, artifact)
    return {**_run_columns(res, s["batch_size"], time.monotonic() - t0), "modes": m.modes, "n_modes": m.n_modes,
            "high_quality": m.high_quality, "reverse_kl": m.reverse_kl}


def _generate_in_chunks(G: torch.nn.Module, n: int, latent_dim: int, noise: str, seed: int, dev: torch.device,
                        chunk: int = 1000) -> Iterable[torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 10_007)
    G.eval()
    with torch.no_grad():
        for start in range(0, n, chunk):
            b = min(chunk, n - start)
            z = torch.randn(b, latent_dim, generator=g) if noise == "normal" else torch.rand(b, latent_dim, generator=g) * 2 - 1
            yield G(z.to(dev)).float().cpu().clamp(-1, 1)


def _stacked_run(model: str, seed: int, s: Mapping[str, Any], dev: torch.device, data_dir: str | None,
                 artifact: Path) -> dict[str, Any]:
    from . import evaluate, repro, stacked

    repro.seed_everything(seed)
    mnist, net = _loaded("mnist", data_dir), _loaded("net", data_dir)
    n = s["n_eval"]
    labels, label_true, keep = [], [], None
    if model == "real":
        res, t0 = None, time.monotonic()
        g = torch.Generator().manual_seed(seed + 10_007)
        for start in range(0, n, 1000):
            images, true = stacked.sample_stacked(mnist.images, min(1000, n - start), g, mnist.labels)
            labels.append(evaluate.classify_channels(net, images)[0])
            label_true.append(true)
            keep = images[:16] if keep is None else keep
    else:
        setup = build_setup("stacked_mnist", model, s)
        batches = stacked.StackedMNISTBatches(mnist.images, s["batch_size"], seed=seed, device=dev)
        res = _train(setup, batches, s["steps"], seed, dev)
        t0 = time.monotonic()
        for images in _generate_in_chunks(setup.generator, n, setup.latent_dim, setup.noise, seed, dev):
            labels.append(evaluate.classify_channels(net, images)[0])
            keep = images[:16] if keep is None else keep
    m = stacked.stacked_mode_metrics(torch.cat(labels))
    artifact.parent.mkdir(parents=True, exist_ok=True)
    torch.save(keep, artifact)
    row: dict[str, Any] = {"modes": m.modes, "n_modes": stacked.N_MODES, "kl": m.kl, "n_samples": m.n}
    if label_true:
        t = stacked.stacked_mode_metrics(torch.cat(label_true))
        row.update(label_modes=t.modes, label_kl=t.kl)
    eval_s = time.monotonic() - t0
    if res is None:
        row.update(steps=0, critic_steps=0, batch_size=0, train_s=0.0, eval_s=round(eval_s, 2), stopped="")
    else:
        row.update(_run_columns(res, s["batch_size"], eval_s))
    return row


def _mnist_run(model: str, seed: int, s: Mapping[str, Any], dev: torch.device, data_dir: str | None) -> dict[str, Any]:
    from . import data, evaluate, repro

    repro.seed_everything(seed)
    mnist, net, held_out = _loaded("mnist", data_dir), _loaded("net", data_dir), _loaded("held_out", data_dir)
    setup = build_setup("mnist", model, s)
    batches = data.DeviceBatches(mnist.images, batch_size=s["batch_size"], seed=seed, device=dev)
    res = _train(setup, batches, s["steps"], seed, dev)
    t0 = time.monotonic()
    n = min(s["n_eval"], len(held_out) // 2)
    ev = evaluate.evaluate_generator(setup.generator, held_out.images, n=n, feature_net=net, seed=seed,
                                     latent_dim=setup.latent_dim, noise=setup.noise, device=dev)
    row: dict[str, Any] = {m: getattr(ev.generated, m) for m in MNIST_METRICS}
    row.update({f"floor_{m}": getattr(ev.real, m) for m in MNIST_METRICS})
    row["n_eval"] = ev.n
    row.update(_run_columns(res, s["batch_size"], time.monotonic() - t0))
    return row


# ------------------------------------------------------------------ summaries

def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n)); the error is NaN for one value."""
    v = [float(x) for x in values]
    if not v:
        return float("nan"), float("nan")
    mean = sum(v) / len(v)
    if len(v) < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in v) / (len(v) - 1)
    return mean, math.sqrt(var / len(v))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value)."""
    mean, sem = mean_sem(values)
    return mean, sem * math.sqrt(len(values)) if len(values) > 1 else float("nan")


def pm(mean: float, err: float, fmt: str = "{:.2f}") -> str:
    """``mean ± err``, or just ``mean`` when the error is undefined (one seed)."""
    if math.isnan(mean):
        return "n/a"
    return fmt.format(mean) if math.isnan(err) else f"{fmt.format(mean)} ± {fmt.format(err)}"

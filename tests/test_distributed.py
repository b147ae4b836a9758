"""Data-parallel training under torch.distributed (gloo on CPU), sweeps over devices, and faults.

Equality: N ranks with 1/N of the global batch each end with the parameters of one process
trained on the whole batch (for setups without BatchNorm), because each rank takes its slice
of the batch, of the noise and of the penalty's random numbers, and gradients are averaged.
The same test with averaging switched off must, and does, give other parameters.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gan_utils import data, distributed, recipes, sweep, train
from gan_utils.distributed import World

ROOT = Path(__file__).resolve().parent.parent
STEPS = 4
GLOBAL_BATCH = 16
# float32 sums split over two ranks round differently from one sum over the batch:
TOL = dict(rtol=1e-4, atol=1e-5)


class NoAverage(World):
    """A broken world that forgets to average gradients: the equality test must catch it."""

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        pass


def _build(kind: str) -> train.GANSetup:
    torch.manual_seed(0)
    if kind == "vanilla":
        return recipes.vanilla_mlp(hidden=(32, 32, 32), dropout=0.0)
    if kind == "wgan_gp_toy":
        return recipes.toy_mlp("wgan_gp", hidden=32, depth=2)
    if kind == "bigan":     # one hidden layer: no BatchNorm; no dropout
        return recipes.bigan(hidden=(32,), dropout=0.0)
    if kind == "dcgan":     # BatchNorm in G and D: statistics per rank
        return recipes.dcgan(width=4)
    raise ValueError(kind)


def _data(kind: str) -> data.DeviceBatches | data.ToyBatches:
    if kind == "wgan_gp_toy":
        return data.ToyBatches("8gaussians", batch_size=GLOBAL_BATCH, seed=0)
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    return data.DeviceBatches(x, batch_size=GLOBAL_BATCH, seed=0)


def _state(setup: train.GANSetup) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, m in setup.modules().items() for k, v in m.state_dict().items()}


CASES = [("vanilla", True), ("wgan_gp_toy", True), ("bigan", True), ("dcgan", True), ("vanilla", False)]


def _worker(rank: int, size: int, port: int, out: str) -> None:
    """Every case in one process group: starting processes is the slow part on 2 CPU cores."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size, timeout=timedelta(seconds=60))
    try:
        results = {}
        for kind, average in CASES:
            world = World(rank, size) if average else NoAverage(rank, size)
            setup = _build(kind)
            cfg = train.TrainConfig(steps=STEPS, seed=0, progress=False, log_every=1)
            train.train(setup, _data(kind), cfg, world=world)
            results[f"{kind}-{average}"] = {"state": _state(setup), "equal": world.all_equal(setup.modules())}
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Each case trained by 2 gloo ranks on half of every batch; one result dict per rank."""
    out = str(tmp_path_factory.mktemp("ranks") / "result")
    mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn", join=True)
    return [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]


def _single(kind: str) -> dict[str, torch.Tensor]:
    setup = _build(kind)
    train.train(setup, _data(kind), train.TrainConfig(steps=STEPS, seed=0, progress=False, log_every=1))
    return _state(setup)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k], b[k], **TOL) for k in a)


@pytest.mark.parametrize("kind", ["vanilla", "wgan_gp_toy", "bigan"])
def test_two_ranks_equal_one_process_on_the_whole_batch(kind: str, two_ranks: list[dict]) -> None:
    ranks = [r[f"{kind}-True"] for r in two_ranks]
    single = _single(kind)
    assert all(r["equal"] for r in ranks)                     # every rank holds the same parameters
    for k, v in single.items():
        torch.testing.assert_close(ranks[0]["state"][k], v, **TOL, msg=f"{kind}: {k}")


def test_without_averaging_the_ranks_drift_apart(two_ranks: list[dict]) -> None:
    ranks = [r["vanilla-False"] for r in two_ranks]
    assert not ranks[0]["equal"]
    assert not _close(ranks[0]["state"], _single("vanilla"))


def test_batchnorm_statistics_stay_per_rank(two_ranks: list[dict]) -> None:
    """DCGAN with BatchNorm: what is compared, and why.

    Each rank normalises its own half-batch (as DDP does), so the 2-rank run is *not*
    the 1-process algorithm and is not compared with it. What must hold: gradients are
    averaged, so the *parameters* are identical on both ranks; the running statistics
    (buffers) are each rank's own and differ.
    """
    ranks = [r["dcgan-True"] for r in two_ranks]
    assert all(r["equal"] for r in ranks)
    params = {f"{n}.{k}" for n, m in _build("dcgan").modules().items() for k, _ in m.named_parameters()}
    for k in params:
        assert torch.equal(ranks[0]["state"][k], ranks[1]["state"][k])
    stats = [k for k in ranks[0]["state"] if k.endswith("running_mean")]
    assert stats and any(not torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in stats)


def test_world_shards_and_refuses_uneven_batches() -> None:
    t = torch.arange(8)
    assert World(1, 2).shard(t).tolist() == [4, 5, 6, 7]
    assert World().shard(t) is t
    with pytest.raises(ValueError, match="batch_size 10 does not split over 4 processes"):
        World(0, 4).check_batch(10)


# ---------------------------------------------------------------- torchrun: resume and faults

def _torchrun(tmp_path: Path, nproc: int, steps: int, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "gan_utils.distributed"] if nproc > 1 else [sys.executable, "-m", "gan_utils.distributed"]
    cmd += ["--recipe", "vanilla", "--steps", str(steps), "--batch-size", "16", "--out", str(tmp_path),
            "--checkpoint-every", "2", "--device", "cpu", "--timeout-s", "20",
            "--recipe-kwargs", '{"hidden": [16, 16, 16]}']
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_torchrun_trains_resumes_and_survives_a_dead_rank(tmp_path: Path, mnist_dir: Path) -> None:
    env = {"GAN_DATA_DIR": str(mnist_dir)}
    started = time.monotonic()
    crashed = _torchrun(tmp_path, 2, 8, {**env, "GAN_DIST_FAIL_RANK": "1", "GAN_DIST_FAIL_AT": "5"})
    took = time.monotonic() - started
    assert crashed.returncode != 0, crashed.stdout + crashed.stderr
    assert took < 100                                          # no hang: the job ends on its own
    ckpt = tmp_path / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)               # intact (atomic writes)
    assert state["step"] in (4, 6)
    # resumable by one process ...
    one = _torchrun(tmp_path, 1, 10, env)
    assert one.returncode == 0, one.stdout + one.stderr
    assert torch.load(ckpt, weights_only=True)["step"] == 10
    # ... and by two
    two = _torchrun(tmp_path, 2, 12, env)
    assert two.returncode == 0, two.stdout + two.stderr
    assert torch.load(ckpt, weights_only=True)["step"] == 12
    assert "parameters_identical_across_ranks : True" in two.stdout
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "samples.png").exists()


# ---------------------------------------------------------------- sweeps

def _tiny_run(seed: int, kind: str, device: str) -> list[float]:
    torch.manual_seed(seed)
    setup = recipes.toy_mlp(kind, hidden=8, depth=1)
    cfg = train.TrainConfig(steps=5, seed=seed, device=device, progress=False, log_every=1)
    result = train.train(setup, data.ToyBatches("8gaussians", batch_size=16, seed=seed), cfg)
    return result.history["loss_d"].tolist()


def test_sweep_over_two_processes_equals_running_one_after_another() -> None:
    jobs = [{"seed": s, "kind": k} for s in (0, 1) for k in ("vanilla", "hinge")]
    parallel = sweep.run_sweep(_tiny_run, jobs, slots=["cpu", "cpu"], progress=False)
    serial = sweep.run_sweep(_tiny_run, jobs, slots=["cpu"], progress=False)
    assert parallel == serial
    assert parallel[0] != parallel[2]                          # different seeds, different runs

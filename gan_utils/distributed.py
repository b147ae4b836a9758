"""Data-parallel training under ``torchrun``, with PyTorch's own ``torch.distributed``.

One generator step is split over N processes ("ranks"): each takes its slice of every
global batch -- of the real images, of the noise and of the penalty's random numbers --
so that N ranks compute, between them, exactly what one process computes on the whole
batch. Gradients are averaged across ranks before every optimiser step, so every rank's
parameters stay identical. Only rank 0 writes checkpoints, snapshots and the manifest.

Why an explicit all-reduce and not ``DistributedDataParallel``: a GAN step back-propagates
through D twice with different parameters frozen (D's weights get no gradient in the
generator step), WGAN-GP and R1 differentiate through ``torch.autograd.grad(...,
create_graph=True)``, and BiGAN's encoder joins only the generator step. DDP reduces
gradients from hooks on ``.backward()``; its documentation says it does not support
``torch.autograd.grad``, penalties through it have given wrong gradients (pytorch/pytorch
#47562) and higher-order gradients are unsupported (#63812, #63929), and frozen parameters
need ``find_unused_parameters``. Averaging ``.grad`` just before ``optimizer.step()`` is
correct for all of these by construction; what it gives up is DDP's overlap of
communication with the backward pass, which matters little for networks of this size.

BatchNorm: statistics are per rank (each rank normalises its own slice), which is what
DDP does too; with BatchNorm in a network, N ranks therefore train a slightly different
algorithm from one process on the global batch (batch statistics over B/N samples).
``convert_sync_batchnorm`` switches to global statistics on CUDA (``SyncBatchNorm`` has no
CPU implementation).

Usage (see ``book/running.md``)::

    torchrun --standalone --nproc_per_node=4 -m gan_utils.distributed --recipe dcgan \\
        --steps 10000 --batch-size 256 --out runs/dcgan
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` data-parallel ranks (``World()``: a single process)."""

    rank: int = 0
    size: int = 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes files and reports progress."""
        return self.rank == 0

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (rows ``rank*B/N .. (rank+1)*B/N``)."""
        if self.size == 1:
            return t
        n = t.shape[0] // self.size
        return t[self.rank * n:(self.rank + 1) * n]

    def check_batch(self, global_batch: int) -> int:
        """The per-rank batch size; the global one must split evenly."""
        if global_batch % self.size:
            raise ValueError(f"batch_size {global_batch} does not split over {self.size} processes; "
                             f"choose a multiple of {self.size}")
        return global_batch // self.size

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """All-reduce the mean of every ``.grad`` the optimiser will use (one flat buffer).

        Parameters without a gradient (a frozen D in the generator step) are skipped; every
        rank skips the same ones because every rank runs the same program.
        """
        if self.size == 1:
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat.div_(self.size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_equal(self, modules: dict[str, nn.Module]) -> bool:
        """True if every rank holds the same parameters (a check, for tests and the CLI)."""
        if self.size == 1:
            return True
        flat = torch.cat([p.detach().reshape(-1).float() for m in modules.values() for p in m.parameters()])
        lo, hi = flat.clone(), flat.clone()
        torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        return bool(torch.equal(lo, hi))


class ShardedBatches:
    """Rank ``r``'s slice of every global batch of ``batches``: still a pure function of ``k``."""

    def __init__(self, batches: Any, world: World) -> None:
        self.batches, self.world = batches, world
        self.batch_size = world.check_batch(batches.batch_size)

    def batch(self, k: int) -> tuple[torch.Tensor, ...]:
        return tuple(self.world.shard(t) for t in self.batches.batch(k))


def init_from_env(backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Join the process group ``torchrun`` describes in the environment (RANK, WORLD_SIZE, ...).

    Without those variables this is a single process and nothing is initialised. The
    ``timeout`` bounds how long a collective waits for a rank that died: the others then
    fail with an error instead of hanging (``torchrun`` also stops them when a rank exits).
    """
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return World()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size())


def convert_sync_batchnorm(modules: dict[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
    """Replace BatchNorm by SyncBatchNorm (global statistics across ranks); CUDA only."""
    if device.type != "cuda":
        raise ValueError("SyncBatchNorm needs CUDA devices (PyTorch has no CPU implementation); "
                         "drop --sync-bn to keep per-rank BatchNorm statistics")
    return {n: nn.SyncBatchNorm.convert_sync_batchnorm(m) for n, m in modules.items()}


def main(argv: list[str] | None = None) -> None:
    """Train one recipe on MNIST, data-parallel over the ranks torchrun started (or one process)."""
    from . import config, data, recipes, repro, train

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--recipe", required=True, choices=sorted(recipes.RECIPES))
    parser.add_argument("--steps", type=int, required=True, help="generator steps")
    parser.add_argument("--batch-size", type=int, default=64, help="GLOBAL batch, split over the ranks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="run folder: checkpoint.pt, manifest.json, samples.png")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="auto", choices=repro.DEVICES)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (CUDA)")
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                        help="how long a collective waits for a dead rank before failing")
    parser.add_argument("--recipe-kwargs", default="{}", help='JSON overrides, e.g. \'{"width": 32}\'')
    args = parser.parse_args(argv)

    world = init_from_env(timeout_s=args.timeout_s)
    try:
        if world.size > 1 and torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        else:
            device = repro.pick_device(args.device)
        config.check_int("steps", args.steps, minimum=1)
        config.check_int("seed", args.seed, minimum=0, maximum=config.SEED_MAX - world.size)
        config.check_int("batch_size", args.batch_size, minimum=1)
        world.check_batch(args.batch_size)
        repro.seed_everything(args.seed + world.rank)  # dropout masks differ per rank, like their data
        torch.manual_seed(args.seed)                   # ... but every rank builds the same networks
        setup = recipes.RECIPES[args.recipe](**json.loads(args.recipe_kwargs))
        torch.manual_seed(args.seed + 7919 * world.rank)
        if args.sync_bn:
            converted = convert_sync_batchnorm(setup.modules(), device)
            setup.generator, setup.discriminator = converted["generator"], converted["discriminator"]
        mnist = data.load_mnist(args.data_dir)
        batches = data.DeviceBatches(mnist.images, batch_size=args.batch_size, seed=args.seed, device=device)
        out = Path(args.out)
        cfg = train.TrainConfig(steps=args.steps, seed=args.seed, device=device, progress=world.is_writer,
                                checkpoint_path=out / "checkpoint.pt", checkpoint_every=args.checkpoint_every)
        fail_at = int(os.environ.get("GAN_DIST_FAIL_AT", "-1"))  # fault-injection hook for the tests

        def on_snapshot(step: int, images: torch.Tensor) -> None:
            if world.rank == int(os.environ.get("GAN_DIST_FAIL_RANK", "-1")) and step >= fail_at >= 0:
                os._exit(17)

        started = time.time()
        result = train.train(setup, batches, cfg, on_snapshot=on_snapshot, world=world)
        identical = world.all_equal(setup.modules())
        if world.is_writer:
            from torchvision.utils import save_image
            save_image(result.snapshots[-1][1][:64], out / "samples.png", nrow=8, normalize=True,
                       value_range=(-1, 1))
            manifest = repro.run_manifest(profile="cli", seed=args.seed, device=device, started=started,
                                          data=mnist.source, recipe=args.recipe, steps=result.steps_done,
                                          global_batch=args.batch_size, processes=world.size,
                                          train_s=round(result.wall_s, 1),
                                          g_steps_per_s=round(result.steps_done / max(result.wall_s, 1e-9), 2),
                                          parameters_identical_across_ranks=identical)
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
            print(repro.format_manifest(manifest))
        if not identical:
            raise RuntimeError("parameters differ between ranks after training; gradients were not averaged")
    finally:
        if world.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

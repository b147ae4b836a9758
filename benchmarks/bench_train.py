"""Throughput of the one training loop for every GAN of the book.

Measures generator steps per second (and critic steps per second) after a
warm-up, on real MNIST when available (else random tensors of MNIST's shape:
speed does not depend on the pixels). Results are printed as a table and can
be written as JSON::

    python benchmarks/bench_train.py                      # all models, auto device
    python benchmarks/bench_train.py --models dcgan wgan_gp --steps 200 --amp
    python benchmarks/bench_train.py --models vanilla --compile     # torch.compile (inductor)
    python benchmarks/bench_train.py --json bench.json

This is a measurement, not a test: CI never times anything.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from gan_utils import data, models, repro, train

Builder = Callable[[], train.GANSetup]


def _adam(lr: float, betas: tuple[float, float]) -> train.OptimizerSpec:
    return train.OptimizerSpec("adam", lr, betas)


BUILDERS: dict[str, Builder] = {
    "vanilla": lambda: train.GANSetup(models.MLPGenerator(128), models.MLPDiscriminator(), 128,
                                      opt_g=_adam(2e-4, (0.5, 0.999)), opt_d=_adam(2e-4, (0.5, 0.999))),
    "dcgan": lambda: train.GANSetup(models.DCGANGenerator(100), models.DCGANDiscriminator(norm="batch"), 100,
                                    opt_g=_adam(2e-4, (0.5, 0.999)), opt_d=_adam(2e-4, (0.5, 0.999))),
    "wgan": lambda: train.GANSetup(models.DCGANGenerator(100), models.DCGANDiscriminator(norm="batch"), 100,
                                   loss="wasserstein", n_critic=5, clip_value=0.01,
                                   opt_g=train.OptimizerSpec("rmsprop", 5e-5),
                                   opt_d=train.OptimizerSpec("rmsprop", 5e-5)),
    "wgan_gp": lambda: train.GANSetup(models.DCGANGenerator(100), models.DCGANDiscriminator(norm="layer"), 100,
                                      loss="wasserstein", n_critic=5, gp_weight=10.0,
                                      opt_g=_adam(1e-4, (0.0, 0.9)), opt_d=_adam(1e-4, (0.0, 0.9))),
    "bigan": lambda: train.GANSetup(models.MLPGenerator(50, hidden=(1024, 1024)), models.JointDiscriminator(50),
                                    50, loss="bigan", noise="uniform", encoder=models.BiGANEncoder(50),
                                    opt_g=_adam(2e-4, (0.5, 0.999)), opt_d=_adam(2e-4, (0.5, 0.999))),
}


def _images(device: torch.device) -> torch.Tensor:
    try:
        return data.load_mnist().images
    except FileNotFoundError:
        print("(no MNIST files found: timing on random tensors of MNIST's shape)")
        return torch.rand(10_000, 1, 28, 28) * 2 - 1


def bench(name: str, images: torch.Tensor, device: torch.device, steps: int, batch: int,
          amp: bool, compile: bool) -> dict[str, float | str]:
    torch.manual_seed(0)
    setup = BUILDERS[name]()
    batches = data.DeviceBatches(images, batch_size=batch, device=device)
    warm = train.TrainConfig(steps=max(2, steps // 10), device=device, progress=False, amp=amp,
                             compile=compile, snapshot_every=10**9)
    t0 = time.perf_counter()
    train.train(setup, batches, warm)  # warm-up: allocator, cuDNN autotune, lazy init, compilation
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.synchronize()
    cfg = train.TrainConfig(steps=steps, device=device, progress=False, amp=amp, compile=compile,
                            snapshot_every=10**9, log_every=steps)
    t0 = time.perf_counter()
    result = train.train(setup, batches, cfg)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"model": name, "g_steps_per_s": steps / dt, "critic_steps_per_s": result.critic_steps / dt,
            "images_per_s": result.critic_steps * batch / dt, "seconds": dt, "warmup_s": warm_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--device", default="auto", choices=repro.DEVICES)
    parser.add_argument("--steps", type=int, default=100, help="timed generator steps per model")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward passes")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = repro.pick_device(args.device)
    images = _images(device)
    print(f"device: {repro.device_name(device)}, batch {args.batch}, {args.steps} timed steps, "
          f"amp={args.amp and device.type == 'cuda'}, compile={args.compile}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    rows = [bench(m, images, device, args.steps, args.batch, args.amp, args.compile) for m in args.models]
    print(f"{'model':<10}{'G steps/s':>12}{'critic steps/s':>16}{'images/s':>12}{'warm-up s':>12}")
    for r in rows:
        print(f"{r['model']:<10}{r['g_steps_per_s']:>12.1f}{r['critic_steps_per_s']:>16.1f}"
              f"{r['images_per_s']:>12.0f}{r['warmup_s']:>12.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": repro.device_name(device), "batch": args.batch, "amp": args.amp,
                       "compile": args.compile, "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()

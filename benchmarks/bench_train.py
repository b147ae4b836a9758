"""Throughput of the one training loop against a plain loop, for every GAN of the book.

For each model the setup comes from ``gan_utils.recipes`` (the chapters' source), and
the same networks, batches, optimisers and objective are trained twice, alternately:
by ``gan_utils.train.train`` and by a straight-line step written the way
pytorch/examples writes it (``benchmarks/plain_loops.py``). Warm-up steps are
excluded; each side is timed ``--repeats`` times, back to back, and the medians are reported;
the ratio loop / plain speed (above 1: the book's loop is faster) is the median of the
per-repeat ratios, whose range is printed as the timing noise. Real MNIST when available,
else random tensors of MNIST's shape (speed does not depend on the pixels)::

    python benchmarks/bench_train.py                      # all models, auto device
    python benchmarks/bench_train.py --models dcgan wgan_gp --steps 200 --amp
    python benchmarks/bench_train.py --models vanilla --compile     # torch.compile (inductor)
    python benchmarks/bench_train.py --json bench.json

WGAN is timed with its steady-state schedule (5 critic steps); its 100-step bursts
would only add critic work to both sides. This is a measurement, not a test: CI
never times anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from gan_utils import data, recipes, repro, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loops import PLAIN_STEPS  # noqa: E402


def _images() -> torch.Tensor:
    try:
        return data.load_mnist().images
    except FileNotFoundError:
        print("(no MNIST files found: timing on random tensors of MNIST's shape)")
        return torch.rand(10_000, 1, 28, 28) * 2 - 1


def _setup(name: str) -> train.GANSetup:
    torch.manual_seed(0)
    setup = recipes.RECIPES[name]()
    if name == "wgan":
        setup.schedule = train.CriticSchedule(5)
    return setup


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, images: torch.Tensor, device: torch.device, steps: int, batch: int,
          amp: bool, compile: bool, repeats: int) -> dict[str, float | str]:
    batches = data.DeviceBatches(images, batch_size=batch, device=device)
    warm_steps = max(2, steps // 10)

    setup = _setup(name)
    def cfg(n: int) -> train.TrainConfig:
        return train.TrainConfig(steps=n, device=device, progress=False, amp=amp, compile=compile,
                                 snapshot_every=10**9, log_every=n, n_fixed=8)
    t0 = time.perf_counter()
    train.train(setup, batches, cfg(warm_steps))  # allocator, cuDNN autotune, lazy init, compilation
    warm_s = time.perf_counter() - t0

    plain_setup = _setup(name)
    for m in plain_setup.modules().values():
        m.to(device).train()
    plain = PLAIN_STEPS[name](plain_setup, batches, device)
    for k in range(warm_steps):
        plain(k)

    loop_s, plain_s, critic_steps = [], [], 0
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        result = train.train(setup, batches, cfg(steps))
        _sync(device)
        loop_s.append(time.perf_counter() - t0)
        critic_steps = result.critic_steps
        t0 = time.perf_counter()
        for k in range(steps):
            plain(k)
        _sync(device)
        plain_s.append(time.perf_counter() - t0)
    loop, ref = statistics.median(loop_s), statistics.median(plain_s)
    per_repeat = [p / q for q, p in zip(loop_s, plain_s)]
    # The ratio is the median of the per-repeat ratios: each compares two runs made back to back,
    # so a slow drift of the machine's speed (other load, clocks) cancels within a pair.
    return {"model": name, "loop_g_steps_per_s": steps / loop, "plain_g_steps_per_s": steps / ref,
            "ratio": statistics.median(per_repeat), "ratio_per_repeat": per_repeat,
            "critic_steps_per_g_step": critic_steps / steps,
            "loop_seconds": loop_s, "plain_seconds": plain_s, "warmup_s": warm_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(recipes.RECIPES), choices=list(recipes.RECIPES))
    parser.add_argument("--device", default="auto", choices=repro.DEVICES)
    parser.add_argument("--steps", type=int, default=50, help="timed generator steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed runs of each side")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast of the book loop (any device)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the book loop's forwards")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = repro.pick_device(args.device)
    images = _images()
    print(f"device: {repro.device_name(device)}, batch {args.batch}, {args.steps} timed steps x {args.repeats}, "
          f"amp={args.amp}, compile={args.compile}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    rows = []
    for m in args.models:
        rows.append(bench(m, images, device, args.steps, args.batch, args.amp, args.compile, args.repeats))
        r = rows[-1]
        print(f"  {m}: book loop {r['loop_g_steps_per_s']:.2f}, plain {r['plain_g_steps_per_s']:.2f} G steps/s",
              flush=True)
    print(f"{'model':<10}{'book loop':>12}{'plain loop':>12}{'ratio':>8}{'range':>12}{'critic/G':>10}{'warm-up s':>11}")
    for r in rows:
        spread = f"{min(r['ratio_per_repeat']):.2f}-{max(r['ratio_per_repeat']):.2f}"
        print(f"{r['model']:<10}{r['loop_g_steps_per_s']:>12.2f}{r['plain_g_steps_per_s']:>12.2f}"
              f"{r['ratio']:>8.2f}{spread:>12}{r['critic_steps_per_g_step']:>10.0f}{r['warmup_s']:>11.1f}")
    print("(G steps per second, median of the repeats; ratio = median over repeats of book loop / plain loop\n"
          " speed, the two sides of a repeat run back to back; range: the lowest and highest of those ratios)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": repro.device_name(device), "batch": args.batch, "amp": args.amp,
                       "compile": args.compile, "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()

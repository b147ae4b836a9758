"""Figures shared by the chapters: training curves, sample grids, 2D scatters, animations.

Each function draws on a given ``ax`` (or a new figure) and returns the figure,
so notebooks can compose panels without repeating matplotlib boilerplate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def smooth(values: np.ndarray, window: int = 25) -> np.ndarray:
    """Moving average (valid part), so noisy per-step losses show their trend."""
    values = np.asarray(values, dtype=float)
    window = max(1, min(window, len(values)))
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6, 3.5)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _curve(ax: Axes, values: np.ndarray, label: str, window: int) -> None:
    steps = np.arange(len(values))
    line, = ax.plot(steps, values, alpha=0.25, lw=0.8)
    if len(values) >= window > 1:
        ax.plot(steps[window - 1:], smooth(values, window), color=line.get_color(), lw=1.6, label=label)
    else:
        line.set_alpha(1.0)
        line.set_label(label)


def _legend_below(ax: Axes) -> None:
    """A legend under the axes, so it never hides a curve."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, fontsize=9)


def plot_losses(history: Mapping[str, np.ndarray], ax: Axes | None = None, window: int = 25,
                title: str = "Losses") -> Figure:
    """Discriminator and generator losses per generator step (faint: raw, solid: smoothed)."""
    fig, ax = _axes(ax)
    _curve(ax, history["loss_d"], "discriminator / critic", window)
    _curve(ax, history["loss_g"], "generator", window)
    ax.set(xlabel="generator step", ylabel="loss", title=title)
    _legend_below(ax)
    return fig


def plot_scores(history: Mapping[str, np.ndarray], ax: Axes | None = None, window: int = 25,
                title: str = "Discriminator outputs",
                labels: tuple[str, str] = ("D(x), real", "D(G(z)), generated")) -> Figure:
    """Mean D(x) and D(G(z)); at the game's equilibrium both sit at 1/2."""
    fig, ax = _axes(ax)
    _curve(ax, history["d_real"], labels[0], window)
    _curve(ax, history["d_fake"], labels[1], window)
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="generator step", ylabel="mean output", ylim=(0, 1), title=title)
    _legend_below(ax)
    return fig


def plot_wasserstein(history: Mapping[str, np.ndarray], ax: Axes | None = None, window: int = 25,
                     title: str = "Critic's Wasserstein estimate") -> Figure:
    """E[f(x)] - E[f(G(z))] (= -critic loss without penalty): should fall as G improves."""
    fig, ax = _axes(ax)
    _curve(ax, np.asarray(history["d_real"]) - np.asarray(history["d_fake"]), "E f(x) - E f(G(z))", window)
    ax.set(xlabel="generator step", ylabel="estimate", title=title)
    _legend_below(ax)
    return fig


def image_grid(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """Tile images in [-1, 1] into one (H, W) or (H, W, 3) array in [0, 1]."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu()[: nrow * nrow], nrow=nrow, padding=2,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 3 and np.allclose(arr[..., 0], arr[..., 1]) else arr


def show_images(images: torch.Tensor, nrow: int = 8, ax: Axes | None = None, title: str = "") -> Figure:
    """A grid of images (first ``nrow**2``) in [-1, 1]."""
    fig, ax = _axes(ax, (4, 4))
    ax.imshow(image_grid(images, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def plot_snapshots(snapshots: Sequence[tuple[int, torch.Tensor]], n_panels: int = 6,
                   nrow: int = 4) -> Figure:
    """Samples from the same fixed noise at evenly spaced moments of training."""
    idx = np.unique(np.linspace(0, len(snapshots) - 1, min(n_panels, len(snapshots))).round().astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(2.2 * len(idx), 2.5), squeeze=False)
    for ax, i in zip(axes[0], idx):
        step, images = snapshots[i]
        show_images(images, nrow=nrow, ax=ax, title=f"step {step}")
    fig.tight_layout()
    return fig


def animate_snapshots(snapshots: Sequence[tuple[int, torch.Tensor]], nrow: int = 6,
                      interval_ms: int = 400, max_frames: int = 16):
    """A small JS/HTML animation of the fixed-noise samples over training.

    Returns an ``IPython.display.HTML`` object (frames embedded, no external files),
    kept small by subsampling to ``max_frames`` and a low resolution.
    """
    from IPython.display import HTML
    from matplotlib import animation

    idx = np.unique(np.linspace(0, len(snapshots) - 1, min(max_frames, len(snapshots))).round().astype(int))
    fig, ax = plt.subplots(figsize=(2.6, 2.8), dpi=72)
    im = ax.imshow(image_grid(snapshots[idx[0]][1], nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    title = ax.set_title("")

    def draw(k: int):
        step, images = snapshots[idx[k]]
        im.set_data(image_grid(images, nrow))
        title.set_text(f"step {step}")
        return im, title

    anim = animation.FuncAnimation(fig, draw, frames=len(idx), interval=interval_ms, blit=False)
    with plt.rc_context({"animation.frame_format": "jpeg", "savefig.dpi": 72}):
        html = _offline_controls(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    return HTML(html)


# Matplotlib's player links Font Awesome from a CDN for its button icons; the book must work
# offline, so the link goes and each icon becomes a plain Unicode symbol.
_ICONS = {"fa fa-play fa-flip-horizontal": "\u25c0", "fa fa-minus": "\u2212", "fa fa-plus": "+",
          "fa fa-fast-backward": "\u23ee", "fa fa-step-backward": "\u25c1", "fa fa-pause": "\u23f8",
          "fa fa-play": "\u25b6", "fa fa-step-forward": "\u25b7", "fa fa-fast-forward": "\u23ed"}


def _offline_controls(html: str) -> str:
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    for cls, symbol in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', f"<span>{symbol}</span>")
    if "font-awesome" in html or 'class="fa ' in html:
        raise RuntimeError("matplotlib's animation player changed: update plots._ICONS")
    return html


def critic_surface(critic: Callable[[torch.Tensor], torch.Tensor], lim: float, n: int = 120
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """A 2D critic's value on an n x n grid over [-lim, lim]^2: ``(gx, gy, f, f rescaled, spread)``.

    A critic is defined up to an additive constant (and, clipped, an unknown scale), and a
    clipped one may vary by 1e-7 over the plane, so plots colour ``f`` rescaled to [0, 1]
    and report the actual spread ``max f - min f`` beside it.
    """
    xs = torch.linspace(-lim, lim, n)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    with torch.no_grad():
        params = list(critic.parameters()) if isinstance(critic, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
        values = critic(torch.stack([gx.ravel(), gy.ravel()], 1).to(device)).double().cpu().reshape(gx.shape)
    spread = float(values.max() - values.min())
    scaled = (values - values.min()) / spread if spread > 0 else torch.zeros_like(values)
    return gx.numpy(), gy.numpy(), values.numpy(), scaled.numpy(), spread


def scatter_2d(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, ax: Axes | None = None,
               critic: Callable[[torch.Tensor], torch.Tensor] | None = None, lim: float = 2.5,
               title: str = "") -> Figure:
    """Real (grey) vs generated (orange) points; optional contours of a critic's value.

    A critic is defined up to an additive constant (and, clipped, an unknown scale), and a
    clipped one may vary by 1e-7 over the plane: the contours show its value rescaled to
    [0, 1] in this panel, and the title gets the actual spread max f - min f.
    """
    fig, ax = _axes(ax, (4, 4))
    if critic is not None:
        gx, gy, _, scaled, spread = critic_surface(critic, lim)
        cs = ax.contourf(gx, gy, scaled, levels=np.linspace(0, 1, 21), cmap="coolwarm", alpha=0.55)
        fig.colorbar(cs, ax=ax, shrink=0.75, ticks=[0, 0.5, 1], label="f, rescaled")
        title = f"{title}\nmax f - min f = {spread:.2g}" if title else f"max f - min f = {spread:.2g}"
    real = np.asarray(torch.as_tensor(real).detach().cpu())
    fake = np.asarray(torch.as_tensor(fake).detach().cpu())
    ax.scatter(real[:, 0], real[:, 1], s=3, c="0.3", alpha=0.5, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", alpha=0.6, label="generated")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, markerscale=3, fontsize=8, frameon=False)
    return fig

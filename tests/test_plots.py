"""Figures that the rendered book depends on: offline animations, legends that hide no data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gan_utils import plots  # noqa: E402


def test_animation_needs_no_network() -> None:
    snaps = [(k, torch.rand(16, 1, 28, 28) * 2 - 1) for k in range(3)]
    html = plots.animate_snapshots(snaps, nrow=4).data
    assert "http" not in html and "font-awesome" not in html and 'class="fa ' not in html
    assert html.count("<span>") == len(plots._ICONS)          # every control keeps a visible symbol
    assert "anim" in html and "data:image/jpeg;base64" in html


def test_curve_legends_sit_below_the_axes() -> None:
    n = 200
    history = {"loss_d": np.linspace(0, 1, n), "loss_g": np.linspace(1, 0, n),
               "d_real": np.full(n, 0.7), "d_fake": np.full(n, 0.3)}
    fig, axes = plt.subplots(1, 2)
    plots.plot_losses(history, ax=axes[0])
    plots.plot_scores(history, ax=axes[1], labels=("encoder pairs", "generator pairs"))
    fig.canvas.draw()
    for ax in axes:
        legend_box = ax.get_legend().get_window_extent()
        assert legend_box.y1 <= ax.get_window_extent().y0 + 1   # entirely under the plotting area
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["encoder pairs", "generator pairs"]
    plt.close(fig)


def test_critic_contours_are_rescaled_with_the_spread_in_the_title() -> None:
    class Tiny(torch.nn.Module):          # a critic that varies by 1e-7 over the plane, like a clipped one
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 1e-3 + 1e-7 * x[:, 0]

    pts = torch.zeros(4, 2)
    fig = plots.scatter_2d(pts, pts, critic=Tiny(), lim=1.0, title="clipped")
    ax, cbar_ax = fig.axes[0], fig.axes[1]
    assert ax.get_title() == "clipped\nmax f - min f = 2e-07"
    assert [t.get_text() for t in cbar_ax.get_yticklabels()] == ["0.0", "0.5", "1.0"]
    plt.close(fig)


def test_critic_surface_rescales_to_unit_range_and_reports_the_spread() -> None:
    linear = lambda x: 3.0 * x[:, 0] - x[:, 1] + 7.0   # noqa: E731  (spread over [-1, 1]^2: 2*3 + 2*1 = 8)
    gx, gy, f, scaled, spread = plots.critic_surface(linear, lim=1.0, n=11)
    assert gx.shape == gy.shape == f.shape == scaled.shape == (11, 11)
    assert spread == pytest.approx(8.0)
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    assert np.allclose(f, 3.0 * gx - gy + 7.0)                 # the grid is x along columns, y along rows
    _, _, _, flat, zero = plots.critic_surface(lambda x: torch.ones(len(x)), lim=1.0, n=5)
    assert zero == 0.0 and not flat.any()                      # a constant critic: no division by zero

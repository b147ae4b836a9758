"""gan_utils.theory against closed forms and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import wasserstein_distance

from gan_utils import theory

LOG2 = math.log(2)
X = np.linspace(-15, 15, 6001)  # fine grid covering every density used below


# --------------------------------------------------------------------------- discrete KL / JS

def test_kl_hand_computed_and_asymmetric() -> None:
    p, q = [0.5, 0.5], [0.25, 0.75]
    expected = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    assert theory.kl_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    reverse = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert theory.kl_divergence(q, p) == pytest.approx(reverse, rel=1e-12)
    assert abs(expected - reverse) > 1e-3  # not symmetric


def test_kl_zero_conventions() -> None:
    # p = 0 where q > 0 contributes nothing: KL([1, 0] || [1/2, 1/2]) = log 2
    assert theory.kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(LOG2)
    # p > 0 where q = 0: infinite
    assert theory.kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert theory.kl_divergence([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_kl_matches_scipy_rel_entr_and_cross_entropy_form() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
        kl = theory.kl_divergence(p, q)
        assert kl == pytest.approx(rel_entr(p, q).sum(), rel=1e-12)
        assert kl == pytest.approx(theory.cross_entropy(p, q) - theory.entropy(p), abs=1e-12)
        assert kl >= 0


def test_entropy_and_bits() -> None:
    assert theory.entropy([0.25] * 4, base=2) == pytest.approx(2.0)
    assert theory.entropy([1.0, 0.0]) == 0.0
    assert theory.kl_divergence([1.0, 0.0], [0.5, 0.5], base=2) == pytest.approx(1.0)
    assert theory.cross_entropy([0.5, 0.5], [1.0, 0.0]) == math.inf


def test_js_mutually_singular_is_log2_and_one_bit() -> None:
    p, q = [0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.6, 0.4]
    assert theory.js_divergence(p, q) == pytest.approx(LOG2, rel=1e-12)
    assert theory.js_divergence(p, q, base=2) == pytest.approx(1.0, rel=1e-12)


def test_js_symmetric_bounded_and_matches_scipy_squared() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        p, q = rng.dirichlet(np.full(5, 0.3)), rng.dirichlet(np.full(5, 0.3))
        js = theory.js_divergence(p, q)
        assert js == pytest.approx(theory.js_divergence(q, p), abs=1e-14)
        assert 0.0 <= js <= LOG2 + 1e-12
        assert js == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9, abs=1e-14)  # scipy: the square root
    assert theory.js_divergence([0.1, 0.9], [0.1, 0.9]) == 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        theory.kl_divergence([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        theory.js_divergence([1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        theory.kl_divergence([1.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="bits"):
        theory.entropy([1.0], base=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        theory.kl_divergence_grid([1, 1], [1, 1], [1.0, 0.0])


# --------------------------------------------------------------------------- densities

def test_gaussian_and_mixture_pdfs_integrate_to_one() -> None:
    assert theory.gaussian_pdf(0.0, 0.0, 2.0) == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)))
    mix = theory.mixture_pdf(X, [0.3, 0.7], [-2.0, 3.0], [0.5, 1.5])
    assert np.trapezoid(mix, X) == pytest.approx(1.0, abs=1e-9)
    mean = np.trapezoid(X * mix, X)
    assert mean == pytest.approx(0.3 * -2 + 0.7 * 3, abs=1e-9)
    with pytest.raises(ValueError):
        theory.gaussian_pdf(0.0, 0.0, 0.0)


@pytest.mark.parametrize("m1,s1,m2,s2", [(0, 1, 0, 1), (0, 1, 2, 1), (1, 0.5, -1, 2), (0, 2, 0, 0.7)])
def test_kl_grid_matches_gaussian_closed_form(m1: float, s1: float, m2: float, s2: float) -> None:
    p, q = theory.gaussian_pdf(X, m1, s1), theory.gaussian_pdf(X, m2, s2)
    closed = theory.kl_gaussians(m1, s1, m2, s2)
    assert theory.kl_divergence_grid(p, q, X) == pytest.approx(closed, abs=1e-6)
    if (m1, s1) == (m2, s2):
        assert closed == 0.0


def test_kl_gaussians_hand_computed() -> None:
    # equal variances: (m1 - m2)^2 / (2 s^2)
    assert theory.kl_gaussians(3.0, 2.0, 1.0, 2.0) == pytest.approx(4 / 8)
    # equal means: log(s2/s1) + s1^2/(2 s2^2) - 1/2
    assert theory.kl_gaussians(0, 1, 0, 2) == pytest.approx(math.log(2) + 1 / 8 - 0.5)


def test_js_grid_limits() -> None:
    p = theory.gaussian_pdf(X, -8, 0.5)
    q = theory.gaussian_pdf(X, 8, 0.5)
    assert theory.js_divergence_grid(p, q, X) == pytest.approx(LOG2, abs=1e-6)  # no overlap
    assert theory.js_divergence_grid(p, p, X) == pytest.approx(0.0, abs=1e-12)
    # KL to a density that vanishes where p does not: infinite
    box = np.where(np.abs(X) < 1, 0.5, 0.0)
    assert theory.kl_divergence_grid(p, box, X) == math.inf


# --------------------------------------------------------------------------- the game

def test_optimal_discriminator_pointwise() -> None:
    d = theory.optimal_discriminator([1.0, 0.0, 3.0, 0.0], [1.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(d, [0.5, 0.0, 0.75, 0.5])


def test_virtual_training_criterion_is_2js_minus_log4() -> None:
    p = theory.mixture_pdf(X, [0.5, 0.5], [-2, 2], [0.7, 0.7])
    for mean, std in [(0.0, 1.0), (1.0, 2.0), (6.0, 0.5)]:
        q = theory.gaussian_pdf(X, mean, std)
        c = theory.virtual_training_criterion(p, q, X)
        assert c == pytest.approx(2 * theory.js_divergence_grid(p, q, X) - math.log(4), abs=1e-9)
        # C(G) is a maximum over D: perturbing D* in either direction, by a function that is not
        # constant, lowers V (fails if D* were not the maximiser, e.g. p / (p + 2q))
        d_star = theory.optimal_discriminator(p, q)
        bump = 0.2 * np.sin(X) * d_star * (1 - d_star)
        for sign in (1, -1):
            assert theory.value_of_game(d_star + sign * bump, p, q, X) < c - 1e-6
        wrong = p / np.maximum(p + 2 * q, 1e-300)
        assert theory.value_of_game(wrong, p, q, X) < c - 1e-3
    # where the densities overlap well, plugging D* into V gives the same number
    q = theory.gaussian_pdf(X, 0.5, 2.0)
    d_star = theory.optimal_discriminator(p, q)
    assert theory.value_of_game(d_star, p, q, X) == pytest.approx(theory.virtual_training_criterion(p, q, X), abs=1e-9)
    assert theory.value_of_game(np.clip(d_star + 0.05, 0, 1), p, q, X) < theory.virtual_training_criterion(p, q, X)
    # at p_g = p_data: D* = 1/2 and C = -log 4
    assert theory.virtual_training_criterion(p, p, X) == pytest.approx(-math.log(4), abs=1e-6)
    np.testing.assert_allclose(theory.optimal_discriminator(p, p), 0.5)


def test_value_of_game_matches_quadrature() -> None:
    """V(D, G) on the grid against scipy.integrate.quad of its defining integrand, for a D that is not optimal."""
    from scipy import integrate, stats

    p = theory.mixture_pdf(X, [0.5, 0.5], [-2, 2], [0.7, 0.7])
    q = theory.gaussian_pdf(X, 1.0, 1.5)
    d = 1 / (1 + np.exp(-0.8 * X + 0.3))
    pdf_p = lambda t: 0.5 * stats.norm.pdf(t, -2, 0.7) + 0.5 * stats.norm.pdf(t, 2, 0.7)
    integrand = lambda t: (pdf_p(t) * -np.logaddexp(0, -(0.8 * t - 0.3))
                           + stats.norm.pdf(t, 1.0, 1.5) * -np.logaddexp(0, 0.8 * t - 0.3))
    expected = integrate.quad(integrand, -15, 15, points=[-2, 1, 2], limit=200)[0]
    assert theory.value_of_game(d, p, q, X) == pytest.approx(expected, abs=1e-6)
    # and D = 1/2 gives -log 4 whatever p and q are: an identity, checked only as a sanity bound
    assert theory.value_of_game(np.full_like(X, 0.5), p, q, X) == pytest.approx(-math.log(4), abs=1e-6)
    assert expected < theory.virtual_training_criterion(p, q, X)


def test_value_of_game_certain_discriminator() -> None:
    p, q = np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0])
    x = np.array([0.0, 1.0, 2.0])
    assert theory.value_of_game(np.array([1.0, 0.0, 0.0]), p, q, x) == -math.inf  # log 0 where p > 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        theory.value_of_game(np.array([1.5, 0.0, 0.0]), p, q, x)


# --------------------------------------------------------------------------- transport

def test_point_masses() -> None:
    """W1 between two Dirac masses is the distance between them, in every formulation."""
    x, y = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    cost = theory.cost_matrix(x, y)
    value, plan = theory.ot_primal_lp([1.0], [1.0], cost)
    assert value == pytest.approx(5.0) and plan[0, 0] == pytest.approx(1.0)
    dual, fx, fy = theory.w1_dual_lp(x, [1.0], y, [1.0])
    assert dual == pytest.approx(5.0) and fx[0] - fy[0] == pytest.approx(5.0)
    assert theory.w1_1d_cdf([1.0], [1.0], [-2.5], [1.0]) == pytest.approx(3.5)


def test_primal_equals_dual_and_plan_is_a_coupling() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        xs, ys = rng.normal(size=(5, 2)), rng.normal(size=(6, 2)) + 1.0
        a, b = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(6))
        primal, plan = theory.ot_primal_lp(a, b, theory.cost_matrix(xs, ys))
        dual, fx, fy = theory.w1_dual_lp(xs, a, ys, b)
        assert primal == pytest.approx(dual, abs=1e-8)
        np.testing.assert_allclose(plan.sum(1), a, atol=1e-9)
        np.testing.assert_allclose(plan.sum(0), b, atol=1e-9)
        assert plan.min() >= -1e-12
        # the dual potential is 1-Lipschitz on the union of the supports
        z, f = np.vstack([xs, ys]), np.concatenate([fx, fy])
        assert np.all(np.abs(f[:, None] - f[None, :]) <= theory.cost_matrix(z, z) + 1e-8)


def test_one_potential_dual_needs_the_triangle_inequality() -> None:
    """Metric cost: the one-potential LP equals transport. Squared cost: it is the transshipment value, lower."""
    xs, a, ys, b = [0.0, 1.0], [0.5, 0.5], [2.0], [1.0]
    assert theory.w1_dual_lp(xs, a, ys, b)[0] == pytest.approx(1.5)
    assert theory.ot_primal_lp(a, b, theory.cost_matrix(xs, ys))[0] == pytest.approx(1.5)
    # squared cost: transport pays 0.5 * 4 + 0.5 * 1, routing 0 -> 1 -> 2 pays 0.5 * 1 + 1 * 1
    assert theory.ot_primal_lp(a, b, theory.cost_matrix(xs, ys) ** 2)[0] == pytest.approx(2.5)
    assert theory.w1_dual_lp(xs, a, ys, b, power=2)[0] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="power"):
        theory.w1_dual_lp(xs, a, ys, b, power=0)


def test_primal_hand_computed_1d() -> None:
    # mass 1/2 at 0 and 1/2 at 1 moved onto 1/2 at 1 and 1/2 at 2: each half moves by 1
    value, plan = theory.ot_primal_lp([0.5, 0.5], [0.5, 0.5], theory.cost_matrix([0.0, 1.0], [1.0, 2.0]))
    assert value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        theory.ot_primal_lp([0.5, 0.5], [1.0], np.zeros((2, 2)))


def test_w1_1d_cdf_matches_scipy_and_lp() -> None:
    rng = np.random.default_rng(4)
    for _ in range(10):
        x, y = rng.normal(size=7), rng.normal(size=4) * 2
        a, b = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(4))
        w = theory.w1_1d_cdf(x, a, y, b)
        assert w == pytest.approx(wasserstein_distance(x, y, a, b), rel=1e-10)
        assert w == pytest.approx(theory.ot_primal_lp(a, b, theory.cost_matrix(x, y))[0], abs=1e-8)


def test_w1_grid_gaussian_closed_forms() -> None:
    # a shift moves every quantile by the same amount: W1 = |shift|
    p, q = theory.gaussian_pdf(X, 0, 1), theory.gaussian_pdf(X, 2.5, 1)
    assert theory.w1_grid(p, q, X) == pytest.approx(2.5, abs=1e-5)
    # a scale change: W1 = |s1 - s2| E|Z| = |s1 - s2| sqrt(2/pi)
    r = theory.gaussian_pdf(X, 0, 3)
    assert theory.w1_grid(p, r, X) == pytest.approx(2 * math.sqrt(2 / math.pi), abs=1e-5)


def test_mixture_and_transport_input_validation() -> None:
    with pytest.raises(ValueError, match="equal length"):
        theory.mixture_pdf(X, [0.5, 0.5], [0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        theory.mixture_pdf(X, [0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one weight"):
        theory.w1_dual_lp([0.0, 1.0], [1.0], [2.0], [1.0])
    with pytest.raises(ValueError, match="dimensions"):
        theory.cost_matrix(np.zeros((2, 2)), np.zeros((2, 3)))

"""One function per GAN of the book: the only place a ``GANSetup`` is written.

Chapters, the comparison chapter, the benchmark and the tests all call these, so
a setting changes in one place. Each docstring names the source the recipe
follows and every deviation from it. Keyword arguments override widths, latent
size, channels (``channels=3`` for Stacked MNIST) and learning rates; anything
else can be changed on the returned setup (it is a plain dataclass).

``packing=m`` (PacGAN, Lin et al. 2018) makes the discriminator judge ``m``
samples at once: its input has ``m`` times the channels (or features).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from . import losses, models, views
from .config import check_positive
from .train import CriticSchedule, GANSetup, OptimizerSpec

MNIST_SIDE = 28


def _view(packing: int) -> views.View:
    check_positive("packing", packing)
    return views.PackedView(packing) if packing > 1 else views.PlainView()


def _dcgan_init(*nets: nn.Module) -> None:
    for net in nets:
        net.apply(models.init_dcgan_weights)


def vanilla_mlp(*, latent_dim: int = 128, hidden: Sequence[int] = (256, 512, 1024), channels: int = 1,
                dropout: float = 0.3, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                packing: int = 1, reuse_fake: bool = False) -> GANSetup:
    """A fully connected GAN with the non-saturating loss (Goodfellow et al. 2014, section 3).

    Source: the paper's MNIST model (``goodfeli/adversarial``, ``mnist.yaml``): G is
    100 -> 1200 -> 1200 ReLU -> 784 sigmoid, D a maxout MLP (240 units x 5 pieces, two
    layers) with dropout, SGD with momentum 0.5 -> 0.7, learning rate 0.1 with
    exponential decay, batch 100. Deviations, all the modern defaults of MLP GANs:
    G is z (128-d Gaussian) -> 256 -> 512 -> 1024 LeakyReLU(0.2) -> 784 tanh (images in
    [-1, 1]); D is 784 -> 1024 -> 512 -> 256 LeakyReLU(0.2) with Dropout(0.3), no maxout;
    Adam (lr 2e-4, betas (0.5, 0.999)) for both, the DCGAN paper's optimiser, which needs
    no learning-rate or momentum schedule. Fresh noise for the generator step
    (``reuse_fake=False``), as in the paper's Algorithm 1.
    """
    out = (channels, MNIST_SIDE, MNIST_SIDE)
    pixels = channels * MNIST_SIDE * MNIST_SIDE
    return GANSetup(
        models.MLPGenerator(latent_dim, hidden=tuple(hidden), out_shape=out),
        models.MLPDiscriminator(packing * pixels, hidden=tuple(reversed(hidden)), dropout=dropout),
        latent_dim, loss="non_saturating", view=_view(packing),
        opt_g=OptimizerSpec("adam", lr, betas), opt_d=OptimizerSpec("adam", lr, betas),
        reuse_fake=reuse_fake)


def dcgan(*, latent_dim: int = 100, width: int = 64, channels: int = 1, lr: float = 2e-4,
          betas: tuple[float, float] = (0.5, 0.999), packing: int = 1, reuse_fake: bool = True) -> GANSetup:
    """DCGAN (Radford et al. 2016) for 28x28 images, as in its PyTorch reference code.

    Source: the paper's guidelines (strided and transposed convolutions, no pooling and
    no fully connected hidden layers, BatchNorm in G and D except G's output and D's
    input, ReLU in G with a tanh output, LeakyReLU(0.2) in D, weights ~ N(0, 0.02),
    Adam lr 2e-4 with beta1 0.5, z ~ N(0, I) of 100 dimensions) and
    ``pytorch/examples/dcgan``, whose generator step reuses the critic step's ``G(z)``
    (``reuse_fake=True`` here too). Deviations: 28x28 instead of 64x64, so G has three
    transposed convolutions (7x7, then two stride-2 4x4: 4w -> 2w -> channels feature maps)
    and D mirrors it with two stride-2 convolutions (2w -> 4w feature maps) and a 7x7 output
    convolution; the chapter chooses the batch size (the paper uses 128).
    """
    G = models.DCGANGenerator(latent_dim, width=width, channels=channels)
    D = models.DCGANDiscriminator(width=2 * width, norm="batch", channels=packing * channels)
    _dcgan_init(G, D)
    return GANSetup(G, D, latent_dim, loss="non_saturating", view=_view(packing),
                    opt_g=OptimizerSpec("adam", lr, betas), opt_d=OptimizerSpec("adam", lr, betas),
                    reuse_fake=reuse_fake)


WGAN_SCHEDULE = CriticSchedule(5, burst=100, burst_first=25, burst_every=500)


def wgan(*, latent_dim: int = 100, width: int = 64, channels: int = 1, lr: float = 5e-5,
         clip_value: float = 0.01, schedule: CriticSchedule = WGAN_SCHEDULE) -> GANSetup:
    """WGAN with weight clipping (Arjovsky et al. 2017, Algorithm 1).

    Source: the paper and ``martinarjovsky/WassersteinGAN`` (``main.py``): RMSProp with
    lr 5e-5 for both networks, clipping to [-0.01, 0.01] after every critic step,
    5 critic steps per generator step, and 100 critic steps for the first 25 generator
    steps and at every 500th (``WGAN_SCHEDULE``); DCGAN initialisation, a critic with
    BatchNorm and no sigmoid; batch 64; fresh noise for the generator step. The critic is
    the MNIST critic of ``igul222/improved_wgan_training`` in its WGAN mode
    (:class:`~gan_utils.models.ConvCritic` with BatchNorm, 5x5 stride-2 convolutions with
    w-2w-4w channels); the generator is the 28x28 DCGAN generator of :func:`dcgan`.
    Deviation: the official WGAN code trains 64x64 images with DCGAN networks.
    """
    G = models.DCGANGenerator(latent_dim, width=width, channels=channels)
    D = models.ConvCritic(width=width, norm="batch", channels=channels)
    _dcgan_init(G, D)
    return GANSetup(G, D, latent_dim, loss="wasserstein", schedule=schedule, clip_value=clip_value,
                    opt_g=OptimizerSpec("rmsprop", lr), opt_d=OptimizerSpec("rmsprop", lr))


def wgan_gp(*, latent_dim: int = 100, width: int = 64, channels: int = 1, lr: float = 1e-4,
            betas: tuple[float, float] = (0.5, 0.9), gp_weight: float = 10.0, n_critic: int = 5) -> GANSetup:
    """WGAN-GP (Gulrajani et al. 2017, Algorithm 1): the Wasserstein critic with a gradient penalty.

    Source: ``igul222/improved_wgan_training`` (``gan_mnist.py``, mode ``wgan-gp``): the critic
    :class:`~gan_utils.models.ConvCritic` (5x5 stride-2 convolutions with w-2w-4w = 64-128-256
    channels, LeakyReLU, no normalisation, a linear output), lambda 10, 5 critic steps, Adam
    lr 1e-4 with betas (0.5, 0.9) as in that script (Algorithm 1 of the paper lists (0, 0.9)),
    fresh noise for the generator step. Deviations: the 28x28 DCGAN generator of :func:`dcgan`
    (with BatchNorm and a tanh output; the script's generator has a linear first layer, no
    normalisation and a sigmoid output), PyTorch's default initialisation of the critic (the
    script uses He initialisation) and the chapter's batch size (the script uses 50).
    """
    G = models.DCGANGenerator(latent_dim, width=width, channels=channels)
    G.apply(models.init_dcgan_weights)
    D = models.ConvCritic(width=width, norm="none", channels=channels)
    return GANSetup(G, D, latent_dim, loss="wasserstein", schedule=CriticSchedule(n_critic),
                    penalty=losses.WGANGP(gp_weight),
                    opt_g=OptimizerSpec("adam", lr, betas), opt_d=OptimizerSpec("adam", lr, betas))


def bigan(*, latent_dim: int = 50, hidden: Sequence[int] = (1024, 1024), channels: int = 1,
          dropout: float = 0.2, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> GANSetup:
    """BiGAN (Donahue et al. 2017): G, an encoder E and a joint discriminator D(x, z).

    Source: the paper's permutation-invariant MNIST setting (``jeffdonahue/bigan``,
    ``mnist_mlp``): z ~ U(-1, 1)^50, MLPs of 1024 units, Adam lr 2e-4 with beta1 0.5,
    batch 128, G and E trained together with the labels flipped. Deviations: LeakyReLU(0.2)
    everywhere and BatchNorm in G's and E's hidden layers (not the reference code's
    placement), Dropout(0.2) in D, x and z concatenated at D's input (the reference code
    projects z into D's second hidden layer), no weight decay (reference: 2.5e-5) and no
    learning-rate decay; the encoder's code is squashed by tanh into the prior's support.
    """
    pixels = channels * MNIST_SIDE * MNIST_SIDE
    hidden = tuple(hidden)
    G = models.MLPGenerator(latent_dim, hidden=hidden, out_shape=(channels, MNIST_SIDE, MNIST_SIDE),
                            batchnorm=True)
    E = models.BiGANEncoder(latent_dim, hidden=hidden, in_features=pixels)
    D = models.JointDiscriminator(latent_dim, hidden=hidden, in_features=pixels, dropout=dropout)
    return GANSetup(G, D, latent_dim, loss="bigan", view=views.JointView(E), noise="uniform",
                    opt_g=OptimizerSpec("adam", lr, betas), opt_d=OptimizerSpec("adam", lr, betas))


TOY_KINDS: tuple[str, ...] = ("vanilla", "wgan", "wgan_gp", "hinge", "dragan", "r1")


def toy_mlp(kind: str = "vanilla", *, latent_dim: int = 2, hidden: int = 128, depth: int = 3,
            dim: int = 2, packing: int = 1, lr: float | None = None, lr_d: float | None = None,
            penalty_weight: float = 10.0, decay_from: float | None = None) -> GANSetup:
    """The same ReLU MLP pair for every objective, for 2D mixtures (ring, grid, swiss roll).

    ``kind`` picks the objective and its usual optimiser, everything else is shared, so
    runs of different kinds differ only in the algorithm:

    * ``vanilla``: non-saturating loss, Adam (1e-3, betas (0.5, 0.999));
    * ``wgan``: Wasserstein critic, clipping to 0.01, 5 critic steps, RMSProp (5e-5);
    * ``wgan_gp``: Wasserstein critic, WGAN-GP penalty, 5 critic steps, Adam (1e-4, (0.5, 0.9))
      as in ``gan_toy.py`` of ``igul222/improved_wgan_training`` (which also uses 512 units and
      lambda 0.1; here ``hidden`` and ``penalty_weight`` keep the defaults above unless given);
    * ``hinge``: hinge loss, Adam (1e-3, (0.5, 0.999));
    * ``dragan``: non-saturating loss with the DRAGAN penalty around real data;
    * ``r1``: non-saturating loss with the R1 penalty (gamma = ``penalty_weight``).

    ``lr`` overrides both learning rates, ``lr_d`` the discriminator's alone; ``decay_from``
    (a fraction of the run, see :class:`~gan_utils.train.OptimizerSpec`) lowers both linearly
    to 0 over the rest of the run.
    """
    if kind not in TOY_KINDS:
        raise ValueError(f"unknown toy kind {kind!r}; valid choices are: {', '.join(map(repr, TOY_KINDS))}")
    G = models.ToyMLP(latent_dim, dim, hidden=hidden, depth=depth)
    D = models.ToyMLP(packing * dim, 1, hidden=hidden, depth=depth)
    opt = {"vanilla": ("adam", 1e-3, (0.5, 0.999)), "hinge": ("adam", 1e-3, (0.5, 0.999)),
           "dragan": ("adam", 1e-3, (0.5, 0.999)), "r1": ("adam", 1e-3, (0.5, 0.999)),
           "wgan": ("rmsprop", 5e-5, (0.5, 0.999)), "wgan_gp": ("adam", 1e-4, (0.5, 0.9))}[kind]
    g_lr = lr if lr is not None else opt[1]
    d_lr = lr_d if lr_d is not None else g_lr
    loss = {"wgan": "wasserstein", "wgan_gp": "wasserstein", "hinge": "hinge"}.get(kind, "non_saturating")
    penalty = {"wgan_gp": losses.WGANGP(penalty_weight), "dragan": losses.DRAGAN(penalty_weight),
               "r1": losses.R1(penalty_weight)}.get(kind)
    return GANSetup(G, D, latent_dim, loss=loss, view=_view(packing), penalty=penalty,
                    schedule=CriticSchedule(5 if kind in ("wgan", "wgan_gp") else 1),
                    clip_value=0.01 if kind == "wgan" else None,
                    opt_g=OptimizerSpec(opt[0], g_lr, opt[2], decay_from),
                    opt_d=OptimizerSpec(opt[0], d_lr, opt[2], decay_from))


RECIPES = {"vanilla": vanilla_mlp, "dcgan": dcgan, "wgan": wgan, "wgan_gp": wgan_gp, "bigan": bigan}
"""The five MNIST recipes by short name (the benchmark and the comparison chapter iterate over it)."""

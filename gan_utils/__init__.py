"""Shared code for the GAN book: every chapter imports from here.

A module per concern: ``config`` (profiles, validation), ``repro`` (seeds,
devices, run manifests), ``data``, ``models``, ``losses``, ``train`` (the one
training loop), ``plots``, ``metrics`` and ``theory`` (divergences and optimal
transport used by the theory chapters).
"""

__version__ = "0.1.0"

"""The collapse worlds and their registry; each world module loads only when asked for."""

from __future__ import annotations

import importlib

from collapseguard.errors import check_choice

# name -> (module, class); "lm" lives in collapseguard.simulate.lm and runs its own loop.
WORLDS = {
    "gaussian": ("collapseguard.simulate.worlds.gaussian", "GaussianWorld"),
    "mvgaussian": ("collapseguard.simulate.worlds.mvgaussian", "MVGaussianWorld"),
    "discrete": ("collapseguard.simulate.worlds.discrete", "DiscreteWorld"),
    "gmm": ("collapseguard.simulate.worlds.gmm", "GMMWorld"),
    "vae": ("collapseguard.simulate.worlds.vae", "VAEWorld"),
}


def world_class(name: str):
    """The World subclass registered under `name`."""
    module, cls = WORLDS[check_choice("world", name, WORLDS)]
    return getattr(importlib.import_module(module), cls)

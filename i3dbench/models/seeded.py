"""Deterministic, platform-independent weights from a seed and each tensor's name.

``seeded_tensor(name, shape, seed)`` depends only on its arguments: the values come from
NumPy's legacy ``RandomState`` (a stream NumPy guarantees never to change) seeded with a
hash of ``seed`` and the key name. Two different programs that agree on a key name and
shape — MMAction2's model in ``dev/make_golden_models.py`` and ours in the tests — thus
get bit-identical tensors without sharing any file. The parity goldens rely on this.

The scales keep a deep I3D's activations O(1) in eval mode with random BN statistics:
fan-in-normalised conv / linear weights, BN scale < 1 and running variance >= 0.5.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

RECIPE = "i3dbench-seeded-v1"


def _rng(name: str, seed: int) -> np.random.RandomState:
    digest = hashlib.sha256(f"{RECIPE}/{seed}/{name}".encode()).digest()
    return np.random.RandomState(int.from_bytes(digest[:4], "little"))


def seeded_tensor(name: str, shape: Iterable[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The recipe's value for the state-dict entry ``name`` of ``shape``."""
    shape = tuple(int(s) for s in shape)
    rng = _rng(name, seed)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.tensor(int(rng.randint(1, 100_000)), dtype=torch.long).reshape(shape)
    if leaf == "running_mean":
        values = rng.standard_normal(shape) * 0.1
    elif leaf == "running_var":
        values = rng.uniform(0.5, 1.5, shape)
    elif leaf == "weight" and len(shape) >= 2:  # conv / linear: fan-in normalised
        fan_in = math.prod(shape[1:])
        values = rng.standard_normal(shape) / math.sqrt(fan_in)
    elif leaf == "weight":  # BN scale
        values = rng.uniform(0.3, 0.8, shape)
    elif leaf == "bias":
        values = rng.standard_normal(shape) * 0.1
    else:
        raise ValueError(f"seeded_tensor: no rule for state-dict key {name!r}")
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(dtype)


def seeded_state_dict(shapes: Iterable[tuple[str, Iterable[int]]], seed: int) -> OrderedDict[str, torch.Tensor]:
    """A state dict with the recipe's tensor for every ``(name, shape)`` pair."""
    return OrderedDict((name, seeded_tensor(name, shape, seed)) for name, shape in shapes)


@torch.no_grad()
def fill_seeded_(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every parameter and buffer of ``model`` (in place) with the recipe's values."""
    for name, t in model.state_dict(keep_vars=True).items():
        t.copy_(seeded_tensor(name, t.shape, seed, dtype=t.dtype))
    return model

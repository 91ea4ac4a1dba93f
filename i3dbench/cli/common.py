"""Helpers shared by the command handlers: entry lookup and argument types with clear errors.

Every numeric option of every command takes one of these as its argparse ``type``, so that a
value out of range (``--frames 0``, ``--workers -1``, ``--lr nan``) is refused by the parser on
one line naming the flag and the value (exit 2), never clamped or passed on."""

from __future__ import annotations

import argparse


def resolve_entry(name: str, zoo):
    from ..zoo import get_entry

    return get_entry(name, zoo) if zoo else get_entry(name)


class _IntType:
    """An argparse ``type`` for integers in [``minimum``, ``maximum``] whose error names the value."""

    def __init__(self, minimum: int, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum
        self.__name__ = "integer" if minimum <= 0 else "positive integer"

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < self.minimum:
            raise argparse.ArgumentTypeError(f"must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise argparse.ArgumentTypeError(f"must be <= {self.maximum}, got {value}")
        return value

    @property
    def allow_zero(self) -> _IntType:
        return _IntType(0, self.maximum)


positive_int = _IntType(1)
nonneg_int = _IntType(0)
seed_int = _IntType(0, 2**32 - 1)  # numpy's and torch's seeds alike


def positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


nonneg_float = non_negative_float


def copy_inputs(command: str, entry, data) -> tuple:
    """(root, list, reference_ids or None) of ``entry``'s layout in the user's Kinetics-400 copy
    (``--data``, ``I3DBENCH_K400``, or ``I3DBENCH_K400_ROOT``/``_ANN``), or a UsageError naming
    ``command`` and what to give."""
    from ..data.k400copy import find_copy
    from ..errors import UsageError

    copy = find_copy(data)
    if copy is None:
        raise UsageError(f"{command} {entry.name}: --data-root and --ann are needed for a {entry.dataset} entry, or a "
                         "description of your copy: --data FILE or I3DBENCH_K400=FILE (README: Your Kinetics-400 copy)")
    found = copy.for_entry(entry)
    if found is None:
        raise UsageError(f"{command} {entry.name}: {copy.why_not(entry)}")
    return (*found, copy.reference)

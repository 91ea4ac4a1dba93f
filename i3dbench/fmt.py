"""Number formatting shared by the report's renderers (markdown, HTML): one way to print a value."""

from __future__ import annotations

from typing import Optional

MISSING = "—"


def fmt_num(value, digits: int = 2) -> str:
    """``12.3456 -> "12.35"``; None -> "—"."""
    if value is None:
        return MISSING
    return f"{value:.{digits}f}"


def fmt_speed(value) -> str:
    """video/s over four orders of magnitude (0.0213 on a CPU, 412.5 on a GPU): 3 significant digits."""
    if value is None:
        return MISSING
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def fmt_interval(value, interval, digits: int = 2) -> str:
    """``89.06 [78.75, 95.49]``: a value and its (asymmetric) interval; the value alone without one."""
    if value is None:
        return MISSING
    if not interval or interval[0] is None or interval[1] is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def fmt_delta(value, digits: int = 2) -> str:
    """Signed difference: ``+0.42`` / ``-0.68``."""
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}"


def fmt_ratio(value) -> str:
    return MISSING if value is None else f"×{value:.2f}"


def fmt_mem(value) -> str:
    """MiB: one decimal below 100 (a smoke model's 13.1), whole numbers above."""
    if value is None:
        return MISSING
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_verdict(ok: Optional[bool]) -> str:
    return MISSING if ok is None else ("✓" if ok else "✗")


def short_hash(text, n: int = 12) -> str:
    return MISSING if not text else str(text)[:n]



__all__ = ["MISSING", "fmt_delta", "fmt_interval", "fmt_mem", "fmt_num", "fmt_ratio", "fmt_speed", "fmt_verdict",
           "short_hash"]

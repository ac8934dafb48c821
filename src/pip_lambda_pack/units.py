"""Human-readable figures for reports: sizes in decimal units, times in milliseconds."""

from __future__ import annotations


def human_size(size: float) -> str:
    """``532 B``, ``12.3 kB``, ``4.6 MB``, ``1.2 GB`` (decimal, like PyPI and Lambda)."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"

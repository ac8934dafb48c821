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


def limit_size(size: int) -> str:
    """A limit in one unit everywhere: ``250 MiB (262,144,000 bytes)``, as Lambda states it
    (a limit that is no whole number of MiB: ``5.0 kB (5,000 bytes)``)."""
    mib = 1024 * 1024
    whole = f"{size // mib} MiB" if size >= mib and size % mib == 0 else human_size(size)
    return f"{whole} ({size:,} bytes)"


def plural(count: int, noun: str, plural_noun: str = "") -> str:
    """``1 layer``, ``2 layers``; ``plural_noun`` for irregular nouns."""
    return f"{count} {noun if count == 1 else plural_noun or noun + 's'}"

"""Times and durations the way a person reads them in a report."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def human_duration(seconds: float) -> str:
    """``3725`` -> ``"1 h 2 min"``: the two largest units, rounded down; always positive."""
    remaining = int(abs(seconds))
    if remaining == 0:
        return f"{abs(seconds):.1f} s" if seconds else "0 s"
    parts: list[str] = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count or parts:
            parts.append(f"{count} {unit}")
        if len(parts) == 2:
            break
    return " ".join(part for part in parts if not part.startswith("0 ")) or "0 s"


def utc_text(timestamp: float) -> str:
    """A Unix timestamp as ``2023-11-14 22:13:20 UTC`` (or a note when out of range)."""
    try:
        moment = datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:.0f} (beyond the calendar)"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

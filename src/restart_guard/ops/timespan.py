"""Durations as operators write them (``2h``, ``90s``, ``1h30m``) and as systemd does.

``parse_duration`` reads the CLI's ``--older-than``/``--drain-timeout`` and
systemd's time spans (``TimeoutStopSec=1min 30s``, ``TimeoutStopUSec=1min
30s`` in ``systemctl show``); ``duration_argument`` and ``seconds_argument``
are its argparse types. ``format_age`` writes ages for a table.
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = [
    "duration_argument",
    "format_age",
    "format_seconds",
    "parse_duration",
    "seconds_argument",
]

# systemd.time(7): every unit systemd accepts, in seconds.
_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
    "M": 2629800.0,
    "month": 2629800.0,
    "months": 2629800.0,
    "y": 31557600.0,
    "year": 31557600.0,
    "years": 31557600.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)")


def parse_duration(text: str, default_unit: float = 1.0) -> float:
    """Seconds in ``text`` (``"90"``, ``"2h"``, ``"1min 30s"``, ``"infinity"`` → ``inf``).

    A bare number is in ``default_unit`` seconds (1: seconds, as in systemd
    unit files; 1e-6 for systemd's ``*USec`` properties, whose bare numbers
    are microseconds). ValueError if ``text`` is not a duration.
    """
    text = text.strip()
    if text == "infinity":
        return math.inf
    if not text:
        raise ValueError("empty duration")
    total = 0.0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"not a duration: {text!r} (try 90s, 15m, 2h, 1d)")
        number, unit = match.groups()
        if unit and unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in {text!r} (try s, m, h, d)")
        total += float(number) * (_UNITS[unit] if unit else default_unit)
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return total


def duration_argument(text: str) -> float:
    """:func:`parse_duration` as an argparse ``type``: a bad duration is a usage error."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds_argument(text: str) -> float:
    """:func:`duration_argument` that is also positive and finite (a timeout, a margin)."""
    value = duration_argument(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def format_seconds(seconds: float) -> str:
    """``25`` → ``"25s"``, ``90`` → ``"90s"``, ``2.5`` → ``"2.5s"``: a systemd-valid span."""
    if math.isinf(seconds):
        return "infinity"
    return f"{seconds:g}s"


def format_age(seconds: float) -> str:
    """A short age for a table: ``45s``, ``3m12s``, ``2h05m``, ``3d04h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"

"""Tunables read from the environment: one parser, one warning for a bad value."""

from __future__ import annotations

import logging
import math
import os

__all__ = ["seconds_from_env"]

log = logging.getLogger("restart_guard")


def seconds_from_env(name: str, default: float, minimum: float, instead: str) -> float:
    """``$name`` in seconds, at least ``minimum``; ``default`` when it is unset or bad.

    A bad value (not a number, not finite, below ``minimum``) is logged once per
    call as a warning that ends with ``instead`` (what happens now, e.g. "the
    Redis lease is 30s"): a typo in a unit file must not take the bot down.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value >= minimum:
        return value
    log.warning(
        "restart-guard: ignoring $%s=%r (want seconds >= %g); %s", name, raw, minimum, instead
    )
    return default

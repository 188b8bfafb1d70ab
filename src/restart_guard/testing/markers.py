"""Read a marker directory from a test, and wait for the write-ahead to land.

A guarded bot makes a conversation's marker durable in the background, a
few milliseconds after its handler starts. A test that SIGKILLs the bot to
prove the conversation survives should kill it only once that happened::

    telegram_api.inject_message(42, "/think")
    telegram_api.wait_for_sent(lambda m: m.text.startswith("Thinking"))
    wait_for_markers(marker_dir, lambda m: m.conversation.chat == "42")
    bot.kill()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .._marker import Marker
from ..stores.directory import DirectoryStore
from .wait import eventually

__all__ = ["markers_in", "wait_for_markers"]


def markers_in(path: str | os.PathLike[str]) -> list[Marker]:
    """Every marker in a marker directory, without claiming anything.

    ``path`` is one bot's ``marker_dir``, or a base directory in the default
    layout (``$RESTART_GUARD_DIR``: one ``<platform>-<hash>`` folder per bot).
    """
    base = Path(path)
    folders = [base]
    if base.is_dir():
        folders += [p for p in sorted(base.iterdir()) if p.is_dir()]
    return [s.marker for folder in folders for s in DirectoryStore(folder).load()]


def wait_for_markers(
    path: str | os.PathLike[str],
    predicate: Callable[[Marker], bool] | None = None,
    timeout: float = 15.0,
    count: int = 1,
) -> list[Marker]:
    """Block until ``count`` markers in ``path`` match ``predicate``; return them.

    Raises ``TimeoutError`` saying what was there instead.
    """
    found: list[Marker] = []

    def matching() -> list[Marker]:
        found[:] = markers_in(path)
        hits = [m for m in found if predicate is None or predicate(m)]
        return hits if len(hits) >= count else []

    return eventually(
        matching,
        timeout,
        what=lambda: (
            f"{count} matching marker(s) in {path}; found: {[str(m.conversation) for m in found]}"
        ),
        interval=0.005,
    )

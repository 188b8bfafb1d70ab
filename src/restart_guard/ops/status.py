"""``restart-guard status`` (alias ``list``): the pending markers, as a table or JSON.

One row per marker: which bot, where the conversation is (platform, chat,
thread, scope), how old the interrupted turn is, the phase it was marked
in, resume attempts, the owning process and whether that process still
runs (*held*). A marker that is not held belongs to a process that is gone:
the bot's next start posts its notice. Message text (the stored update of
``replay=True``) is never printed unless ``--show-payload`` asks for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._marker import Phase
from ..stores.base import StoredMarker
from .sources import OpsError, Source, Target, add_store_command, resolve_target
from .timespan import format_age

__all__ = ["Found", "collect", "marker_json", "register", "render_table", "run"]

#: What ``restart-guard --help`` says ``status`` does.
SUMMARY = "show the pending markers: which conversations would be resumed"

#: How each phase reads in a table: marked when the handler started, again
#: just before the drain, or claimed by a starting process.
PHASE_LABELS = {
    Phase.IN_FLIGHT: "in flight",
    Phase.DRAINING: "pre-drain",
    Phase.RESUMING: "resuming",
    Phase.ASKED: "asked",
}


@dataclass
class Found:
    """The markers of one source, or why they could not be read."""

    source: Source
    markers: list[StoredMarker]
    error: str | None = None


def collect(target: Target) -> list[Found]:
    """Read every source of ``target`` without claiming anything."""
    found: list[Found] = []
    for source in target.sources():
        try:
            markers = source.store.load()
        except Exception as exc:  # one unreadable bot must not hide the others
            found.append(Found(source, [], f"{type(exc).__name__}: {exc}"))
            continue
        found.append(Found(source, sorted(markers, key=lambda s: s.marker.started_at)))
    return found


def render_table(rows: Sequence[tuple[Source, StoredMarker]], now: float) -> str:
    """A plain-text table of ``rows``; columns that would be empty everywhere are left out."""
    show_scope = any(s.marker.conversation.scope for _, s in rows)
    header = ["BOT", "PLATFORM", "CHAT", "THREAD", *(["SCOPE"] if show_scope else [])]
    header += ["AGE", "PHASE", "ATTEMPTS", "HELD", "OWNER"]
    lines = [header]
    for source, stored in rows:
        marker = stored.marker
        where = marker.conversation
        line = [source.label, where.platform, where.chat, where.thread or "-"]
        if show_scope:
            line.append(where.scope or "-")
        line += [
            format_age(marker.age(now)),
            PHASE_LABELS.get(marker.phase, marker.phase.value),
            str(marker.attempts),
            "yes" if stored.held else "no",
            marker.owner or "-",
        ]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def marker_json(
    source: Source, stored: StoredMarker, now: float, *, show_payload: bool
) -> dict[str, Any]:
    """One marker for ``--json``; ``payload`` only with ``show_payload``."""
    marker = stored.marker
    where = marker.conversation
    data: dict[str, Any] = {
        "bot": source.label,
        "location": source.location,
        "key": marker.key,
        "platform": where.platform,
        "chat": where.chat,
        "thread": where.thread,
        "scope": where.scope,
        "parent": where.parent,
        "started_at": marker.started_at,
        "updated_at": marker.updated_at,
        "age_seconds": round(marker.age(now), 3),
        "phase": marker.phase.value,
        "attempts": marker.attempts,
        "owner": marker.owner,
        "held": stored.held,
        "has_payload": bool(marker.payload),
    }
    if show_payload:
        data["payload"] = marker.payload
    return data


def summary(rows: Sequence[tuple[Source, StoredMarker]]) -> str:
    """One sentence: how many markers, how many held, what happens to the rest."""
    held = sum(1 for _, s in rows if s.held)
    bots = len({source.location for source, _ in rows})
    text = f"{len(rows)} marker(s) in {bots} bot store(s)"
    if held:
        text += f"; {held} held by a running process (its handler is still running there)"
    if len(rows) - held:
        text += (
            f"; {len(rows) - held} interrupted (the owner is gone): resumed at the bot's next start"
        )
    return text + "."


def run(args: argparse.Namespace) -> int:
    """``restart-guard status``."""
    try:
        target = resolve_target(args)
        try:
            found = collect(target)
        finally:
            target.close()
    except OpsError as exc:
        print(f"restart-guard status: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    rows = [(f.source, s) for f in found for s in f.markers]
    failed = [f for f in found if f.error]
    for f in failed:
        print(f"restart-guard status: cannot read {f.source.location}: {f.error}", file=sys.stderr)
    if args.json:
        document = {
            "target": {"kind": target.kind, "where": target.where, "origin": target.origin},
            "sources": [
                {
                    "bot": f.source.label,
                    "location": f.source.location,
                    "kind": f.source.kind,
                    "markers": len(f.markers),
                    "error": f.error,
                }
                for f in found
            ],
            "markers": [
                marker_json(source, s, now, show_payload=args.show_payload) for source, s in rows
            ],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 1 if failed else 0
    print(f"Markers in {target.where} ({target.origin}):")
    if not found and target.kind == "directory":
        print("  nothing there: the directory does not exist (no guarded bot has run with it).")
    elif not rows:
        print("  none pending.")
    else:
        print()
        print(render_table(rows, now))
        print()
        print(summary(rows))
    if args.show_payload:
        for source, stored in rows:
            if stored.marker.payload:
                print(f"\npayload of {stored.marker.conversation} ({source.label}):")
                print(json.dumps(stored.marker.payload, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` and its alias ``list`` to the CLI's subcommands."""
    parser = add_store_command(commands, "status", run, SUMMARY, __doc__, aliases=["list"])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--show-payload",
        action="store_true",
        help="also print the stored updates (message text; present only with replay=True)",
    )

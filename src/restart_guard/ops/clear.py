"""``restart-guard clear``: remove markers, so their conversations are not resumed.

Selection: every marker, or those older than ``--older-than`` and/or of the
conversations named with ``--conversation`` (a marker key, ``CHAT`` for a
chat and all its threads, or ``CHAT:THREAD``; Telegram group ids are
negative, so write ``--conversation=-1001234:7``). The markers are shown
and a confirmation is asked for unless ``--yes``.

How a marker is removed safely: exactly as a starting bot takes markers
over. The command opens the store as a process of its own, ``claim()``s
what dead processes left (a journal's ``flock``, or a Redis lease, makes
this atomic: a bot starting at the same moment never gets the same marker),
commits the removals — durably, one batch — together with the markers it
keeps, restored to how they were, and closes. What it kept is claimed by the
bot's next start as before. A marker *held* by a running process (its
handler is still running there) is never touched unless ``--force``; even
then, a marker directory's journal has exactly one writer, its running
owner, so held markers are removed only from Redis (whose owner writes them
again if the conversation is still in flight at its next batch). Stop the
process first instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .._marker import Marker, newer
from ..stores.base import StoredMarker
from .sources import OpsError, Source, add_store_command, resolve_target
from .status import Found, collect, render_table
from .timespan import duration_argument

__all__ = ["ConversationFilter", "register", "run"]

#: What ``restart-guard --help`` says ``clear`` does.
SUMMARY = "remove markers so that their conversations are not resumed"

_KEY = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ConversationFilter:
    """``--conversation``: a marker key, ``CHAT`` (and its threads) or ``CHAT:THREAD``."""

    key: str | None = None
    chat: str | None = None
    thread: str | None = None

    @classmethod
    def parse(cls, text: str) -> ConversationFilter:
        """Read ``--conversation``'s value."""
        text = text.strip()
        if _KEY.match(text):
            return cls(key=text)
        chat, colon, thread = text.partition(":")
        if not chat or (colon and not thread):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a marker key, CHAT or CHAT:THREAD (see restart-guard status)"
            )
        return cls(chat=chat, thread=thread or None)

    def matches(self, marker: Marker) -> bool:
        """True if ``marker`` is one of this filter's conversations."""
        if self.key is not None:
            return marker.key == self.key
        where = marker.conversation
        return where.chat == self.chat and (self.thread is None or where.thread == self.thread)


def _selector(args: argparse.Namespace, now: float) -> Callable[[Marker], bool]:
    filters: list[ConversationFilter] = args.conversation

    def selected(marker: Marker) -> bool:
        if args.older_than is not None and marker.age(now) < args.older_than:
            return False
        return not filters or any(f.matches(marker) for f in filters)

    return selected


def run(args: argparse.Namespace) -> int:
    """``restart-guard clear``."""
    try:
        target = resolve_target(args)
        try:
            return _clear(args, collect(target))
        finally:
            target.close()
    except OpsError as exc:
        print(f"restart-guard clear: {exc}", file=sys.stderr)
        return 2


def _clear(args: argparse.Namespace, found: list[Found]) -> int:
    now = time.time()
    selected = _selector(args, now)
    status = 0
    for f in found:
        if f.error:
            print(
                f"restart-guard clear: cannot read {f.source.location}: {f.error}", file=sys.stderr
            )
            status = 1
    chosen = [(f.source, s) for f in found for s in f.markers if selected(s.marker)]
    free = [(source, s) for source, s in chosen if not s.held]
    held = [(source, s) for source, s in chosen if s.held]
    forced = [(source, s) for source, s in held if args.force and source.kind == "redis"]
    untouchable = [(source, s) for source, s in held if (source, s) not in forced]
    if not chosen:
        print("No marker matches." if found else "No markers here.")
        return status
    doomed = free + forced
    if untouchable:
        print("Left alone, held by a running process (its handler is still running there):\n")
        print(render_table(untouchable, now))
        if args.force:
            print(
                "\n--force cannot remove these: a marker directory's journal has one writer, "
                "the process that holds it. Stop that process (its drain leaves what it could "
                "not finish marked), then run clear again."
            )
        else:
            print("\nStop that process first, or pass --force (Redis stores only).")
        print()
    if not doomed:
        return status
    print(f"To remove ({len(doomed)}):\n")
    print(render_table(doomed, now))
    print(
        "\nThese conversations get no 'restarted' notice, and nothing of them is re-run. "
        "This cannot be undone."
    )
    if not args.yes and not _confirm(f"Remove {len(doomed)} marker(s)? [y/N] "):
        print("Nothing removed.")
        return 1
    removed = 0
    loaded = {f.source.location: f.markers for f in found}
    for source, group in _by_source(free):
        try:
            done, missed = _remove_claimable(source, group, loaded[source.location], selected)
        except Exception as exc:
            print(f"restart-guard clear: {source.location}: {exc}", file=sys.stderr)
            status = 1
            continue
        removed += done
        if missed:
            status = 1
            print(
                f"{missed} marker(s) in {source.location} were not removed: a process took them "
                "over meanwhile (a bot starting?). Run status again."
            )
    for source, group in _by_source(forced):
        try:
            removed += _remove_held(source, group)
        except Exception as exc:
            print(f"restart-guard clear: {source.location}: {exc}", file=sys.stderr)
            status = 1
    print(f"Removed {removed} marker(s).")
    return status


def _confirm(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:
        answer = ""
    if not sys.stdin.isatty():
        print()  # a piped answer is not echoed: end the prompt's line ourselves
    return answer.strip().lower() in ("y", "yes")


def _by_source(
    rows: Sequence[tuple[Source, StoredMarker]],
) -> Iterator[tuple[Source, list[StoredMarker]]]:
    groups: dict[str, tuple[Source, list[StoredMarker]]] = {}
    for source, stored in rows:
        groups.setdefault(source.location, (source, []))[1].append(stored)
    yield from groups.values()


def _remove_claimable(
    source: Source,
    group: list[StoredMarker],
    loaded: list[StoredMarker],
    selected: Callable[[Marker], bool],
) -> tuple[int, int]:
    """Claim, remove the chosen, put back the rest as they were; (removed, missed)."""
    wanted = {s.marker.key for s in group}
    originals: dict[str, Marker] = {}
    for stored in loaded:
        if stored.held:
            continue
        key = stored.marker.key
        originals[key] = newer(originals[key], stored.marker) if key in originals else stored.marker
    owner = f"restart-guard-cli:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    store = source.store
    with _as_owner_of(source):
        store.open(owner)
        try:
            claimed = {m.key: m for m in store.claim()}
            removes = [k for k, m in claimed.items() if k in wanted and selected(m)]
            # claim() marked every marker it took as ours and "resuming"; what stays goes
            # back to how the operator saw it, for the next status and the next start.
            keep = [_as_before(m, originals.get(k)) for k, m in claimed.items() if k not in removes]
            store.commit(keep, removes)
        finally:
            store.close()
    return len(removes), len(wanted) - len(removes)


def _as_before(claimed: Marker, original: Marker | None) -> Marker:
    if original is None:
        return claimed
    return claimed.with_changes(
        owner=original.owner, phase=original.phase, updated_at=original.updated_at
    )


@contextlib.contextmanager
def _as_owner_of(source: Source) -> Iterator[None]:
    """Act as the marker directory's owner while writing in it.

    Run as root (``sudo restart-guard clear``), the journal the command
    leaves behind would belong to root, 0600, and the bot — running as its
    own user — could never read the markers kept in it.
    """
    if source.path is None or os.geteuid() != 0:
        yield
        return
    info = source.path.stat()
    if info.st_uid == 0:
        yield
        return
    os.setegid(info.st_gid)
    os.seteuid(info.st_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _remove_held(source: Source, group: list[StoredMarker]) -> int:
    """``--force``: the store deletes each marker from under the process that holds it."""
    return source.store.discard([stored.marker for stored in group])


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``clear`` to the CLI's subcommands."""
    parser = add_store_command(commands, "clear", run, SUMMARY, __doc__)
    parser.add_argument(
        "--older-than",
        type=duration_argument,
        metavar="AGE",
        help="only markers whose turn started longer ago than AGE (90s, 15m, 2h, 1d)",
    )
    parser.add_argument(
        "--conversation",
        type=ConversationFilter.parse,
        action="append",
        default=[],
        metavar="KEY|CHAT[:THREAD]",
        help="only this conversation: a marker key, a chat (with all its threads) or "
        "chat:thread, as status shows them (repeatable; write a negative chat id as "
        "--conversation=-100…:7)",
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also remove markers held by a running process (Redis stores only; see above)",
    )

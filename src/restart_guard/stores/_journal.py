"""The journal format of the directory store, and a bounded reader for it.

Each line is ``<crc32 as 8 hex> <JSON record>\\n``; a record is a marker
(``"op": "put"``), a removal (``"del"``), a claim (``"own"``) or the
"draining" note (``"drain"``). Reading is a stream of 1 MiB chunks with
three limits, so a hostile or damaged file costs bounded time and memory:
a file over :data:`MAX_JOURNAL_BYTES` is not read at all, a line over
:data:`MAX_LINE_BYTES` is skipped unread, and reading stops after
:data:`MAX_BAD_LINES` unreadable lines.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass, field

from .._marker import Marker, Phase, marker_json_text
from .base import UNREADABLE

__all__ = [
    "MAX_BAD_LINES",
    "MAX_JOURNAL_BYTES",
    "MAX_LINE_BYTES",
    "Parsed",
    "encode",
    "encode_put",
    "read_journal",
]

#: A journal larger than this is set aside unread. The writer rewrites its journal
#: once it is twice its live markers, so only ~128 MiB of conversations in flight
#: at once (hundreds of thousands) could make a real journal this large.
MAX_JOURNAL_BYTES = 256 << 20
#: A longer line is skipped unread: a marker with its replay payload is kilobytes.
MAX_LINE_BYTES = 16 << 20
#: Reading a file stops after this many unreadable lines: it is not a journal.
MAX_BAD_LINES = 1000
_CHUNK = 1 << 20


def _line(body: bytes) -> bytes:
    return b"%08x %s\n" % (zlib.crc32(body), body)


def encode(record: dict[str, object]) -> bytes:
    """One journal line holding ``record``."""
    # ensure_ascii: a lone surrogate from a platform's JSON must not make a batch unwritable.
    return _line(json.dumps(record, separators=(",", ":")).encode())


def encode_put(marker: Marker) -> bytes:
    """The journal line that stores ``marker``."""
    return _line(marker_json_text(marker, head='"op":"put",').encode())


def drain_record() -> bytes:
    """The line saying every marker of this journal is now ``draining``."""
    return encode({"op": "drain", "v": 1, "at": time.time()})


@dataclass
class Parsed:
    """What a journal holds, and what was wrong with it."""

    markers: dict[str, Marker] = field(default_factory=dict)
    # The verified line (checksum and newline included) of each marker's latest put:
    # a claim copies these bytes as they are instead of re-encoding every marker.
    raw: dict[str, bytes] = field(default_factory=dict)
    bad_lines: int = 0
    torn_tail: bool = False
    #: The file's size when it was over MAX_JOURNAL_BYTES (then nothing was read).
    too_big: int = 0
    #: Reading stopped at MAX_BAD_LINES: what follows was not looked at.
    gave_up: bool = False

    @property
    def damaged(self) -> bool:
        """True if the file must be set aside rather than deleted once claimed."""
        return bool(self.bad_lines or self.torn_tail or self.too_big or self.gave_up)

    def problem(self) -> str:
        """What is wrong with the file, in a few words for the one log line about it."""
        if self.too_big:
            return (
                f"{self.too_big / (1 << 20):.0f} MiB, over the {MAX_JOURNAL_BYTES >> 20} MiB "
                "limit: not read"
            )
        parts = []
        if self.gave_up:
            parts.append(f"over {MAX_BAD_LINES} unreadable lines: the rest not read")
        elif self.bad_lines:
            parts.append(f"skipped {self.bad_lines} unreadable record(s)")
        if self.torn_tail:
            parts.append("last record cut off")
        parts.append(f"{len(self.markers)} valid marker(s) kept")
        return ", ".join(parts)

    def feed(self, line: bytes) -> None:
        """Apply one complete line (without its newline)."""
        try:
            crc_hex, body = line[:8], line[9:]
            if line[8:9] != b" " or int(crc_hex, 16) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            record = json.loads(body)
            if record.get("op") == "del" and record.get("v") == 1:
                key = record["key"]
                if not isinstance(key, str):
                    raise ValueError("removal without a key")
                self.markers.pop(key, None)
            elif record.get("op") == "drain" and record.get("v") == 1:
                self.markers = {
                    k: m.with_changes(phase=Phase.DRAINING) if m.phase is Phase.IN_FLIGHT else m
                    for k, m in self.markers.items()
                }
            elif record.get("op") == "own" and record.get("v") == 1:
                owner, at, keys = record["owner"], float(record["at"]), record["keys"]
                if not (isinstance(owner, str) and isinstance(keys, list)):
                    raise ValueError("malformed claim record")
                for key in keys:
                    marker = self.markers.get(key)
                    if marker is not None:
                        self.markers[key] = marker.claimed_by(owner, at)
            elif record.get("op") == "put":
                marker = Marker.from_json(record)
                self.markers[marker.key] = marker
                self.raw[marker.key] = line + b"\n"
            else:
                raise ValueError(f"unknown record {record.get('op')!r} v{record.get('v')!r}")
        except UNREADABLE:
            self.bad_lines += 1


def read_journal(fd: int) -> Parsed:
    """Read the journal open at ``fd`` from its current offset, within the module's limits."""
    parsed = Parsed()
    size = os.fstat(fd).st_size
    if size > MAX_JOURNAL_BYTES:
        parsed.too_big = size
        return parsed
    pending = bytearray()  # the start of a line that continues in the next chunk
    skipping = False  # inside an over-long line: drop everything up to its newline
    total = 0
    while chunk := os.read(fd, _CHUNK):
        total += len(chunk)
        if total > MAX_JOURNAL_BYTES:  # it grew while we read
            parsed.too_big = total
            return parsed
        if skipping:  # cheap: find, no copies, until the over-long line ends
            end = chunk.find(b"\n")
            if end < 0:
                continue
            chunk, skipping = chunk[end + 1 :], False
        lines = chunk.split(b"\n")
        last = lines.pop()  # no newline after it (yet)
        for line in lines:
            if pending:
                pending += line
                line, pending = bytes(pending), bytearray()
            parsed.feed(line)
            if parsed.bad_lines > MAX_BAD_LINES:
                parsed.gave_up = True
                return parsed
        pending += last
        if len(pending) > MAX_LINE_BYTES:
            parsed.bad_lines += 1
            pending = bytearray()
            skipping = True
    if pending or skipping:
        # No newline at the end: the last write was cut off (a crash, a full disk).
        parsed.torn_tail = True
    return parsed

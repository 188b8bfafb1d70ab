"""The storage protocol every marker store implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._marker import Marker

__all__ = ["UNREADABLE", "OperatorStore", "Store", "StoreError", "StoredMarker"]


class StoreError(Exception):
    """A store could not do what was asked; the message says what to check."""


#: What decoding a stored record may raise when it is garbage or of an unknown
#: version: such a record is skipped (and set aside), never fatal.
UNREADABLE = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
)


@dataclass(frozen=True)
class StoredMarker:
    """A marker as an operator sees it: ``held`` is True while its owner still runs."""

    marker: Marker
    held: bool


@runtime_checkable
class Store(Protocol):
    """Durable marker storage shared by every adapter.

    A store is opened by one process (its *owner*). ``commit`` is the only
    write path: one durable batch, one fsync or one round trip, however many
    markers it carries. Markers written by this owner belong to it; markers
    of owners that died are taken over with ``claim``. Every method may
    raise ``OSError`` or :class:`StoreError`; the guard logs and retries.
    """

    def open(self, owner: str) -> None:
        """Prepare to write as ``owner`` (a unique id of this process)."""

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Durably upsert ``puts`` and delete the markers keyed ``removes``, as one batch.

        ``draining=True`` also records, in the same batch, that every marker
        this owner holds is now in the ``draining`` phase (a stop signal
        arrived) — one record, however many conversations are in flight.
        When this returns, the change survives a crash of this process and
        of the host.
        """

    def claim(self) -> list[Marker]:
        """Take over every marker whose owner is gone; return them, now owned by us.

        Atomic across processes: two processes never both receive one marker.
        Markers of owners still running are left alone.
        """

    def load(self) -> list[StoredMarker]:
        """Every marker in the store, read-only, for operators (``restart-guard status``)."""

    def close(self) -> None:
        """Release the store. Markers still present stay for the next start."""


@runtime_checkable
class OperatorStore(Store, Protocol):
    """A :class:`Store` the ``restart-guard`` command can also clean up.

    The stores restart-guard ships implement it. A store of your own needs
    only :class:`Store` to protect a bot; this method is for the operator CLI.
    """

    def discard(self, markers: Sequence[Marker]) -> int:
        """Delete ``markers`` at once, even those a running process holds; return how many were.

        For ``restart-guard clear --force``. Needs no ``open()``. The owner of
        a conversation still in flight writes its marker again at its next
        batch. A store in which only the owner may write (a marker directory:
        one writer per journal) raises :class:`StoreError` and removes nothing.
        """
        ...

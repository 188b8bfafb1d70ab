"""systemd's notify protocol, for ``Type=notify`` services, without libsystemd.

systemd starts a ``Type=notify`` service with ``$NOTIFY_SOCKET`` set to a
datagram socket and considers it started only when the service sends
``READY=1``. restart-guard sends:

- ``READY=1`` once start-up recovery is done (markers claimed, the first
  notices posted), so ``systemctl start`` and units ordered ``After=`` the
  bot wait for it — adapters call :func:`notify_ready`;
- ``STOPPING=1`` when the drain begins (from ``Lifecycle.pre_mark``), so
  ``systemctl status`` shows the bot as deactivating while it drains.

Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every
function here returns False at once. Errors are logged, never raised: a
status message must not stop a bot.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify", "notify_ready", "notify_stopping"]

log = logging.getLogger("restart_guard")


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) to ``$NOTIFY_SOCKET``.

    Returns True if the datagram was sent, False if there is no socket to
    send to or sending failed (logged).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # An abstract socket: systemd writes its leading NUL byte as "@".
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.debug("restart-guard: NOTIFY_SOCKET %r is not a unix socket; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("restart-guard: could not notify systemd (%s): %s", " ".join(fields), exc)
        return False
    return True


def notify_ready() -> bool:
    """Tell systemd the bot is up: start-up recovery is done. Adapters call this."""
    return notify("READY=1")


def notify_stopping() -> bool:
    """Tell systemd the bot is stopping: the drain begins."""
    return notify("STOPPING=1")

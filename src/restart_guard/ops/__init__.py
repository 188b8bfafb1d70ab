"""The ``restart-guard`` command's subcommands, for operators; nothing here runs in a bot.

- ``status`` / ``clear`` / ``doctor``: the subcommands (``sources`` finds the
  stores they look at, chosen as ``protect()`` does; ``units`` reads systemd
  units and ``mounts`` the file systems, for ``doctor``).

Every marker is read and removed through the :class:`~restart_guard.Store`
the command opens, never by the store's file or key layout. The runtime
pieces a bot uses live beside the core: ``restart_guard._systemd`` (the
``sd_notify`` client) and :mod:`restart_guard.metrics`.
"""

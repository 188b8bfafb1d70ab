"""Operations: what the ``restart-guard`` command and service managers need.

- ``status`` / ``clear`` / ``doctor``: the subcommands of ``restart-guard``
  (``sources`` finds the stores they look at);
- ``systemd``: the ``sd_notify`` client (``READY=1`` after start-up
  recovery, ``STOPPING=1`` when the drain begins);
- ``metrics``: the ``protect(metrics=...)`` hook (``prometheus`` backs it
  with a ``prometheus_client`` registry).

Nothing here is imported by a bot until it is used, except ``systemd`` and
``metrics``, which import only the standard library.
"""

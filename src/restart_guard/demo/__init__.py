"""``restart-guard demo``: the restart gap and its fix, on loopback, narrated."""

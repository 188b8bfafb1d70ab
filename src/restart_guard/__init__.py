"""restart-guard."""

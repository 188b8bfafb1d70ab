"""Framework adapters, one module per framework (shipped as ``restart_guard.adapters``).

Nothing is imported here so that no framework loads until its adapter is asked for.
"""

# The fixtures restart-guard ships for bot authors; the project's own tests use them too.
pytest_plugins = ["restart_guard.testing.fixtures"]

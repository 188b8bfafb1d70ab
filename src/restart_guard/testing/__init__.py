"""Loopback stand-ins of the Telegram, Discord and Slack APIs for offline tests.

Each stand-in is a small aiohttp server on 127.0.0.1 that a real framework
client talks to. Import the one you need from its module
(``restart_guard.testing.telegram`` ...); pytest fixtures live in
``restart_guard.testing.fixtures`` (add ``pytest_plugins =
["restart_guard.testing.fixtures"]`` to your ``conftest.py``).
"""

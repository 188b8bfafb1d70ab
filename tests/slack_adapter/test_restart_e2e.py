"""End to end, what only slack-bolt does; the shared scenarios are in tests/scenarios."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.drivers.slack import SlackDriver

pytestmark = pytest.mark.e2e


@pytest.fixture
def http_driver(tmp_path: Path) -> Iterator[SlackDriver]:
    """The Slack stand-in and the demo bot in HTTP mode (``App.start()``)."""
    with SlackDriver("http", tmp_path).running() as driver:
        yield driver


def test_http_requests_during_the_drain_are_refused_for_redelivery(
    http_driver: SlackDriver,
) -> None:
    driver, api = http_driver, http_driver.api
    bot = driver.start_bot("--lazy")
    place = driver.start_work(driver.chat, 2, durable=False)
    bot.send_signal(signal.SIGTERM)
    bot.wait_for_log("marked before the drain")
    assert driver.url is not None
    status, _ = api.post_event(driver.url, api.message_event(driver.other.chat, "too late"))
    assert status == 503  # not acked: Slack delivers it again later
    assert bot.wait_exit(30) == 0
    assert driver.posted(place)[-1].text.startswith("done")
    assert driver.posted(driver.other) == []
    assert driver.markers() == []

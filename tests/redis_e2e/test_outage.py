"""Redis unreachable at start-up or at shutdown: the bot runs, and no conversation is lost.

- Down at start-up: the bot starts and serves, logs one clear error, and
  resumes the markers Redis holds once Redis answers again — without a
  restart, through its background re-claim.
- Down at shutdown: the write-ahead and the pre-drain write land in the local
  fallback directory; the next start reads both stores, whether Redis is
  back by then or comes back later.

The server runs with ``appendfsync always`` and is SIGKILLed: what it
acknowledged is there again when it restarts on the same port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

from .conftest import (
    Bots,
    SharedRedis,
    error_lines,
    is_notice,
    notices,
    serve_one,
    sigterm_until_marked,
    start_work,
    where,
)

pytestmark = [pytest.mark.e2e, pytest.mark.external_service]

FORUM, TOPIC, GROUP = -1001000000201, 9, -1001000000202
USERS = (5001, 5002, 5003)


def test_redis_down_at_start_bot_serves_logs_one_error_and_resumes_once_it_is_back(
    redis_db: SharedRedis, standins: Callable[[], TelegramStandIn], bots: Bots
) -> None:
    api = standins()
    first = bots.start(api, "--non-blocking")
    turns = [start_work(api, FORUM, 600, TOPIC), start_work(api, GROUP, 600)]
    keys = {c.key for c in turns}
    eventually(lambda: redis_db.keys() == keys, 20, "the markers in Redis")
    first.kill()
    redis_db.kill()

    second = bots.start(api)  # starts although Redis is down
    for user in USERS:
        serve_one(api, user)  # and serves: each turn's marker goes to the local directory
    [error] = error_lines(second)
    assert "unavailable at start-up" in error
    assert "unreachable" in error
    assert "claimed in the background" in error
    assert notices(api) == []

    redis_db.start()
    api.wait_for_sent(lambda m: is_notice(m.text), count=2, timeout=30)
    eventually(lambda: not redis_db.markers(), 20, "the resumed markers to be removed")
    assert Counter(notices(api)) == {where(c): 1 for c in turns}
    assert error_lines(second) == [error]
    assert "answers again" in second.log()
    assert redis_db.local_keys() == set()


@pytest.mark.parametrize("redis_back", ["before the next start", "after the next start"])
def test_redis_down_at_shutdown_pre_drain_write_goes_local_and_next_start_reads_both(
    redis_db: SharedRedis,
    standins: Callable[[], TelegramStandIn],
    bots: Bots,
    redis_back: str,
) -> None:
    api = standins()
    first = bots.start(api, "--non-blocking", "--drain-timeout", "600")
    in_redis = start_work(api, FORUM, 600, TOPIC)
    eventually(lambda: redis_db.keys() == {in_redis.key}, 20, "the first marker in Redis")
    redis_db.kill()
    in_local = start_work(api, GROUP, 600)  # its write-ahead can only go to the directory
    eventually(lambda: redis_db.local_keys() == {in_local.key}, 20, "the marker in the directory")

    marked = sigterm_until_marked(first)
    assert "2 conversation(s)" in marked
    assert "WRITE FAILED" not in marked
    first.kill()  # SIGKILL during the drain
    [error] = error_lines(first)
    assert "local fallback" in error

    if redis_back == "before the next start":
        redis_db.start()
        second = bots.start(api)
    else:
        second = bots.start(api)
        [notice] = api.wait_for_sent(lambda m: is_notice(m.text), timeout=30)
        assert (notice.chat, notice.thread) == where(in_local)
        redis_db.start()
    api.wait_for_sent(lambda m: is_notice(m.text), count=2, timeout=30)
    eventually(lambda: not redis_db.markers(), 20, "the resumed markers to leave Redis")
    eventually(lambda: not redis_db.local_keys(), 20, "the resumed markers to leave the directory")
    assert Counter(notices(api)) == {where(in_redis): 1, where(in_local): 1}
    assert len(error_lines(second)) == (0 if redis_back == "before the next start" else 1)

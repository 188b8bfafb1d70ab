"""The demo's python-telegram-bot bot, guarded the way an operator deploys one.

Unlike ``restart_guard.demo.telegram_bot`` it gives ``protect()`` no
``marker_dir``, so markers go where ``$RESTART_GUARD_DIR`` (one subfolder per
bot) or ``$RESTART_GUARD_URL`` say — the layout ``restart-guard status``
must find. ``--metrics`` prints every metrics event as ``METRIC <name>
<value> <platform>``; ``--debug`` logs restart-guard at DEBUG. ``/work``
runs with ``block=False`` (several turns at once) unless ``--blocking``.

    python tests/ops/guarded_bot.py --api-url URL --token TOKEN [--replay] ...
"""

from __future__ import annotations

import argparse
import logging

import restart_guard
from restart_guard.demo.telegram_bot import build_app
from restart_guard.metrics import MetricsEvent


def print_event(event: MetricsEvent) -> None:
    """The ``--metrics`` hook: one line per event, for the test to read."""
    print(f"METRIC {event.name} {event.value} {event.platform}", flush=True)


def main() -> None:
    """Run until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--drain-timeout", type=float, default=20.0)
    parser.add_argument("--replay", action="store_true")
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--blocking", action="store_true", help="/work with block=True")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.debug:
        logging.getLogger("restart_guard").setLevel(logging.DEBUG)
    app = restart_guard.protect(
        drain_timeout=args.drain_timeout,
        replay=args.replay,
        metrics=print_event if args.metrics else None,
    )(build_app(args.api_url, args.token, block=args.blocking))
    app.run_polling(poll_interval=0.0, timeout=10)


if __name__ == "__main__":
    main()

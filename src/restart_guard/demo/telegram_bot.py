"""A small python-telegram-bot bot for the demo and the end-to-end tests.

It talks to whatever Bot API ``--api-url`` names (the loopback stand-in in
the demo and the tests) and differs from an unguarded bot only by
``restart_guard.protect`` — which ``--unguarded`` leaves out, to show the
failure it prevents.

Commands: ``/work N`` answers "working on it", spends N seconds (think of an
LLM call), then answers "done"; ``/crash`` kills the process with SIGKILL
mid-turn (a turn that brings the bot down every time, for the crash-loop
guard) a second into its turn; any other text is echoed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

import restart_guard
from restart_guard.demo._options import guard_from, guard_options


async def work(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer at once, work for N seconds, answer again."""
    seconds = float(context.args[0]) if context.args else 5.0
    message = update.effective_message
    assert message is not None
    await message.reply_text(f"working on it ({seconds:g}s)…")
    await asyncio.sleep(seconds)
    await message.reply_text(f"done: {seconds:g}s of work finished")


@restart_guard.no_replay
async def charge(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/work`` that must never run twice (a payment): never replayed after a restart."""
    await work(update, context)


async def crash(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Bring the whole process down mid-turn, as an OOM kill would."""
    message = update.effective_message
    assert message is not None
    await message.reply_text("crashing…")
    await asyncio.sleep(1.0)  # some work first: the write-ahead covers turns this long
    os.kill(os.getpid(), signal.SIGKILL)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Echo text back."""
    message = update.effective_message
    assert message is not None
    assert message.text is not None
    await message.reply_text(f"echo: {message.text}")


def build_app(api_url: str, token: str, block: bool = True) -> Application:  # type: ignore[type-arg]
    """The bot, unguarded."""
    app = ApplicationBuilder().token(token).base_url(api_url).build()
    app.add_handler(CommandHandler("work", work, block=block))
    app.add_handler(CommandHandler("charge", charge, block=block))
    app.add_handler(CommandHandler("crash", crash))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the bot until SIGTERM/SIGINT."""
    parser = guard_options(__doc__)
    parser.add_argument(
        "--api-url", required=True, help="Bot API base, e.g. http://127.0.0.1:PORT/bot"
    )
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument("--non-blocking", action="store_true", help="run /work with block=False")
    parser.add_argument(
        "--webhook-port",
        type=int,
        help="take updates on a webhook at http://127.0.0.1:PORT/telegram (needs tornado)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    app = build_app(args.api_url, args.token, block=not args.non_blocking)
    app = guard_from(args)(app)
    if args.webhook_port is None:
        app.run_polling(poll_interval=0.0, timeout=10)
        return
    app.run_webhook(
        listen="127.0.0.1",
        port=args.webhook_port,
        url_path="telegram",
        webhook_url=f"http://127.0.0.1:{args.webhook_port}/telegram",
    )


if __name__ == "__main__":
    main()

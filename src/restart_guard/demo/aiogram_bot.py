"""A small aiogram 3 bot for the demo and the end-to-end tests.

It talks to whatever Bot API ``--api-url`` names (the loopback stand-in in
the demo and the tests) and differs from an unguarded bot only by
``restart_guard.protect`` — which ``--unguarded`` leaves out, to show the
failure it prevents.

Commands: ``/work N`` answers "working on it", spends N seconds (think of an
LLM call), then answers "done"; ``/crash`` kills the process with SIGKILL a
second into its turn (a turn that brings the bot down every time, for the
crash-loop guard); any other text is echoed.

Polling by default (``dp.run_polling``); ``--webhook PORT`` serves aiogram's
aiohttp webhook handler on that port instead and registers it with
``setWebhook``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

import restart_guard

from ._options import guard_from, guard_options

router = Router(name="demo")
WEBHOOK_PATH = "/webhook"
WEBHOOK_SECRET = "demo-secret"


@router.message(Command("work"))
async def work(message: Message, command: CommandObject) -> None:
    """Answer at once, work for N seconds, answer again."""
    # The first word: anything after it is a tag the fault tests add to tell turns apart.
    seconds = float(command.args.split()[0]) if command.args else 5.0
    await message.reply(f"working on it ({seconds:g}s)…")
    await asyncio.sleep(seconds)
    await message.reply(f"done: {seconds:g}s of work finished")


@router.message(Command("charge"))
@restart_guard.no_replay
async def charge(message: Message, command: CommandObject) -> None:
    """``/work`` that must never run twice (a payment): never replayed after a restart."""
    await work(message, command)


@router.message(Command("crash"))
async def crash(message: Message) -> None:
    """Bring the whole process down mid-turn, as an OOM kill would."""
    await message.reply("crashing…")
    await asyncio.sleep(1.0)  # some work first: the write-ahead covers turns this long
    os.kill(os.getpid(), signal.SIGKILL)


@router.message(F.text)
async def echo(message: Message) -> None:
    """Echo text back."""
    await message.reply(f"echo: {message.text}")


def make_bot(api_url: str, token: str) -> Bot:
    """A Bot that talks to ``api_url`` (``{api_url}/bot{token}/{method}``)."""
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))


def build_dispatcher() -> Dispatcher:
    """The bot's dispatcher, unguarded."""
    dp = Dispatcher()
    dp.include_router(router)
    return dp


def serve_webhook(dp: Dispatcher, bot: Bot, port: int) -> None:
    """aiogram's aiohttp integration, as its documentation sets it up."""
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    async def register(bot: Bot) -> None:
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        await bot.set_webhook(url, secret_token=WEBHOOK_SECRET)

    dp.startup.register(register)
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=WEBHOOK_SECRET).register(
        app, path=WEBHOOK_PATH
    )
    setup_application(app, dp, bot=bot)
    # The drain ran in on_shutdown already; aiohttp < 3.10 would then wait up to
    # shutdown_timeout (60 s) for idle keep-alive connections.
    web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Run the bot until SIGTERM/SIGINT."""
    parser = guard_options(__doc__)
    parser.add_argument("--api-url", required=True, help="Bot API root, e.g. http://127.0.0.1:PORT")
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument(
        "--sequential", action="store_true", help="handle_as_tasks=False: one update at a time"
    )
    parser.add_argument("--tasks-limit", type=int, default=None, help="tasks_concurrency_limit")
    parser.add_argument("--webhook", type=int, metavar="PORT", help="webhook mode on this port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    dp = guard_from(args)(build_dispatcher())
    bot = make_bot(args.api_url, args.token)
    if args.webhook is not None:
        serve_webhook(dp, bot, args.webhook)
        return
    options = {"tasks_concurrency_limit": args.tasks_limit} if args.tasks_limit else {}
    dp.run_polling(bot, polling_timeout=10, handle_as_tasks=not args.sequential, **options)


if __name__ == "__main__":
    main()

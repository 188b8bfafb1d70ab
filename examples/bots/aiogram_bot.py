"""An aiogram 3 bot protected by restart-guard: ``import restart_guard`` and the
decorator on the function that builds the ``Dispatcher`` are all it adds.

With a real token (after ``pip install "restart-guard[aiogram]"``)::

    TELEGRAM_TOKEN=123:ABC python examples/bots/aiogram_bot.py

Offline, point it at the loopback stand-in (``restart_guard.testing``):
``TELEGRAM_API_ROOT`` is the stand-in's ``url``.

``/think`` is 30 seconds of work, like a slow LLM call. Restart the bot while
it thinks (Ctrl-C, ``systemctl restart``, ``kill -9``): once back, it says so
in the chat or forum topic where it was asked. Its markers are keyed as the
python-telegram-bot adapter keys them, so a bot moved over from that framework
picks up what the old one left off.
"""

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

import restart_guard

TOKEN = os.environ["TELEGRAM_TOKEN"]
API_ROOT = os.environ.get("TELEGRAM_API_ROOT", "https://api.telegram.org")

router = Router()


@router.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer("Hi! Send /think and restart me meanwhile.")


@router.message(Command("think"))
async def think(message: Message) -> None:
    await message.answer("Thinking… (30 s)")
    await asyncio.sleep(30)
    await message.answer("Here is my answer: 42.")


@restart_guard.protect(drain_timeout=20)
def build_dispatcher() -> Dispatcher:
    dp = Dispatcher()
    dp.include_router(router)
    return dp


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(API_ROOT)))
    build_dispatcher().run_polling(bot)

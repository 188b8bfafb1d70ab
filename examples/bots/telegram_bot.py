"""A python-telegram-bot bot protected by restart-guard.

It differs from a plain python-telegram-bot bot only by ``import
restart_guard`` and the decorator. Run it with a real token::

    pip install "restart-guard[telegram]"
    TELEGRAM_TOKEN=123:ABC python examples/bots/telegram_bot.py

or offline against the loopback stand-in (``restart_guard.testing``) by also
setting ``TELEGRAM_API_URL`` to the stand-in's ``base_url``.

``/think`` takes 30 seconds, like a slow LLM call: restart the bot meanwhile
(Ctrl-C, ``systemctl restart``, ``kill -9``) and it tells you so in the same
chat or forum topic when it is back.
"""

import asyncio
import os

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

import restart_guard

TOKEN = os.environ["TELEGRAM_TOKEN"]
API_URL = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org/bot")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text("Hi! Send /think and restart me meanwhile.")


async def think(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text("Thinking… (30 s)")
    await asyncio.sleep(30)
    await update.effective_message.reply_text("Here is my answer: 42.")


@restart_guard.protect(drain_timeout=20)
def build_app() -> Application:
    app = ApplicationBuilder().token(TOKEN).base_url(API_URL).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("think", think))
    return app


if __name__ == "__main__":
    build_app().run_polling()

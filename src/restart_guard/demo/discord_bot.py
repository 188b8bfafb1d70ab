"""A small discord.py bot for the demo and the end-to-end tests.

It talks to whatever Discord API the environment names (the loopback
stand-in, through :func:`restart_guard.testing.discord.point_discord_at_env`)
and differs from an unguarded bot only by ``restart_guard.protect`` on its
class — which ``--unguarded`` leaves out, to show the failure it prevents.

Prefix commands: ``!work N`` answers "working on it", spends N seconds
(think of an LLM call), then answers "done"; ``!crash`` kills the process
with SIGKILL a quarter second into its turn (a turn that brings the bot down every time, for the
crash-loop guard). The slash command ``/work seconds`` does the same as
``!work``. Any other text is echoed. ``--shards N`` runs it as an
``AutoShardedBot`` with N gateway connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

import restart_guard
from restart_guard.demo._options import guard_from, guard_options
from restart_guard.testing.discord import point_discord_at_env

log = logging.getLogger("restart_guard.demo")


class DemoBot(commands.Bot):
    """The bot, unguarded: prefix commands, one slash command, an echo."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        # guild_ready_timeout: the loopback stand-in sends every guild at once.
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.2, **options)
        self.add_command(work)
        self.add_command(charge)
        self.add_command(crash)
        self.tree.add_command(slash_work)

    async def setup_hook(self) -> None:
        # A bot's own set-up keeps running under the guard.
        log.info("demo bot: setup_hook ran")

    async def on_ready(self) -> None:
        """Logged so that tests and the demo know the gateway is up."""
        log.info("demo bot ready as %s", self.user)

    async def on_message(self, message: discord.Message) -> None:
        """Commands run as commands; any other text from a user is echoed."""
        if message.author.bot:
            return
        if message.content.startswith("!"):
            await self.process_commands(message)
        else:
            await message.channel.send(f"echo: {message.content}")


async def _work(ctx: commands.Context[DemoBot], seconds: float) -> None:
    await ctx.send(f"working on it ({seconds:g}s)…")
    await asyncio.sleep(seconds)
    await ctx.send(f"done: {seconds:g}s of work finished")


@commands.command(name="work")
async def work(ctx: commands.Context[DemoBot], seconds: float = 5.0) -> None:
    """Answer at once, work for N seconds, answer again."""
    await _work(ctx, seconds)


@commands.command(name="charge")
@restart_guard.no_replay
async def charge(ctx: commands.Context[DemoBot], seconds: float = 5.0) -> None:
    """``!work`` that must never run twice (a payment): never replayed after a restart."""
    await _work(ctx, seconds)


@commands.command(name="crash")
async def crash(ctx: commands.Context[DemoBot]) -> None:
    """Bring the whole process down mid-turn, as an OOM kill would."""
    await ctx.send("crashing…")
    await asyncio.sleep(0.25)  # the turn's work, until memory runs out
    os.kill(os.getpid(), signal.SIGKILL)


@app_commands.command(name="work", description="work for a while, then answer")
async def slash_work(interaction: discord.Interaction, seconds: float = 5.0) -> None:
    """The slash version of ``!work``: the answer comes as a followup."""
    await interaction.response.send_message(f"working on it ({seconds:g}s)…")
    await asyncio.sleep(seconds)
    await interaction.followup.send(f"done: {seconds:g}s of work finished")


class ShardedDemoBot(DemoBot, commands.AutoShardedBot):
    """The same bot on ``AutoShardedBot``: one gateway connection per shard, one process."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before each shard's IDENTIFY; a bot large enough to shard
        # gets a max_concurrency of 16 or more from Discord, and so identifies at once.
        return None


def main(argv: list[str] | None = None) -> None:
    """Run the bot until SIGTERM/SIGINT."""
    parser = guard_options(__doc__)
    parser.add_argument("--token", default=os.environ.get("DISCORD_TOKEN", "demo-token"))
    parser.add_argument(
        "--shards", type=int, default=0, help="run as AutoShardedBot with N shards (0: Bot)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    point_discord_at_env()  # RESTART_GUARD_DISCORD_API / _GATEWAY: the loopback stand-in

    bot_class: type[DemoBot] = guard_from(args)(ShardedDemoBot if args.shards else DemoBot)
    options = {"shard_count": args.shards} if args.shards else {}
    bot_class(**options).run(args.token, log_handler=None)
    log.info("demo bot: run() returned")


if __name__ == "__main__":
    main()

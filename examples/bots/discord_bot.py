"""A discord.py bot protected by restart-guard.

It differs from a plain discord.py bot only by ``import restart_guard`` and
the decorator on its class. Run it with a real token (and the Message
Content intent switched on in the developer portal)::

    pip install "restart-guard[discord]"
    DISCORD_TOKEN=... python examples/bots/discord_bot.py

``!think`` (or ``/think``) takes 30 seconds, like a slow LLM call: restart the
bot meanwhile (Ctrl-C, ``systemctl restart``, ``docker stop``, ``kill -9``)
and it tells you so in the same channel or thread when it is back. Markers
go to ``$RESTART_GUARD_DIR`` (default: your user state directory), in a
folder named after the bot's user id.

Offline, against the loopback stand-in of ``restart_guard.testing``: set
``RESTART_GUARD_DISCORD_API`` and ``RESTART_GUARD_DISCORD_GATEWAY`` (what
``DiscordStandIn.env_vars()`` returns) and any token.
"""

import asyncio
import os

import discord
from discord.ext import commands

import restart_guard

TOKEN = os.environ["DISCORD_TOKEN"]

if os.environ.get("RESTART_GUARD_DISCORD_API"):  # offline testing only
    from restart_guard.testing.discord import point_discord_at_env

    point_discord_at_env()


@restart_guard.protect(drain_timeout=20)
class ThinkingBot(commands.Bot):
    async def setup_hook(self) -> None:
        await self.tree.sync()


intents = discord.Intents.default()
intents.message_content = True
bot = ThinkingBot(command_prefix="!", intents=intents)


@bot.command()
async def think(ctx: commands.Context) -> None:
    await ctx.send("Thinking… (30 s)")
    await asyncio.sleep(30)
    await ctx.send("Here is my answer: 42.")


@bot.tree.command(name="think", description="think for 30 seconds")
async def think_slash(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("Thinking… (30 s)")
    await asyncio.sleep(30)
    await interaction.followup.send("Here is my answer: 42.")


if __name__ == "__main__":
    bot.run(TOKEN)

"""Fixes to the Discord stand-in made for the adapter's tests, each pinned here."""

from __future__ import annotations

import asyncio

import discord
import pytest

from restart_guard.testing.discord import DiscordStandIn, point_discord_at


async def test_deleting_a_channel_deletes_its_threads() -> None:
    # As on Discord: a notice for a thread of a deleted channel must fail (404),
    # not land in a thread that no longer exists.
    async with DiscordStandIn() as api:
        with point_discord_at(api):
            other_thread = api.add_thread(api.add_channel(api.guild_id, name="kept"), name="kept")
            client = discord.Client(intents=discord.Intents.default())
            await client.login("test-token")
            try:
                api.delete_channel(api.channel_id)
                for gone in (api.channel_id, api.thread_id):
                    channel = client.get_partial_messageable(gone, guild_id=api.guild_id)
                    with pytest.raises(discord.NotFound):
                        await channel.send("into the void")
                kept = client.get_partial_messageable(other_thread, guild_id=api.guild_id)
                await kept.send("still here")
                assert [m.text for m in api.sent] == ["still here"]
                fetch = client.fetch_channel(api.thread_id)
                with pytest.raises(discord.NotFound):
                    await asyncio.wait_for(fetch, 10)
            finally:
                await client.close()

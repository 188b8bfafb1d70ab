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


async def test_a_reply_to_a_missing_message_fails_unless_told_not_to() -> None:
    async with DiscordStandIn() as api:
        with point_discord_at(api):
            asked = api.inject_message(api.channel_id, "please", author_id=4242)
            client = discord.Client(intents=discord.Intents.default())
            await client.login("test-token")
            try:
                channel = client.get_partial_messageable(api.channel_id, guild_id=api.guild_id)
                missing = discord.MessageReference(message_id=1, channel_id=api.channel_id)
                with pytest.raises(discord.HTTPException) as refused:
                    await channel.send("x", reference=missing)
                assert (refused.value.status, refused.value.code) == (400, 50035)
                missing.fail_if_not_exists = False
                await channel.send("y", reference=missing)
                there = discord.MessageReference(message_id=asked, channel_id=api.channel_id)
                await channel.send(
                    "z <@7> <@8>",
                    reference=there,
                    allowed_mentions=discord.AllowedMentions(users=[discord.Object(7)]),
                )
            finally:
                await client.close()
        assert [(m.text, m.reply_to, m.mentions) for m in api.sent] == [
            ("y", None, ()),
            ("z <@7> <@8>", str(asked), ("7", "4242")),  # <@8> not allowed: not pinged
        ]

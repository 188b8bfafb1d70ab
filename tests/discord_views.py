"""Discord UI the tests build the same way: a prompt with one button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord
from discord.ext import commands

Press = Callable[[discord.Interaction], Awaitable[None]]


def ask_with_a_button(bot: commands.Bot, prompt: str, custom_id: str, on_press: Press) -> None:
    """Give ``bot`` an ``!ask`` command that posts ``prompt`` with one button, ``custom_id``;
    a press of it runs ``on_press(interaction)`` as the view's callback."""

    class OneButton(discord.ui.View):
        @discord.ui.button(label=custom_id, custom_id=custom_id)
        async def pressed(
            self, interaction: discord.Interaction, button: discord.ui.Button[OneButton]
        ) -> None:
            await on_press(interaction)

    @bot.command()
    async def ask(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.send(prompt, view=OneButton())

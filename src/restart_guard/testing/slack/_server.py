"""SlackStandIn: the loopback Slack a test starts."""

from __future__ import annotations

from aiohttp import web

from ._interactivity import _Interactivity
from ._model import (
    _PROXY_VARS,
    ENV_API,
    ENV_APP_TOKEN,
    ENV_BOT_TOKEN,
    ENV_SIGNING_SECRET,
)
from ._web_api import _WebApi


class SlackStandIn(_WebApi, _Interactivity):
    """Loopback Slack: Web API, Socket Mode websocket, signed Events API sender, buttons.

    Run it with ``async with SlackStandIn() as api:`` on the test's loop or
    ``with SlackStandIn.running() as api:`` in a background thread (see the
    module documentation for building ``App``/``AsyncApp`` against it). The
    keyword arguments override the identity (tokens, secret, ids; the
    defaults are the module constants); ``enterprise_id`` makes it an
    Enterprise Grid install (``auth.test`` and every event payload then carry
    it). ``ping_interval`` is how often it pings each Socket Mode client;
    ``redeliver`` turns off the redelivery of unacknowledged envelopes.
    """

    # ---------------------------------------------------------------- addresses
    @property
    def api_url(self) -> str:
        """Web API base URL, ``http://host:port/api/`` — ``WebClient(base_url=...)``."""
        return f"{self.url}/api/"

    def env(self, *, clear_proxy: bool = True) -> dict[str, str]:
        """Environment for a bot in a subprocess: base URL, tokens, signing secret.

        ``{ENV_API: api_url, "SLACK_BOT_TOKEN": ..., "SLACK_APP_TOKEN": ...,
        "SLACK_SIGNING_SECRET": ...}``; merge it into ``os.environ``. With
        ``clear_proxy`` the proxy variables are set empty, because slack_sdk
        would send even loopback traffic through a configured proxy.
        """
        result = {
            ENV_API: self.api_url,
            ENV_BOT_TOKEN: self.bot_token,
            ENV_APP_TOKEN: self.app_token,
            ENV_SIGNING_SECRET: self.signing_secret,
        }
        if clear_proxy:
            result.update(dict.fromkeys(_PROXY_VARS, ""))
        return result

    # ------------------------------------------------------------------ server
    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket_mode)
        app.router.add_post("/actions/{team}/{press}/{secret}", self._response_url)

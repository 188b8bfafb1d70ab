"""``parse_mode=HTML`` as the Telegram Bot API reads it: plain text plus entities.

Only what the stand-in needs to behave like Telegram for a notice: the
supported tags become entities (a ``tg://user?id=`` link a ``text_mention``),
anything else — an unknown tag, an unclosed or mismatched one, a bare ``<``
or ``&`` that is not an entity — is refused with Telegram's 400
"can't parse entities", so text that was not escaped fails here as it would there.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["HtmlError", "parse_html"]

_KINDS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "a": "text_link",
}
_TOKEN = re.compile(r"<(/?)([a-zA-Z-]+)((?:\s+[^<>]*)?)>|<|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|&")
_HREF = re.compile(r"""\s+href\s*=\s*(?:"([^"]*)"|'([^']*)')\s*$""")
_USER_LINK = re.compile(r"^tg://user\?id=(\d+)$")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlError(ValueError):
    """Text Telegram would refuse: the message is Telegram's description."""


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The plain text and entities Telegram makes of ``source``; :class:`HtmlError` if refused."""
    out: list[str] = []
    length = 0  # UTF-16 units written so far
    entities: list[dict[str, Any]] = []
    open_tags: list[tuple[str, int, dict[str, Any]]] = []
    position = 0
    for match in _TOKEN.finditer(source):
        plain = source[position : match.start()]
        out.append(plain)
        length += _utf16_len(plain)
        position = match.end()
        token = match.group(0)
        if token in ("<", "&"):
            raise HtmlError(f"Bad Request: can't parse entities: unexpected {token!r}")
        if token.startswith("&"):
            name = match.group(4)
            if name.startswith("#"):
                char = html.unescape(token)
            elif name in _NAMED:
                char = _NAMED[name]
            else:
                raise HtmlError(f"Bad Request: can't parse entities: unsupported entity {token}")
            out.append(char)
            length += _utf16_len(char)
            continue
        closing, tag, attributes = match.group(1), match.group(2).lower(), match.group(3)
        if tag not in _KINDS:
            raise HtmlError(f"Bad Request: can't parse entities: unsupported start tag {tag!r}")
        if closing:
            if not open_tags or open_tags[-1][0] != tag:
                raise HtmlError(f"Bad Request: can't parse entities: unmatched end tag {tag!r}")
            _, start, opened = open_tags.pop()
            if length > start:
                entities.append({**opened, "offset": start, "length": length - start})
            continue
        entity: dict[str, Any] = {"type": _KINDS[tag]}
        if tag == "a":
            href = _HREF.match(attributes or "")
            if href is None:
                raise HtmlError("Bad Request: can't parse entities: a tag without href")
            url = html.unescape(href.group(1) or href.group(2) or "")
            user = _USER_LINK.match(url)
            if user is not None:
                entity = {
                    "type": "text_mention",
                    "user": {"id": int(user.group(1)), "is_bot": False, "first_name": ""},
                }
            else:
                entity["url"] = url
        open_tags.append((tag, length, entity))
    if open_tags:
        raise HtmlError(
            f"Bad Request: can't parse entities: can't find end tag corresponding to start "
            f"tag {open_tags[-1][0]!r}"
        )
    out.append(source[position:])
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities

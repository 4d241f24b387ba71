"""DiscordChatExporter JSON exports (one channel per file).

``{"guild": {...}, "channel": {"id", "name", ...}, "messages": [...]}``;
each message has ``id`` (a snowflake, unique across Discord), ``type``
(``Default``, ``Reply``, ``GuildMemberJoin``…), ``timestamp`` (ISO 8601 with
offset), ``content``, ``author`` (``id``, ``name``, ``nickname``),
``attachments`` (``fileName``), ``stickers``, ``embeds``, ``mentions``
(``id``) and ``reference`` (``messageId``). The file is streamed (see
:mod:`.jsonstream`).

- id: the message id; group: ``--group``, else the channel id;
- name: the member's server nickname, else their user name;
- ``GuildMemberJoin``/``RecipientAdd`` → joins, ``RecipientRemove`` → leaves,
  other non-chat types (pins, thread creation, calls…) → ``system`` messages;
- content type from the attachments' file extensions, stickers and embeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from qunyun.importers.base import BadRow, Importer, Item, Progress, describe
from qunyun.importers.jsonstream import JsonBroken, JsonStream

CHAT_TYPES = frozenset({"Default", "Reply", "ThreadStarterMessage", "ChatInputCommand", "ContextMenuCommand"})
_IMAGE = frozenset({"png", "jpg", "jpeg", "gif", "webp", "bmp", "heic", "avif"})
_VIDEO = frozenset({"mp4", "mov", "webm", "mkv", "avi", "m4v"})
_VOICE = frozenset({"mp3", "ogg", "oga", "opus", "wav", "m4a", "flac", "aac"})


def _text_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise ValueError(f"{what} must be a non-empty string")
    return str(value)


def attachment_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in _IMAGE:
        return "image"
    if ext in _VIDEO:
        return "video"
    if ext in _VOICE:
        return "voice"
    return "file"


class DiscordImporter(Importer):
    format = "discord"
    platform = "discord"
    default_timezone = "UTC"
    summary = "DiscordChatExporter JSON (one channel per file)"

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        name = str(path)
        with open(path, "rb") as fh:
            stream = JsonStream(fh, progress)
            try:
                if stream.peek() != "{":
                    yield BadRow(name, stream.where(), "not a DiscordChatExporter export: the file is not a JSON object")
                    return
                channel: dict[str, Any] = {}
                for key in stream.fields():
                    if key == "messages" and stream.peek() == "[":
                        group = self.group_for(path, channel.get("id"))
                        for offset, obj in stream.elements():
                            try:
                                yield from self._convert(obj, group)
                            except (ValueError, KeyError, TypeError) as exc:
                                yield BadRow(name, stream.line_at(offset), describe(exc) + "; skipped")
                    elif key == "channel":
                        found = stream.value()
                        channel = found if isinstance(found, dict) else {}
                    else:
                        stream.skip()
            except JsonBroken as exc:
                yield BadRow(name, exc.line, exc.message + "; the rest of the file was not read")

    def _convert(self, obj: Any, group: str) -> Iterator[Item]:
        if not isinstance(obj, dict):
            raise ValueError("a message must be a JSON object")
        mid = _text_id(obj["id"], "id")
        stamp = obj["timestamp"]
        if not isinstance(stamp, str):
            raise ValueError("timestamp must be a string")
        ts = datetime.fromisoformat(stamp)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=self.tz)
        author = obj["author"]
        if not isinstance(author, dict):
            raise ValueError("author must be an object")
        actor = _text_id(author["id"], "author.id")
        nick = author.get("nickname") or author.get("name")
        nick = nick if isinstance(nick, str) else None
        kind = obj.get("type", "Default")
        if kind in ("GuildMemberJoin", "RecipientAdd"):
            yield self.joined(id=mid, ts=ts, group=group, actor=actor, name=nick)
            return
        if kind == "RecipientRemove":
            yield self.left(id=mid, ts=ts, group=group, actor=actor, name=nick)
            return
        content = obj.get("content") or ""
        if not isinstance(content, str):
            raise ValueError("content must be a string")
        if kind not in CHAT_TYPES:
            yield self.message(
                id=mid, ts=ts, group=group, actor=actor, name=nick,
                text=f"{kind}: {content}" if content else str(kind), content_type="system",
            )
            return
        attachments = obj.get("attachments") or []
        if obj.get("stickers"):
            ctype = "sticker"
        elif attachments and isinstance(attachments, list) and isinstance(attachments[0], dict):
            ctype = attachment_type(str(attachments[0].get("fileName") or attachments[0].get("url") or ""))
        elif obj.get("embeds") and ("http://" in content or "https://" in content):
            ctype = "link"
        else:
            ctype = "text"
        mentions = [
            str(m["id"]) for m in (obj.get("mentions") or []) if isinstance(m, dict) and m.get("id") not in (None, "")
        ]
        reference = obj.get("reference")
        reply = None
        if isinstance(reference, dict) and reference.get("messageId"):
            reply = str(reference["messageId"])
        yield self.message(
            id=mid, ts=ts, group=group, actor=actor, name=nick, text=content,
            content_type=ctype, mentions=mentions, reply_to=reply,
        )

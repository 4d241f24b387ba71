"""Telegram Desktop JSON exports (``result.json``).

Two shapes: one chat (``{"name", "type", "id", "messages": [...]}``) or a
full account export (``{"chats": {"list": [chat, ...]}, "left_chats": ...}``),
of which the group chats (``private_group``, ``private_supergroup``,
``public_supergroup``) are imported — personal chats, bots and channels are
not a community. The file is streamed (see :mod:`.jsonstream`).

- id: ``<chat id>:<message id>``; group: ``--group``, else the chat id;
- time: ``date_unixtime`` (absolute), else ``date`` read in the import's
  time zone (Telegram Desktop writes the exporting computer's local time);
- who: ``from_id``/``actor_id`` — ``user123`` and ``123`` are the same
  person (id ``123``); ``channel…`` ids stay as they are;
- ``text`` is a string or an array of strings and entity objects; a
  ``mention_name`` entity's ``user_id`` becomes a mention;
- service messages: ``join_group_by_link``/``join_group_by_request`` and an
  ``invite_members`` of oneself are joins; ``invite_members`` of others and
  ``remove_members`` name the members only by display name, so they become
  joins/leaves when that name was seen with an id earlier in the export, and
  are counted as skipped otherwise; other actions (pins, title changes…)
  become ``system`` messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from qunyun.importers.base import BadRow, Importer, Item, Progress, describe
from qunyun.importers.jsonstream import JsonBroken, JsonStream

_ID_TYPES = (int, str)  # exact types: a JSON true is not an id
GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})

MEDIA: dict[str, str] = {
    "sticker": "sticker",
    "voice_message": "voice",
    "audio_file": "voice",
    "video_message": "video",
    "video_file": "video",
    "animation": "video",
}


def person(value: Any) -> str | None:
    """A Telegram sender id as a member id: ``user123``/``123`` → ``123``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("user") and value[4:].isdigit():
            return str(value[4:])
        return str(value) or None
    raise ValueError(f"sender id must be a string or a number, not {type(value).__name__}")


def flatten(text: Any) -> tuple[str, list[str], bool]:
    """``text`` (string or entity array) → (plain text, mentioned user ids, has a link)."""
    if isinstance(text, str):
        return text, [], False
    if not isinstance(text, list):
        raise ValueError("text must be a string or an array")
    parts: list[str] = []
    mentions: list[str] = []
    link = False
    for piece in text:
        if isinstance(piece, str):
            parts.append(piece)
        elif isinstance(piece, dict):
            body = piece.get("text", "")
            parts.append(body if isinstance(body, str) else "")
            kind = piece.get("type")
            if kind == "mention_name" and piece.get("user_id") is not None:
                uid = person(piece["user_id"])
                if uid:
                    mentions.append(uid)
            elif kind in ("link", "text_link"):
                link = True
    return "".join(parts), mentions, link


class TelegramImporter(Importer):
    format = "telegram"
    platform = "telegram"
    default_timezone = "UTC"
    summary = "Telegram Desktop result.json (one chat or a full export)"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: display name → id, learned from messages, for service messages that name people only
        self.known: dict[str, str] = {}
        self._people: dict[Any, str] = {}

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        name = str(path)
        with open(path, "rb") as fh:
            stream = JsonStream(fh, progress)
            try:
                if stream.peek() != "{":
                    yield BadRow(name, stream.where(), "not a Telegram export: the file is not a JSON object")
                    return
                yield from self._top(stream, path)
                if stream.skip_ws() != "":
                    yield BadRow(name, stream.where(), "unexpected data after the end of the export; ignored")
            except JsonBroken as exc:
                yield BadRow(name, exc.line, exc.message + "; the rest of the file was not read")

    def _top(self, stream: JsonStream, path: Path) -> Iterator[Item]:
        meta: dict[str, Any] = {}
        for key in stream.fields():
            if key == "messages" and stream.peek() == "[":
                yield from self._messages(stream, path, meta, single=True)
            elif key in ("chats", "left_chats") and stream.peek() == "{":
                for sub in stream.fields():
                    if sub == "list" and stream.peek() == "[":
                        for _line in stream.items():
                            if stream.peek() == "{":
                                yield from self._chat(stream, path)
                            else:
                                stream.skip()
                    else:
                        stream.skip()
            elif key in ("name", "type", "id"):
                meta[key] = stream.value()
            else:
                stream.skip()

    def _chat(self, stream: JsonStream, path: Path) -> Iterator[Item]:
        meta: dict[str, Any] = {}
        for key in stream.fields():
            if key == "messages" and stream.peek() == "[":
                kind = meta.get("type")
                if kind is not None and (type(kind) is not str or kind not in GROUP_TYPES):
                    self.counts["chats skipped (not a group)"] += 1
                    stream.skip()
                    continue
                yield from self._messages(stream, path, meta, single=False)
            elif key in ("name", "type", "id"):
                meta[key] = stream.value()
            else:
                stream.skip()

    def _messages(self, stream: JsonStream, path: Path, meta: dict[str, Any], *, single: bool) -> Iterator[Item]:
        name = str(path)
        chat = meta.get("id")
        if chat is None or isinstance(chat, bool) or not isinstance(chat, int | str):
            chat = path.stem if single else None
        if chat is None:
            chat = meta.get("name") or "chat"
        chat = str(chat)
        if not single and self.group and self.group not in (chat, meta.get("name")):
            self.counts["chats skipped (not the --group chat)"] += 1
            stream.skip()
            return
        group = self.group_for(path, chat)
        self.counts["chats"] += 1
        for offset, obj in stream.elements():
            try:
                yield from self._convert(obj, chat, group)
            except (ValueError, KeyError, TypeError, OverflowError) as exc:
                yield BadRow(name, stream.line_at(offset), describe(exc) + "; skipped")

    def _time(self, obj: dict[str, Any]) -> datetime:
        unix = obj.get("date_unixtime")
        if unix is not None:
            return datetime.fromtimestamp(int(unix), self.tz)
        date = obj["date"]
        if type(date) is not str:
            raise ValueError("date must be a string")
        ts = datetime.fromisoformat(date)
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=self.tz)

    def _convert(self, obj: Any, chat: str, group: str) -> Iterator[Item]:
        if type(obj) is not dict:
            raise ValueError("a message must be a JSON object")
        mid = obj["id"]
        if type(mid) not in _ID_TYPES or mid == "":
            raise ValueError("id must be a number")
        event_id = f"{chat}:{mid}"
        ts = self._time(obj)
        kind = obj.get("type", "message")
        if kind != "message":
            if kind == "service":
                yield from self._service(obj, event_id, ts, chat, group)
            else:
                self.counts[f"skipped ({kind})"] += 1
            return
        raw = obj.get("from_id")
        actor = self._people.get(raw) if type(raw) in _ID_TYPES else None
        if actor is None:
            actor = person(raw)
            if actor is None:
                raise ValueError("the message has no from_id")
            if len(self._people) < 100_000:
                self._people[raw] = actor
        nick = obj.get("from")
        if type(nick) is str and nick:
            self.known[nick] = actor
        else:
            nick = None
        text = obj.get("text", "")
        if type(text) is str:
            mentions: list[str] = []
            link = False
        else:
            text, mentions, link = flatten(text)
        media = obj.get("media_type")
        if media is not None:
            ctype = MEDIA.get(media, "file") if type(media) is str else "file"
        elif "photo" in obj:
            ctype = "image"
        elif "file" in obj:
            ctype = "file"
        elif link:
            ctype = "link"
        else:
            ctype = "text"
        reply = obj.get("reply_to_message_id")
        yield self.message(
            id=event_id,
            ts=ts,
            group=group,
            actor=actor,
            name=nick,
            text=text,
            content_type=ctype,
            mentions=mentions,
            reply_to=f"{chat}:{reply}" if type(reply) in _ID_TYPES else None,
        )

    def _service(self, obj: dict[str, Any], event_id: str, ts: datetime, chat: str, group: str) -> Iterator[Item]:
        action = obj.get("action")
        actor = person(obj.get("actor_id"))
        nick = obj.get("actor") if isinstance(obj.get("actor"), str) else None
        if actor is None:
            raise ValueError("the service message has no actor_id")
        if nick:
            self.known[nick] = actor
        if action in ("join_group_by_link", "join_group_by_request"):
            via = "link" if action == "join_group_by_link" else "approve"
            yield self.joined(id=event_id, ts=ts, group=group, actor=actor, name=nick, via=via)
            return
        if action in ("invite_members", "remove_members"):
            members = obj.get("members") or []
            if not isinstance(members, list):
                raise ValueError("members must be an array")
            for n, member in enumerate(members):
                if not isinstance(member, str):
                    continue
                uid = actor if member == nick else self.known.get(member)
                if uid is None:
                    self.counts["joins/leaves naming an unknown person (skipped)"] += 1
                    continue
                eid = event_id if len(members) == 1 else f"{event_id}:{n}"
                if action == "invite_members":
                    inviter = None if uid == actor else actor
                    yield self.joined(
                        id=eid, ts=ts, group=group, actor=uid, name=member, inviter=inviter,
                        via="invite" if inviter else "unknown",
                    )
                else:
                    yield self.left(id=eid, ts=ts, group=group, actor=uid, name=member, by=None if uid == actor else actor)
            return
        text, _mentions, _link = flatten(obj.get("text", ""))
        detail = obj.get("title") if isinstance(obj.get("title"), str) else text
        yield self.message(
            id=event_id, ts=ts, group=group, actor=actor, name=nick,
            text=f"{action}: {detail}" if detail else str(action), content_type="system",
        )

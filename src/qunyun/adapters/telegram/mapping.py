"""Telegram updates ⇄ qunyun events and message entities (pure functions, no I/O).

Written from the published Bot API (https://core.telegram.org/bots/api):
``Update``, ``Message``, ``MessageEntity``, ``ChatMemberUpdated``,
``MessageReactionUpdated``. Updates arrive already validated as aiogram's
typed models (:class:`aiogram.types.Update`); :func:`update_to_events` turns
one into zero or more event dicts, or raises :class:`PayloadError` naming
what is wrong.

**Offsets are UTF-16.** Telegram counts entity offsets and lengths in UTF-16
code units: an emoji outside the Basic Multilingual Plane (😀) is two units,
a Chinese character one. :func:`utf16_len` and :func:`utf16_slice` do that
arithmetic for both directions (reading ``mention`` entities, writing
``text_mention`` entities).

**Event ids** do not depend on ``update_id``, so an update delivered twice
(a webhook retried, polling restarted before its offset was confirmed) gives
the same id and the engine treats the second as a duplicate:

- message ``<chat>/msg/<message_id>``; edit ``<chat>/edit/<message_id>/<edit_date>``
- reaction ``<chat>/react/<message_id>/<actor>/<emoji>/<date>``
- member change ``<chat>/join/<user>/<date>`` and ``<chat>/left/<user>/<date>``,
  the same whether a service message or a ``chat_member`` update described it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram.types import Chat, Message, MessageReactionUpdated, Update, User
from pydantic import BaseModel, ConfigDict, Field

from qunyun.adapters.base import PayloadError
from qunyun.core.text import display_name

#: The update types the adapter asks for (``allowed_updates``). ``chat_member``
#: and ``message_reaction`` are only sent when asked for explicitly, and only
#: to a bot that is an administrator of the group.
ALLOWED_UPDATES = ("message", "edited_message", "message_reaction", "chat_member", "my_chat_member")

GROUP_TYPES = frozenset({"group", "supergroup"})

#: Message content fields → our content_type (first match wins).
_MEDIA = (
    ("photo", "image"),
    ("video", "video"),
    ("animation", "video"),
    ("video_note", "video"),
    ("voice", "voice"),
    ("audio", "voice"),
    ("document", "file"),
    ("sticker", "sticker"),
    ("dice", "sticker"),
)
#: Fields that make a message something a member posted (not a service message).
_CONTENT = frozenset(
    {"text", "caption", "photo", "video", "animation", "video_note", "voice", "audio", "document", "sticker", "dice",
     "poll", "location", "venue", "contact", "story", "game", "paid_media", "checklist"}
)
#: Where a mention written as "@name" ends when we do not know the name.
_TOKEN_END = re.compile(r"[\s,，、。.!！?？:：;；)）\]】]")

#: A text message is at most 4096 characters (counted here in UTF-16 units, the stricter reading).
MAX_TEXT = 4096


# ------------------------------------------------- chat member updates

class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class TgUser(_Loose):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None


class TgChat(_Loose):
    id: int
    type: str
    title: str | None = None
    username: str | None = None


class TgMember(_Loose):
    """A ChatMember: only what qunyun reads is required.

    aiogram's ChatMember union requires every right of the newest Bot API
    version (a ``ChatMemberAdministrator`` without a right added last month
    fails to validate), which would make a perfectly good ``chat_member``
    update — or a self-hosted Bot API server one version behind — unreadable.
    """

    status: str
    user: TgUser
    is_member: bool | None = None
    until_date: int | None = None


class TgMemberUpdated(_Loose):
    """ChatMemberUpdated (``chat_member`` and ``my_chat_member`` updates)."""

    chat: TgChat
    from_user: TgUser = Field(alias="from")
    date: int
    old_chat_member: TgMember
    new_chat_member: TgMember
    invite_link: dict[str, Any] | None = None
    via_join_request: bool = False
    via_chat_folder_invite_link: bool = False


class TgMemberUpdate(_Loose):
    update_id: int
    chat_member: TgMemberUpdated | None = None
    my_chat_member: TgMemberUpdated | None = None


# ------------------------------------------------------------------ UTF-16


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what Telegram's offsets count)."""
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of ``text`` at UTF-16 ``offset`` of UTF-16 ``length``."""
    raw = text.encode("utf-16-le")
    return raw[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="replace")


# ------------------------------------------------------------- who is who


@dataclass
class Known:
    name: str | None
    username: str | None


class Directory:
    """Users seen in updates: id → name/username and username → id (bounded, least recently seen goes first).

    ``mention`` entities carry only "@username"; this is how they become
    member ids. Outgoing mentions use the names to find "@name" in the text.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._by_id: OrderedDict[str, Known] = OrderedDict()
        self._by_username: dict[str, str] = {}

    def see(self, user: User | TgUser | None) -> None:
        if user is None:
            return
        uid = str(user.id)
        known = Known(full_name(user), user.username)
        old = self._by_id.pop(uid, None)
        if old is not None and old.username:
            self._by_username.pop(old.username.lower(), None)
        self._by_id[uid] = known
        if user.username:
            self._by_username[user.username.lower()] = uid
        while len(self._by_id) > self.size:
            _, gone = self._by_id.popitem(last=False)
            if gone.username and self._by_username.get(gone.username.lower()) not in self._by_id:
                self._by_username.pop(gone.username.lower(), None)

    def by_username(self, username: str) -> str | None:
        return self._by_username.get(username.lstrip("@").lower())

    def name(self, uid: str) -> str | None:
        known = self._by_id.get(uid)
        return known.name if known else None


def full_name(user: User | TgUser) -> str:
    return " ".join(p for p in (user.first_name, user.last_name) if p).strip() or (user.username or str(user.id))


# ------------------------------------------------------------------ events


def iso(when: datetime | int) -> str:
    if isinstance(when, int):
        try:
            when = datetime.fromtimestamp(when, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(f"field 'date' is out of range: {when!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _unix(when: datetime | int) -> int:
    return when if isinstance(when, int) else int(when.timestamp())


def _group(chat: Chat | TgChat, rooms: Mapping[str, str]) -> str:
    room = str(chat.id)
    return rooms.get(room, room)


def _actor(user: User | TgUser | None, sender_chat: Chat | TgChat | None) -> dict[str, Any]:
    """Who did it: the chat they spoke for (anonymous admin, channel) or the user."""
    if sender_chat is not None:
        return {"id": str(sender_chat.id), "name": sender_chat.title or sender_chat.username, "chat": True}
    if user is None:
        raise PayloadError("the update says nothing about who did it (no 'from', no 'sender_chat')")
    actor: dict[str, Any] = {"id": str(user.id), "name": full_name(user)}
    if user.username:
        actor["username"] = user.username
    if user.is_bot:
        actor["bot"] = True
    return actor


def _message_fields(message: Message, directory: Directory) -> dict[str, Any]:
    text = message.text if message.text is not None else (message.caption or "")
    entities = message.entities if message.text is not None else message.caption_entities
    mentions: list[str] = []
    unresolved: list[str] = []
    has_link = False
    total = utf16_len(text)
    for i, entity in enumerate(entities or ()):
        if entity.offset < 0 or entity.length < 0 or entity.offset + entity.length > total:
            raise PayloadError(f"field 'entities.{i}': offset {entity.offset}+{entity.length} is outside the text")
        if entity.type == "text_mention":
            if entity.user is None:
                raise PayloadError(f"field 'entities.{i}.user': a text_mention without its user")
            directory.see(entity.user)
            uid = str(entity.user.id)
            if uid not in mentions:
                mentions.append(uid)
        elif entity.type == "mention":
            handle = utf16_slice(text, entity.offset, entity.length)
            found = directory.by_username(handle)
            if found is None:
                unresolved.append(handle)
            elif found not in mentions:
                mentions.append(found)
        elif entity.type in ("url", "text_link"):
            has_link = True
    content_type = "text"
    for attr, kind in _MEDIA:
        if getattr(message, attr, None):
            content_type = kind
            break
    else:
        if has_link:
            content_type = "link"
    reply_to: str | None = None
    parent = message.reply_to_message
    # In a forum topic every message "replies" to the topic's first message; that is not a reply.
    if parent is not None and not (message.is_topic_message and parent.message_id == message.message_thread_id):
        reply_to = str(parent.message_id)
    fields: dict[str, Any] = {
        "text": text,
        "content_type": content_type,
        "mentions": mentions,
        "reply_to": reply_to,
    }
    if unresolved:
        fields["unresolved_mentions"] = unresolved
    return fields


def _is_content(message: Message) -> bool:
    return any(getattr(message, f, None) is not None for f in _CONTENT)


def _present(member: Any) -> bool:
    """Is this ChatMember in the chat? (restricted members may or may not be.)"""
    status = getattr(member, "status", None)
    if status in ("creator", "administrator", "member"):
        return True
    if status == "restricted":
        return bool(getattr(member, "is_member", False))
    return False


@dataclass(frozen=True)
class MemberChange:
    """Who joined or left which chat when: used to drop a second description of it."""

    room: str
    user: str
    transition: str  # "join" | "left"
    date: int


def member_change(event: Mapping[str, Any]) -> MemberChange | None:
    tg = event.get("telegram")
    if event.get("type") not in ("member_joined", "member_left") or not isinstance(tg, dict):
        return None
    return MemberChange(str(tg["chat"]), str(event["actor"]["id"]),
                        "join" if event["type"] == "member_joined" else "left", int(tg["date"]))


def _member_event(
    chat: Chat | TgChat, user: User | TgUser, date: datetime | int, joined: bool, rooms: Mapping[str, str],
    platform: str, *, by: User | TgUser | None, via: str, update_id: int, source: str,
) -> dict[str, Any]:
    unix = _unix(date)
    kind = "join" if joined else "left"
    event: dict[str, Any] = {
        "v": 1, "id": f"{chat.id}/{kind}/{user.id}/{unix}", "ts": iso(date), "platform": platform,
        "group": _group(chat, rooms), "actor": _actor(user, None),
        "telegram": {"chat": chat.id, "date": unix, "update_id": update_id, "source": source},
    }
    other = str(by.id) if by is not None and by.id != user.id else None
    if joined:
        if other is not None and via == "unknown":
            via = "invite"  # someone else added them
        event.update(type="member_joined", via=via, inviter=other if via == "invite" else None)
    else:
        event.update(type="member_left", by=other)
    return event


def _from_message(
    update_id: int, message: Message, rooms: Mapping[str, str], platform: str, directory: Directory, *, edited: bool
) -> list[dict[str, Any]]:
    chat = message.chat
    directory.see(message.from_user)
    group = _group(chat, rooms)
    tg = {"chat": chat.id, "update_id": update_id}
    if message.new_chat_members:
        out = []
        for user in message.new_chat_members:
            directory.see(user)
            out.append(_member_event(chat, user, message.date, True, rooms, platform, by=message.from_user,
                                     via="unknown", update_id=update_id, source="message"))
        return out
    if message.left_chat_member is not None:
        directory.see(message.left_chat_member)
        return [_member_event(chat, message.left_chat_member, message.date, False, rooms, platform,
                              by=message.from_user, via="unknown", update_id=update_id, source="message")]
    if not _is_content(message):
        return []  # service messages (pinned, title changed, topic created…) are not events
    actor = _actor(message.from_user, message.sender_chat)
    fields = _message_fields(message, directory)
    if message.message_thread_id is not None and message.is_topic_message:
        tg["topic"] = message.message_thread_id
    if edited:
        stamp = message.edit_date if message.edit_date is not None else message.date
        return [{
            "v": 1, "id": f"{chat.id}/edit/{message.message_id}/{_unix(stamp)}", "ts": iso(stamp),
            "platform": platform, "group": group, "type": "edit", "actor": actor,
            "target": str(message.message_id), "text": fields["text"], "telegram": tg,
        }]
    if "unresolved_mentions" in fields:
        tg["unresolved_mentions"] = fields.pop("unresolved_mentions")
    return [{
        "v": 1, "id": f"{chat.id}/msg/{message.message_id}", "ts": iso(message.date), "platform": platform,
        "group": group, "type": "message", "actor": actor, "msg_id": str(message.message_id), **fields,
        "telegram": tg,
    }]


def _from_chat_member(update_id: int, change: TgMemberUpdated, rooms: Mapping[str, str], platform: str,
                      directory: Directory) -> list[dict[str, Any]]:
    before, after = _present(change.old_chat_member), _present(change.new_chat_member)
    if before == after:
        return []  # promoted, restricted, title changed…: not a membership change
    user = change.new_chat_member.user
    directory.see(user)
    directory.see(change.from_user)
    via = "unknown"
    if change.via_join_request:
        via = "approve"
    elif change.invite_link is not None or change.via_chat_folder_invite_link:
        via = "link"
    return [_member_event(change.chat, user, change.date, after, rooms, platform, by=change.from_user, via=via,
                          update_id=update_id, source="chat_member")]


def _emoji(reaction: Any) -> str | None:
    kind = getattr(reaction, "type", None)
    if kind == "emoji":
        return str(reaction.emoji)
    if kind == "custom_emoji":
        return f"custom:{reaction.custom_emoji_id}"
    if kind == "paid":
        return "paid"
    return None


def _from_reaction(update_id: int, r: MessageReactionUpdated, rooms: Mapping[str, str], platform: str,
                   directory: Directory) -> list[dict[str, Any]]:
    directory.see(r.user)
    actor = _actor(r.user, r.actor_chat)
    before = {e for e in map(_emoji, r.old_reaction) if e}
    unix = _unix(r.date)
    out = []
    for emoji in dict.fromkeys(e for e in map(_emoji, r.new_reaction) if e):
        if emoji in before:
            continue  # kept, not added
        out.append({
            "v": 1, "id": f"{r.chat.id}/react/{r.message_id}/{actor['id']}/{emoji}/{unix}", "ts": iso(r.date),
            "platform": platform, "group": _group(r.chat, rooms), "type": "reaction", "actor": actor,
            "target": str(r.message_id), "emoji": emoji[:64], "telegram": {"chat": r.chat.id, "update_id": update_id},
        })
    return out


def update_to_events(
    update: Update | TgMemberUpdate, *, platform: str, rooms: Mapping[str, str], directory: Directory
) -> list[dict[str, Any]]:
    """The events one update describes (often one, none for what qunyun has no use for)."""
    uid = update.update_id
    if isinstance(update, TgMemberUpdate):
        change = update.chat_member
        if change is None or change.chat.type not in GROUP_TYPES:
            return []
        return _from_chat_member(uid, change, rooms, platform, directory)
    if update.message is not None or update.edited_message is not None:
        message = update.message or update.edited_message
        assert message is not None
        if message.chat.type not in GROUP_TYPES:
            return []  # private chats and channels are not groups
        return _from_message(uid, message, rooms, platform, directory, edited=update.message is None)
    if update.message_reaction is not None:
        if update.message_reaction.chat.type not in GROUP_TYPES:
            return []
        return _from_reaction(uid, update.message_reaction, rooms, platform, directory)
    return []


# ------------------------------------------------------------ outgoing text


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def _find(text: str, needle: str, spans: Sequence[tuple[int, int]], cursor: int) -> int:
    """First occurrence of ``needle`` at or after ``cursor`` (then from the start) not inside a span."""
    for origin in (cursor, 0):
        pos = text.find(needle, origin)
        while pos >= 0:
            if not _overlaps(pos, pos + len(needle), spans):
                return pos
            pos = text.find(needle, pos + 1)
    return -1


def mention_entities(text: str, mentions: Sequence[str], names: Mapping[str, str | None]) -> tuple[str, list[dict[str, Any]]]:
    """``text`` with a ``text_mention`` entity for each mentioned member (offsets in UTF-16).

    Playbooks write mentions as "@<name>" with the name as :func:`display_name`
    shows it. Each member's "@name" (or "@<id>") is looked for in the text;
    members whose name is not found take the next "@word" not yet used; a
    member still without a place is appended as "@name" at the end, so
    everyone mentioned is notified. Returns the (possibly longer) text and
    the entities sorted by offset.
    """
    ids = [m for m in dict.fromkeys(str(m) for m in mentions) if m.isdigit()]
    spans: list[tuple[int, int]] = []
    placed: dict[str, tuple[int, int]] = {}
    cursor = 0
    for uid in ids:
        label = display_name(names.get(uid), uid)
        for needle in dict.fromkeys((f"@{label}", f"@{uid}")):
            pos = _find(text, needle, spans, cursor)
            if pos >= 0:
                placed[uid] = (pos, pos + len(needle))
                spans.append(placed[uid])
                cursor = pos + len(needle)
                break
    cursor = 0
    for uid in ids:
        if uid in placed:
            continue
        pos = text.find("@", cursor)
        while pos >= 0:
            stop = _TOKEN_END.search(text, pos + 1)
            end = stop.start() if stop else len(text)
            if end > pos + 1 and not _overlaps(pos, end, spans):
                placed[uid] = (pos, end)
                spans.append((pos, end))
                cursor = end
                break
            pos = text.find("@", pos + 1)
    for uid in ids:
        if uid in placed:
            continue
        label = "@" + display_name(names.get(uid), uid)
        if text and not text[-1].isspace():
            text += " "
        placed[uid] = (len(text), len(text) + len(label))
        text += label
    entities: list[dict[str, Any]] = []
    for uid, (start, end) in placed.items():
        entities.append({
            "type": "text_mention",
            "offset": utf16_len(text[:start]),
            "length": utf16_len(text[start:end]),
            "user": {"id": int(uid), "is_bot": False, "first_name": display_name(names.get(uid), uid)},
        })
    entities.sort(key=lambda e: int(e["offset"]))
    return text, entities


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 units, cut at line ends where possible."""
    if utf16_len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while utf16_len(line) > limit:  # one line longer than a message: cut it hard
            room = limit - utf16_len(current)
            if room <= 0:
                pieces.append(current)
                current, room = "", limit
            cut = units = 0
            for ch in line:
                width = 2 if ord(ch) > 0xFFFF else 1
                if units + width > room:
                    break
                units += width
                cut += 1
            current += line[:cut]
            line = line[cut:]
            pieces.append(current)
            current = ""
        if utf16_len(current + line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()] or [text[:limit]]

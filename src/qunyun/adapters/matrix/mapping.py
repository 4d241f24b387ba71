"""Matrix events ⇄ qunyun events and actions (pure functions, no I/O).

Written from the Matrix client-server specification (v1.11: ``m.room.member``,
``m.room.message`` and its msgtypes, ``m.mentions``, rich replies, event
replacements ``m.replace``, annotations ``m.reaction``, ``m.room.redaction``)
and checked against what Synapse 1.163 really sends (the recorded payloads
in ``fixtures/``).

:func:`to_event` returns the qunyun event dict for a room event qunyun uses,
``None`` for the ones it has no use for (state it does not track, profile
changes, invites, its own events, redacted leftovers), and raises
:class:`~qunyun.adapters.base.PayloadError` naming the field when an event
claims to be one of ours but is malformed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qunyun.adapters.base import PayloadError
from qunyun.core.text import display_name

#: Matrix msgtype → our content_type.
MSGTYPES = {
    "m.text": "text",
    "m.notice": "text",
    "m.emote": "text",
    "m.image": "image",
    "m.file": "file",
    "m.audio": "voice",
    "m.video": "video",
    "m.location": "text",
}

#: What the adapter can do on Matrix. ``mute`` is left out on purpose (see docs/matrix.md).
CAPABILITIES = frozenset({"send", "direct", "remove", "delete", "invite", "create_group", "pin", "notify_admins"})

_MATRIX_TO_USER = re.compile(r"""href=["']https://matrix\.to/#/(@[^"'?/]+)""")
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


def _id(value: Any, field: str) -> str:
    if isinstance(value, str) and _ID.match(value):
        return value
    raise PayloadError(f"field {field!r} is missing or not a usable id: {str(value)[:60]!r}")


def _ts(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError("field 'origin_server_ts' is missing or not milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"field 'origin_server_ts' is out of range: {value!r}") from None


def _content(event: Mapping[str, Any]) -> dict[str, Any]:
    content = event.get("content")
    if not isinstance(content, dict):
        raise PayloadError("field 'content' is missing or not an object")
    return content


def _prev_membership(event: Mapping[str, Any]) -> str | None:
    unsigned = event.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    if not isinstance(prev, dict):
        prev = event.get("prev_content")  # older servers put it at the top level
    value = prev.get("membership") if isinstance(prev, dict) else None
    return value if isinstance(value, str) else None


def strip_reply_fallback(body: str) -> str:
    """The body without the ``> <@user> quoted text`` lines old clients put before a reply."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def mentions_of(content: Mapping[str, Any], self_id: str | None = None) -> list[str]:
    """Who a message mentions: ``m.mentions.user_ids``; for clients that do not send it, the pills."""
    found: list[str] = []
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        ids = mentions.get("user_ids")
        if isinstance(ids, list):
            found = [u for u in ids if isinstance(u, str) and _ID.match(u)]
    else:
        formatted = content.get("formatted_body")
        if isinstance(formatted, str):
            found = [html.unescape(u) for u in _MATRIX_TO_USER.findall(formatted)]
    out: list[str] = []
    for uid in found:
        if uid not in out and uid != self_id:
            out.append(uid)
    return out[:10_000]


def to_event(
    ev: Mapping[str, Any],
    *,
    room: str,
    group: str,
    platform: str,
    self_id: str,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """One Matrix room event (as ``/sync`` or ``/messages`` returns it) as a qunyun event dict, or None."""
    if not isinstance(ev, Mapping):
        raise PayloadError("a room event must be a JSON object")
    etype = ev.get("type")
    if not isinstance(etype, str):
        raise PayloadError("field 'type' is missing")
    if etype not in ("m.room.member", "m.room.message", "m.sticker", "m.reaction", "m.room.redaction"):
        return None
    sender = _id(ev.get("sender"), "sender")
    unsigned = ev.get("unsigned")
    if isinstance(unsigned, dict) and "redacted_because" in unsigned:
        return None  # already redacted: nothing left to read
    names = names or {}
    base: dict[str, Any] = {
        "v": 1,
        "id": _id(ev.get("event_id"), "event_id"),
        "ts": _ts(ev.get("origin_server_ts")),
        "platform": platform,
        "group": group,
        "matrix_room": room,
    }
    content = _content(ev)

    if etype == "m.room.member":
        target = _id(ev.get("state_key"), "state_key")
        if target == self_id:
            return None  # the bot's own membership is the adapter's business, not the engine's
        membership = content.get("membership")
        prev = _prev_membership(ev)
        name = content.get("displayname")
        name = name if isinstance(name, str) else names.get(target)
        if membership == "join":
            if prev == "join":
                return None  # a display name or avatar change
            via = "invite" if prev == "invite" else "unknown"
            inviter = None
            if via == "invite" and isinstance(unsigned, dict):
                prev_sender = unsigned.get("prev_sender")
                if isinstance(prev_sender, str) and _ID.match(prev_sender) and prev_sender != target:
                    inviter = prev_sender
            return {**base, "type": "member_joined", "actor": {"id": target, "name": name},
                    "via": via, "inviter": inviter}
        if membership in ("leave", "ban"):
            if prev != "join":
                return None  # a refused or withdrawn invite, a ban of someone not in the room
            by = sender if sender != target else None
            return {**base, "type": "member_left", "actor": {"id": target, "name": names.get(target)},
                    "by": by, "matrix_membership": "ban" if membership == "ban" else ("kick" if by else "leave")}
        if membership == "knock":
            reason = content.get("reason")
            return {**base, "type": "join_request", "actor": {"id": target, "name": name},
                    "answers": {"reason": reason} if isinstance(reason, str) and reason else {}}
        if membership == "invite":
            return None  # an invitation is not a member yet; the join that follows says via=invite
        if isinstance(membership, str):
            return None
        raise PayloadError("field 'content.membership' is missing")

    if sender == self_id:
        return None
    actor = {"id": sender, "name": names.get(sender)}

    if etype == "m.room.redaction":
        redacts = ev.get("redacts") or content.get("redacts")
        return {**base, "type": "recall", "actor": actor, "target": _id(redacts, "redacts")}

    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, dict) else {}

    if etype == "m.reaction":
        if relates.get("rel_type") != "m.annotation":
            return None
        key = relates.get("key")
        if not isinstance(key, str) or not key:
            raise PayloadError("field 'content.m.relates_to.key' (the reaction) is missing")
        return {**base, "type": "reaction", "actor": actor, "target": _id(relates.get("event_id"), "m.relates_to.event_id"),
                "emoji": key[:64]}

    # m.room.message / m.sticker
    if relates.get("rel_type") == "m.replace":
        new = content.get("m.new_content")
        body = new.get("body") if isinstance(new, dict) else content.get("body")
        if not isinstance(body, str):
            raise PayloadError("field 'content.m.new_content.body' is missing")
        return {**base, "type": "edit", "actor": actor, "target": _id(relates.get("event_id"), "m.relates_to.event_id"),
                "text": body}
    body = content.get("body")
    if etype == "m.sticker":
        content_type = "sticker"
    else:
        msgtype = content.get("msgtype")
        if not isinstance(msgtype, str):
            raise PayloadError("field 'content.msgtype' is missing")
        content_type = MSGTYPES.get(msgtype, "text")
    if not isinstance(body, str):
        raise PayloadError("field 'content.body' is missing or not text")
    reply = relates.get("m.in_reply_to")
    reply_to = None
    if isinstance(reply, dict) and reply.get("event_id") is not None:
        reply_to = _id(reply.get("event_id"), "m.relates_to.m.in_reply_to.event_id")
        body = strip_reply_fallback(body)
    text = body
    if content_type in ("image", "file", "voice", "video", "sticker"):
        # spec v1.10: media with a `filename` different from `body` has a caption; otherwise `body` is the file name
        filename = content.get("filename")
        text = body if isinstance(filename, str) and filename != body else ""
    out = {**base, "type": "message", "actor": actor, "msg_id": base["id"], "text": text,
           "content_type": content_type, "mentions": mentions_of(content, self_id), "reply_to": reply_to}
    if relates.get("rel_type") == "m.thread" and isinstance(relates.get("event_id"), str):
        out["matrix_thread"] = relates["event_id"]
    return out


# ------------------------------------------------------------------ actions


def pill(user_id: str, name: str) -> str:
    return f'<a href="https://matrix.to/#/{html.escape(user_id, quote=True)}">{html.escape(name)}</a>'


def message_content(
    text: str,
    mentions: list[str],
    *,
    names: Mapping[str, str],
    reply_to: str | None = None,
    msgtype: str = "m.text",
) -> dict[str, Any]:
    """The ``m.room.message`` content of a ``send``: body, HTML with mention pills, ``m.mentions``, reply.

    Each mentioned user is looked for in the text as ``@<display name>`` (the way
    qunyun's templates write mentions), then ``@<user id>``, then ``@<localpart>``;
    that span becomes a pill in ``formatted_body``. A mention not written in the
    text is added at the end, so every mentioned person sees their name.
    """
    body = text
    formatted = html.escape(text)
    extra_body: list[str] = []
    extra_html: list[str] = []
    for uid in mentions:
        local = uid[1:].split(":", 1)[0] if uid.startswith("@") else uid
        label = display_name(names.get(uid), local)
        for written in (f"@{label}", f"@{uid}", f"@{local}"):
            escaped = html.escape(written)
            if escaped in formatted:
                formatted = formatted.replace(escaped, pill(uid, written), 1)
                break
        else:
            extra_body.append(label)
            extra_html.append(pill(uid, label))
    if extra_body:
        body = f"{body} {' '.join(extra_body)}" if body else " ".join(extra_body)
        formatted = f"{formatted} {' '.join(extra_html)}" if formatted else " ".join(extra_html)
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted.replace("\n", "<br>"),
        "m.mentions": {"user_ids": list(dict.fromkeys(mentions))},
    }
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


__all__ = ["CAPABILITIES", "MSGTYPES", "mentions_of", "message_content", "pill", "strip_reply_fallback", "to_event"]

"""OneBot payloads ⇄ qunyun events and actions (pure functions, no I/O).

Written from the published standards: OneBot 11 (botuniverse/onebot-11:
``event/*.md``, ``message/*.md``, ``api/public.md``) and OneBot 12
(botuniverse/onebot: ``specs/interface``). ``payload_to_event`` returns an
event dict for the payloads qunyun uses, ``None`` for those it has no use for
(heartbeats, private messages…), and raises :class:`PayloadError` naming the
field for a payload that claims to be one of ours but is malformed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qunyun.adapters.base import DeliveryResult, PayloadError

#: OneBot 11 segment type → our content_type (text segments are text).
_V11_MEDIA = {
    "image": "image",
    "record": "voice",
    "video": "video",
    "file": "file",
    "face": "sticker",
    "mface": "sticker",
    "dice": "sticker",
    "rps": "sticker",
    "share": "link",
}
_V12_MEDIA = {
    "image": "image",
    "voice": "voice",
    "audio": "voice",
    "video": "video",
    "file": "file",
}


def _text_id(value: Any, field: str) -> str:
    """A platform id (number or string) as text; PayloadError if it is not one."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"field {field!r} is missing or not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 256 and value.isprintable():
        return value
    raise PayloadError(f"field {field!r} is not a usable id: {str(value)[:40]!r}")


def _ts(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("field 'time' is missing or not a Unix timestamp")
    # v11 sends seconds; a few implementations send milliseconds
    seconds = value / 1000 if value > 10_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"field 'time' is out of range: {value!r}") from None


# ---------------------------------------------------------------- v11 CQ codes

_CQ = re.compile(r"\[CQ:([A-Za-z0-9_.-]+)((?:,[^\]]*)?)\]")


def _cq_unescape(text: str, *, param: bool = False) -> str:
    text = text.replace("&#91;", "[").replace("&#93;", "]")
    if param:
        text = text.replace("&#44;", ",")
    return text.replace("&amp;", "&")


def cq_to_segments(message: str) -> list[dict[str, Any]]:
    """The string (CQ code) message format as segments (``message/string.md``)."""
    segments: list[dict[str, Any]] = []
    pos = 0
    for m in _CQ.finditer(message):
        if m.start() > pos:
            segments.append({"type": "text", "data": {"text": _cq_unescape(message[pos : m.start()])}})
        data: dict[str, str] = {}
        for part in m.group(2).split(",")[1:]:
            key, _, value = part.partition("=")
            data[key] = _cq_unescape(value, param=True)
        segments.append({"type": m.group(1), "data": data})
        pos = m.end()
    if pos < len(message):
        segments.append({"type": "text", "data": {"text": _cq_unescape(message[pos:])}})
    return segments


def _segments(message: Any, version: int) -> list[dict[str, Any]]:
    if isinstance(message, str) and version == 11:
        return cq_to_segments(message)
    if isinstance(message, dict):
        message = [message]
    if not isinstance(message, list):
        raise PayloadError("field 'message' is not a message (segment list)")
    out = []
    for i, seg in enumerate(message):
        if not isinstance(seg, dict) or not isinstance(seg.get("type"), str):
            raise PayloadError(f"field 'message.{i}' is not a segment with a type")
        data = seg.get("data")
        if data is not None and not isinstance(data, dict):
            raise PayloadError(f"field 'message.{i}.data' is not an object")
        out.append({"type": seg["type"], "data": data or {}})
    return out


def _message_fields(segments: list[dict[str, Any]], version: int) -> dict[str, Any]:
    texts: list[str] = []
    mentions: list[str] = []
    content_type = "text"
    reply_to: str | None = None
    media = _V11_MEDIA if version == 11 else _V12_MEDIA
    for i, seg in enumerate(segments):
        kind, data = seg["type"], seg["data"]
        if kind == "text":
            text = data.get("text", "")
            if not isinstance(text, str):
                raise PayloadError(f"field 'message.{i}.data.text' is not text")
            texts.append(text)
        elif kind in ("at", "mention"):
            who = data.get("qq") if version == 11 else data.get("user_id")
            if who == "all" or who is None:
                continue
            uid = _text_id(who, f"message.{i}.data")
            if uid not in mentions:
                mentions.append(uid)
        elif kind == "reply":
            reply_to = _text_id(data.get("id") if version == 11 else data.get("message_id"), f"message.{i}.data")
        elif kind in media and content_type == "text":
            content_type = media[kind]
    return {
        "text": "".join(texts).strip(),
        "mentions": mentions,
        "content_type": content_type,
        "reply_to": reply_to,
    }


# --------------------------------------------------------------------- events


def payload_to_event(
    payload: Any, *, version: int, platform: str, rooms: Mapping[str, str], self_id: str | None = None
) -> dict[str, Any] | None:
    """One OneBot event payload as a qunyun event dict, or None when qunyun has no use for it."""
    if not isinstance(payload, dict):
        raise PayloadError("an event must be a JSON object")
    if version == 11:
        return _v11(payload, platform, rooms, self_id)
    return _v12(payload, platform, rooms)


def _group(payload: dict[str, Any], rooms: Mapping[str, str]) -> str:
    room = _text_id(payload.get("group_id"), "group_id")
    return rooms.get(room, room)


def _v11(p: dict[str, Any], platform: str, rooms: Mapping[str, str], self_id: str | None) -> dict[str, Any] | None:
    post = p.get("post_type")
    if not isinstance(post, str):
        raise PayloadError("field 'post_type' is missing")
    bot = str(p.get("self_id", self_id or "0"))
    if post == "message":
        if p.get("message_type") != "group":
            return None  # private messages are not group events
        group = _group(p, rooms)
        msg_id = _text_id(p.get("message_id"), "message_id")
        raw_sender = p.get("sender")
        sender: dict[str, Any] = raw_sender if isinstance(raw_sender, dict) else {}
        raw_anon = p.get("anonymous")
        anonymous: dict[str, Any] | None = raw_anon if isinstance(raw_anon, dict) else None
        if anonymous:
            actor = {"id": "anonymous:" + _text_id(anonymous.get("id"), "anonymous.id"), "name": anonymous.get("name")}
        else:
            name = sender.get("card") or sender.get("nickname")
            actor = {"id": _text_id(p.get("user_id"), "user_id"), "name": name if isinstance(name, str) else None}
        fields = _message_fields(_segments(p.get("message"), 11), 11)
        if p.get("sub_type") == "notice":
            fields["content_type"] = "system"
        return {
            "v": 1, "id": f"{bot}/msg/{msg_id}", "ts": _ts(p.get("time")), "platform": platform, "group": group,
            "type": "message", "actor": actor, "msg_id": msg_id, **fields,
        }
    if post == "notice":
        kind = p.get("notice_type")
        if kind not in ("group_increase", "group_decrease", "group_recall"):
            return None
        group = _group(p, rooms)
        user = _text_id(p.get("user_id"), "user_id")
        ts = _ts(p.get("time"))
        operator = p.get("operator_id")
        op = _text_id(operator, "operator_id") if operator not in (None, 0, "0", "") else None
        base = {"v": 1, "ts": ts, "platform": platform, "group": group, "actor": {"id": user}}
        if kind == "group_recall":
            msg_id = _text_id(p.get("message_id"), "message_id")
            return {**base, "id": f"{bot}/recall/{msg_id}", "type": "recall", "target": msg_id}
        sub = p.get("sub_type")
        key = f"{bot}/{kind}/{group}/{user}/{p.get('time')}"
        if kind == "group_increase":
            via = {"approve": "approve", "invite": "invite"}.get(sub if isinstance(sub, str) else "", "unknown")
            inviter = op if via == "invite" and op != user else None
            return {**base, "id": key, "type": "member_joined", "via": via, "inviter": inviter}
        by = None if sub == "leave" or op == user else op
        return {**base, "id": key, "type": "member_left", "by": by}
    if post == "request":
        if p.get("request_type") != "group" or p.get("sub_type") != "add":
            return None  # friend requests and invitations of the bot itself are the operator's business
        flag = p.get("flag")
        if not isinstance(flag, str) or not flag:
            raise PayloadError("field 'flag' is missing")
        comment = p.get("comment")
        return {
            "v": 1, "id": f"{bot}/request/{flag}", "ts": _ts(p.get("time")), "platform": platform,
            "group": _group(p, rooms), "type": "join_request", "actor": {"id": _text_id(p.get("user_id"), "user_id")},
            "answers": {"comment": comment} if isinstance(comment, str) and comment else {},
            "onebot": {"flag": flag, "sub_type": "add"},
        }
    if post in ("meta_event", "message_sent"):
        return None
    raise PayloadError(f"unknown post_type {post!r}")


def _v12(p: dict[str, Any], platform: str, rooms: Mapping[str, str]) -> dict[str, Any] | None:
    kind = p.get("type")
    detail = p.get("detail_type")
    if not isinstance(kind, str) or not isinstance(detail, str):
        raise PayloadError("fields 'type' and 'detail_type' are required")
    if kind == "meta":
        return None
    event_id = _text_id(p.get("id"), "id")
    if kind == "message":
        if detail != "group":
            return None
        fields = _message_fields(_segments(p.get("message"), 12), 12)
        if not fields["text"] and fields["content_type"] == "text" and isinstance(p.get("alt_message"), str):
            fields["text"] = p["alt_message"].strip()
        return {
            "v": 1, "id": event_id, "ts": _ts(p.get("time")), "platform": platform, "group": _group(p, rooms),
            "type": "message", "actor": {"id": _text_id(p.get("user_id"), "user_id")},
            "msg_id": _text_id(p.get("message_id"), "message_id"), **fields,
        }
    if kind == "notice" and detail in ("group_member_increase", "group_member_decrease", "group_message_delete"):
        user = _text_id(p.get("user_id"), "user_id")
        operator = p.get("operator_id")
        op = _text_id(operator, "operator_id") if operator not in (None, "") else None
        base = {"v": 1, "id": event_id, "ts": _ts(p.get("time")), "platform": platform, "group": _group(p, rooms),
                "actor": {"id": user}}
        sub = p.get("sub_type")
        if detail == "group_message_delete":
            return {**base, "type": "recall", "target": _text_id(p.get("message_id"), "message_id")}
        if detail == "group_member_increase":
            via = "invite" if sub == "invite" else "unknown"
            return {**base, "type": "member_joined", "via": via, "inviter": op if via == "invite" and op != user else None}
        return {**base, "type": "member_left", "by": op if sub == "kick" and op != user else None}
    if kind in ("message", "notice", "request"):
        return None
    raise PayloadError(f"unknown event type {kind!r}")


# -------------------------------------------------------------------- actions


class Unsupported(Exception):
    """The action cannot be expressed for this OneBot version/configuration."""


def _qq(uid: str, what: str) -> int:
    """QQ numbers are numbers in OneBot 11."""
    if not uid.isdigit():
        raise Unsupported(f"{what} {uid!r} is not a QQ number")
    return int(uid)


def _outgoing(action: Mapping[str, Any], version: int) -> list[dict[str, Any]]:
    segments: list[dict[str, Any]] = []
    reply_to = action.get("reply_to")
    if reply_to:
        segments.append({"type": "reply", "data": {"id": str(reply_to)} if version == 11 else {"message_id": str(reply_to)}})
    for uid in action.get("mentions") or ():
        if version == 11:
            segments.append({"type": "at", "data": {"qq": str(uid)}})
        else:
            segments.append({"type": "mention", "data": {"user_id": str(uid)}})
    text = str(action.get("text") or "")
    if segments and any(s["type"] in ("at", "mention") for s in segments) and text:
        text = " " + text
    if text or not segments:
        segments.append({"type": "text", "data": {"text": text}})
    return segments


def action_to_call(
    action: Mapping[str, Any], *, version: int, extensions: frozenset[str], now: datetime
) -> tuple[str, dict[str, Any]]:
    """The OneBot API call (action name, params) for one qunyun action."""
    kind = action.get("type")
    room = str(action.get("room") or action.get("group") or "")
    if version == 11:
        if kind == "send":
            return "send_group_msg", {"group_id": _qq(room, "group"), "message": _outgoing(action, 11)}
        if kind == "direct":
            return "send_private_msg", {"user_id": _qq(str(action["member"]), "member"),
                                        "message": _outgoing({"text": action.get("text")}, 11)}
        if kind == "remove":
            return "set_group_kick", {"group_id": _qq(room, "group"), "user_id": _qq(str(action["member"]), "member"),
                                      "reject_add_request": False}
        if kind == "delete":
            msg = str(action["msg_id"])
            return "delete_msg", {"message_id": int(msg) if msg.lstrip("-").isdigit() else msg}
        if kind == "mute":
            until = action.get("until")
            end = datetime.fromisoformat(until) if isinstance(until, str) else until
            if not isinstance(end, datetime):
                raise Unsupported("mute needs 'until'")
            seconds = int((end - now).total_seconds())
            if seconds <= 0:
                raise Unsupported("the mute has already ended")
            # QQ refuses bans longer than 30 days; at least a minute is what it shows
            seconds = max(60, min(seconds, 30 * 24 * 3600 - 1))
            return "set_group_ban", {"group_id": _qq(room, "group"), "user_id": _qq(str(action["member"]), "member"),
                                     "duration": seconds}
        if kind == "invite":
            flag = action.get("flag")
            if not flag:
                raise Unsupported(
                    f"no pending join request of {action.get('member')} is known in this group "
                    "(QQ only lets a bot approve a request, not invite)"
                )
            return "set_group_add_request", {"flag": str(flag), "sub_type": "add", "approve": True}
        raise Unsupported(f"OneBot 11 has no action for {kind!r}")
    if kind == "send":
        return "send_message", {"detail_type": "group", "group_id": room, "message": _outgoing(action, 12)}
    if kind == "direct":
        return "send_message", {"detail_type": "private", "user_id": str(action["member"]),
                                "message": _outgoing({"text": action.get("text")}, 12)}
    if kind == "delete":
        return "delete_message", {"message_id": str(action["msg_id"])}
    if kind == "remove" and "wx.delete_groupmember" in extensions:
        return "wx.delete_groupmember", {"group_id": room, "user_list": [str(action["member"])]}
    raise Unsupported(f"this OneBot 12 implementation has no action for {kind!r}")


def capabilities(version: int, extensions: frozenset[str]) -> frozenset[str]:
    if version == 11:
        return frozenset({"send", "direct", "remove", "delete", "mute", "invite", "notify_admins"})
    caps = {"send", "direct", "delete", "notify_admins"}
    if "wx.delete_groupmember" in extensions:
        caps.add("remove")
    return frozenset(caps)


# ------------------------------------------------------------------ responses

#: Retcodes treated as "slow down": 1429 follows the v11 convention
#: (retcode = 1000 + HTTP status); v12 reserves 36xxx for "I am tired".
RATE_LIMIT_RETCODES = frozenset({1429})
_RATE_WORDS = ("rate limit", "too many", "too frequent", "频率", "频繁", "太快")


def interpret(response: Any) -> DeliveryResult:
    """An API response as a delivery result."""
    if not isinstance(response, dict):
        return DeliveryResult.retry("the implementation answered with something that is not a response")
    status = response.get("status")
    retcode = response.get("retcode")
    data = response.get("data")
    if status == "ok" or (status is None and retcode == 0):
        mid = data.get("message_id") if isinstance(data, dict) else None
        return DeliveryResult.ok(None if mid is None else str(mid))
    if status == "async" or retcode == 1:
        return DeliveryResult.ok()
    message = response.get("message") or response.get("wording") or response.get("msg") or ""
    reason = f"retcode {retcode}" + (f": {message}" if message else "")
    after = None
    if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float) and not isinstance(data.get("retry_after"), bool):
        after = float(data["retry_after"])
    tired = isinstance(retcode, int) and 36000 <= retcode < 37000
    if retcode in RATE_LIMIT_RETCODES or tired or after is not None or any(w in str(message).lower() for w in _RATE_WORDS):
        return DeliveryResult.retry("rate limited: " + reason, after=after if after is not None else 60.0)
    # v12: handler errors and network errors are worth another try
    if isinstance(retcode, int) and (20000 <= retcode < 30000 or 33000 <= retcode < 34000):
        return DeliveryResult.retry(reason)
    return DeliveryResult.failed(reason)

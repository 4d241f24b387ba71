"""The Event contract (fixed, ``"v": 1``).

An event is something that happened in a group: a join, a message, a
reaction... Adapters turn platform payloads into events; everything after the
edge sees only these typed models. See ``docs/events.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from qunyun.core.errors import EventError

EVENT_TYPES = (
    "member_joined",
    "member_left",
    "message",
    "reaction",
    "join_request",
    "payment",
    "edit",
    "recall",
)
CONTENT_TYPES = (
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "sticker",
    "red_packet",
    "system",
)
ContentType = Literal[
    "text", "image", "voice", "video", "file", "link", "sticker", "red_packet", "system"
]

#: Ids are printable: no control characters (they would break logs and SQL text).
Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]

#: Lines longer than this are refused at the edge (a 1 MB message is fine).
MAX_LINE_BYTES = 16 * 1024 * 1024


class Actor(BaseModel):
    """Who did it: a platform user id and the display name at that moment."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Id
    name: str | None = Field(default=None, max_length=4096)


class BaseEvent(BaseModel):
    """Fields every event has. Unknown fields are kept, never required."""

    model_config = ConfigDict(extra="allow", frozen=True)

    v: Literal[1] = 1
    id: Id
    ts: AwareDatetime
    #: A short platform name (sim, matrix, onebot, telegram…).
    platform: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    group: Id
    actor: Actor

    @field_validator("ts", mode="before")
    @classmethod
    def _ts_is_text_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("ts must be an ISO 8601 string with a time zone, not a number")
        return value

    @property
    def key(self) -> str:
        """Globally unique key: the id is unique per platform."""
        return f"{self.platform}:{self.id}"

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class MemberJoined(BaseEvent):
    type: Literal["member_joined"]
    inviter: Id | None = None
    via: Literal["invite", "link", "qr", "approve", "unknown"] = "unknown"


class MemberLeft(BaseEvent):
    type: Literal["member_left"]
    #: Who removed them; ``None`` when they left by themselves.
    by: Id | None = None


class Message(BaseEvent):
    type: Literal["message"]
    msg_id: Id
    text: str = ""
    content_type: ContentType = "text"
    mentions: list[Id] = Field(default_factory=list, max_length=10_000)
    reply_to: Id | None = None


class Reaction(BaseEvent):
    type: Literal["reaction"]
    #: The msg_id reacted to.
    target: Id
    emoji: str = Field(min_length=1, max_length=64)


class JoinRequest(BaseEvent):
    type: Literal["join_request"]
    answers: dict[str, str] | list[str] = Field(default_factory=dict)


class Payment(BaseEvent):
    type: Literal["payment"]
    #: Integer minor units (fen, cents). Never a float.
    amount: int = Field(strict=True)
    currency: str = Field(min_length=1, max_length=16)
    memo: str = ""


class Edit(BaseEvent):
    type: Literal["edit"]
    #: The msg_id that was edited, and its new text.
    target: Id
    text: str = ""


class Recall(BaseEvent):
    type: Literal["recall"]
    #: The msg_id that was withdrawn.
    target: Id


Event = Annotated[
    MemberJoined | MemberLeft | Message | Reaction | JoinRequest | Payment | Edit | Recall,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()) if p not in EVENT_TYPES)
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid"))
    if kind == "timezone_aware":
        msg = "timestamp has no time zone; write it like 2026-11-02T08:01:00+08:00"
    elif kind == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        msg = (
            f"unknown event type {ctx.get('tag')!r}; expected one of: "
            + ", ".join(EVENT_TYPES)
        )
        loc = "type"
    elif kind == "union_tag_not_found":
        msg = "missing field 'type'"
        loc = "type"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "literal_error" and loc == "v":
        msg = "unsupported version; this qunyun reads events with \"v\": 1"
    return f"field {loc!r}: {msg}" if loc else msg


def parse_event(data: bytes | str | dict[str, Any], *, where: str = "") -> Event:
    """Validate one event at the edge.

    Raises :class:`EventError` naming ``where`` (e.g. ``events.jsonl:12``), the
    field at fault and the event id when one could be read.
    """
    try:
        if isinstance(data, dict):
            return EVENT_ADAPTER.validate_python(data)
        size = len(data) if isinstance(data, bytes) or len(data) * 4 <= MAX_LINE_BYTES else len(data.encode())
        if size > MAX_LINE_BYTES:
            raise EventError(
                f"event is {size:,} bytes, over the {MAX_LINE_BYTES:,}-byte limit",
                where=where,
            )
        return EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            raise EventError(
                "not valid JSON: " + str(errors[0].get("ctx", {}).get("error", "")),
                where=where,
            ) from None
        if errors and not errors[0].get("loc") and str(errors[0].get("type", "")).endswith("_type"):
            raise EventError("an event must be a JSON object", where=where) from None
        event_id = _peek_id(data)
        details = "; ".join(_describe(e) for e in errors[:5])
        suffix = f" (event id {event_id})" if event_id else ""
        raise EventError(details + suffix, where=where, event_id=event_id) from None


def _peek_id(data: bytes | str | dict[str, Any]) -> str | None:
    import orjson

    try:
        obj = data if isinstance(data, dict) else orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        value = obj.get("id")
        return value if isinstance(value, str) else None
    return None


__all__ = [
    "CONTENT_TYPES",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "Actor",
    "BaseEvent",
    "Edit",
    "Event",
    "JoinRequest",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "Payment",
    "Reaction",
    "Recall",
    "parse_event",
]

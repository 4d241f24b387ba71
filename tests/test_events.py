"""The Event contract (fixed, ``"v": 1``): parsing at the edge.

Bad input is refused with the place (``file:line``), the field and the event
id named; good input of every type parses, unknown fields are kept, and
hostile names are stored raw but cleaned for display.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from qunyun.core.errors import EventError, QunyunError
from qunyun.core.events import (
    CONTENT_TYPES,
    EVENT_TYPES,
    MAX_LINE_BYTES,
    Edit,
    JoinRequest,
    MemberJoined,
    MemberLeft,
    Message,
    Payment,
    Reaction,
    Recall,
    parse_event,
)
from qunyun.core.text import clip, display_name

#: The example event of ARCHITECTURE.md, verbatim.
ARCHITECTURE_EXAMPLE = (
    '{"v":1,"id":"evt-1","ts":"2026-11-02T08:01:00+08:00","platform":"sim","group":"g-main",\n'
    ' "type":"message","actor":{"id":"u-17","name":"小王"},\n'
    ' "msg_id":"m-1","text":"打卡 第3天","content_type":"text","mentions":["u-2"],"reply_to":null}'
)

WHERE = "f.jsonl:3"


def base(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "id": "evt-9",
        "ts": "2026-11-02T08:01:00+08:00",
        "platform": "sim",
        "group": "g-main",
        "actor": {"id": "u-1", "name": "小王"},
    }
    data.update(fields)
    return data


SAMPLES: dict[str, tuple[dict[str, Any], type]] = {
    "member_joined": (base(type="member_joined", inviter="u-2", via="qr"), MemberJoined),
    "member_left": (base(type="member_left", by="u-admin"), MemberLeft),
    "message": (
        base(type="message", msg_id="m-1", text="你好", content_type="image", mentions=["u-2"],
             reply_to="m-0"),
        Message,
    ),
    "reaction": (base(type="reaction", target="m-1", emoji="👍"), Reaction),
    "join_request": (base(type="join_request", answers={"你从哪里知道我们？": "朋友"}), JoinRequest),
    "payment": (base(type="payment", amount=990, currency="CNY", memo="年费"), Payment),
    "edit": (base(type="edit", target="m-1", text="改过的"), Edit),
    "recall": (base(type="recall", target="m-1"), Recall),
}


def refused(data: Any, where: str = WHERE) -> EventError:
    with pytest.raises(EventError) as info:
        parse_event(data, where=where)
    return info.value


# --------------------------------------------------------------------------- good input


def test_architecture_example_parses() -> None:
    event = parse_event(ARCHITECTURE_EXAMPLE, where=WHERE)
    assert isinstance(event, Message)
    assert event.id == "evt-1"
    assert event.key == "sim:evt-1"
    assert event.ts == datetime(2026, 11, 2, 0, 1, tzinfo=UTC)
    assert event.ts.utcoffset() == timedelta(hours=8)  # the offset as written is kept
    assert event.actor.id == "u-17"
    assert event.actor.name == "小王"
    assert event.text == "打卡 第3天"
    assert event.mentions == ["u-2"]
    assert event.reply_to is None


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_every_event_type_parses_from_json_and_dict(etype: str) -> None:
    data, cls = SAMPLES[etype]
    from_json = parse_event(json.dumps(data, ensure_ascii=False), where=WHERE)
    from_bytes = parse_event(orjson.dumps(data), where=WHERE)
    from_dict = parse_event(data, where=WHERE)
    assert type(from_json) is cls
    assert from_json == from_bytes == from_dict
    assert from_json.type == etype  # type: ignore[union-attr]
    # a parsed event survives its own JSON form unchanged
    again = parse_event(from_json.model_dump_json(), where=WHERE)
    assert again == from_json


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_content_type_parses(content_type: str) -> None:
    event = parse_event(base(type="message", msg_id="m-1", content_type=content_type))
    assert isinstance(event, Message)
    assert event.content_type == content_type


def test_defaults_are_filled_in() -> None:
    event = parse_event(base(type="message", msg_id="m-1"))
    assert isinstance(event, Message)
    assert (event.text, event.content_type, event.mentions, event.reply_to) == ("", "text", [], None)
    joined = parse_event(base(type="member_joined"))
    assert isinstance(joined, MemberJoined)
    assert (joined.inviter, joined.via) == (None, "unknown")
    left = parse_event(base(type="member_left"))
    assert isinstance(left, MemberLeft)
    assert left.by is None


def test_join_request_answers_may_be_a_list() -> None:
    event = parse_event(base(type="join_request", answers=["朋友介绍", "想学习"]))
    assert isinstance(event, JoinRequest)
    assert event.answers == ["朋友介绍", "想学习"]


def test_unknown_fields_are_kept_but_never_required() -> None:
    data = base(
        type="message",
        msg_id="m-1",
        text="hi",
        x_raw={"chat_instance": 42},
        thread="t-7",
        actor={"id": "u-1", "name": "n", "avatar": "https://example.org/a.png"},
    )
    event = parse_event(json.dumps(data))
    assert event.model_extra == {"x_raw": {"chat_instance": 42}, "thread": "t-7"}
    assert event.actor.model_extra == {"avatar": "https://example.org/a.png"}
    dumped = event.model_dump(mode="json")
    assert dumped["x_raw"] == {"chat_instance": 42}
    assert dumped["actor"]["avatar"] == "https://example.org/a.png"


def test_timestamps_with_any_offset_are_the_same_instant() -> None:
    a = parse_event(base(type="recall", target="m", ts="2026-11-02T08:01:00+08:00"))
    b = parse_event(base(type="recall", target="m", ts="2026-11-02T00:01:00Z"))
    assert a.ts == b.ts
    assert a.ts.tzinfo is not None


def test_a_one_megabyte_message_parses() -> None:
    text = "群" * (1024 * 1024 // 3) + "x" * 1024
    line = json.dumps(base(type="message", msg_id="m-big", text=text), ensure_ascii=False).encode()
    assert len(line) > 1_000_000
    event = parse_event(line, where=WHERE)
    assert isinstance(event, Message)
    assert event.text == text


# --------------------------------------------------------------------------- bad input


def test_invalid_json_names_the_place() -> None:
    err = refused('{"v":1,"id":"evt-9",')
    assert str(err).startswith(f"{WHERE}: ")
    assert "not valid JSON" in str(err)
    assert err.where == WHERE
    assert isinstance(err, QunyunError)


@pytest.mark.parametrize("line", ["[1, 2]", '"an event"', "42", "null"])
def test_a_non_object_is_refused(line: str) -> None:
    err = refused(line)
    assert str(err) == f"{WHERE}: an event must be a JSON object"
    assert err.event_id is None


@pytest.mark.parametrize(
    ("etype", "field"),
    [
        ("message", "msg_id"),
        ("message", "actor"),
        ("message", "ts"),
        ("message", "group"),
        ("message", "platform"),
        ("reaction", "target"),
        ("reaction", "emoji"),
        ("payment", "amount"),
        ("payment", "currency"),
        ("edit", "target"),
        ("recall", "target"),
    ],
)
def test_a_missing_field_is_named_with_the_event_id(etype: str, field: str) -> None:
    data, _ = SAMPLES[etype]
    data = dict(data)
    del data[field]
    err = refused(json.dumps(data))
    message = str(err)
    assert message.startswith(f"{WHERE}: ")
    assert f"'{field}'" in message
    assert "missing" in message
    assert "evt-9" in message
    assert err.event_id == "evt-9"


def test_a_missing_actor_id_names_the_nested_field() -> None:
    err = refused(json.dumps(base(type="recall", target="m", actor={"name": "x"})))
    assert "'actor.id'" in str(err)
    assert err.event_id == "evt-9"


def test_a_missing_type_is_named() -> None:
    data = base(msg_id="m-1")
    err = refused(json.dumps(data))
    assert "'type'" in str(err)
    assert "evt-9" in str(err)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mentions": "u-2"}, "mentions"),
        ({"text": 5}, "text"),
        ({"actor": "u-1"}, "actor"),
        ({"group": ["g"]}, "group"),
        ({"content_type": "hologram"}, "content_type"),
        ({"reply_to": {"id": "m"}}, "reply_to"),
    ],
)
def test_a_wrong_type_is_named_with_the_event_id(fields: dict[str, Any], field: str) -> None:
    err = refused(json.dumps(base(type="message", msg_id="m-1", **fields)))
    assert str(err).startswith(f"{WHERE}: ")
    assert f"'{field}'" in str(err)
    assert "evt-9" in str(err)


def test_a_non_string_id_is_refused() -> None:
    err = refused(json.dumps(base(type="recall", target="m", id=123)))
    assert "'id'" in str(err)
    assert err.where == WHERE


@pytest.mark.parametrize("bad_id", ["", "x" * 257])
def test_ids_are_between_1_and_256_characters(bad_id: str) -> None:
    err = refused(json.dumps(base(type="recall", target="m", id=bad_id)))
    assert "'id'" in str(err)
    ok = parse_event(base(type="recall", target="m", id="x" * 256))
    assert len(ok.id) == 256


def test_a_naive_timestamp_is_refused_with_a_hint() -> None:
    err = refused(json.dumps(base(type="recall", target="m", ts="2026-11-02T08:01:00")))
    assert "'ts'" in str(err)
    assert "time zone" in str(err)
    assert "evt-9" in str(err)


@pytest.mark.parametrize("ts", [1_793_000_000, 1_793_000_000.5])
def test_a_numeric_timestamp_is_refused(ts: float) -> None:
    err = refused(json.dumps(base(type="recall", target="m", ts=ts)))
    assert "'ts'" in str(err)
    assert "ISO 8601" in str(err)
    assert err.event_id == "evt-9"


def test_an_unknown_event_type_lists_the_known_ones() -> None:
    err = refused(json.dumps(base(type="poke")))
    message = str(err)
    assert "'type'" in message
    assert "'poke'" in message
    for etype in EVENT_TYPES:
        assert etype in message
    assert "evt-9" in message


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_only_version_1_is_read(version: Any) -> None:
    err = refused(json.dumps(base(type="recall", target="m", v=version)))
    assert "'v'" in str(err)
    assert "evt-9" in str(err)


@pytest.mark.parametrize("amount", [12.5, 12.0, "12", True])
def test_a_payment_amount_must_be_integer_minor_units(amount: Any) -> None:
    err = refused(json.dumps(base(type="payment", amount=amount, currency="CNY")))
    assert "'amount'" in str(err)
    assert "evt-9" in str(err)
    # the same from a dict (an adapter handing over parsed data)
    with pytest.raises(EventError, match="'amount'"):
        parse_event(base(type="payment", amount=amount, currency="CNY"))


def test_a_line_over_the_limit_is_refused_before_parsing() -> None:
    line = b'{"v":1,"text":"' + b"x" * MAX_LINE_BYTES + b'"}'
    err = refused(line)
    assert "limit" in str(err)
    assert str(err).startswith(f"{WHERE}: ")


def test_a_str_line_over_the_byte_limit_is_refused() -> None:
    # 6 Mi CJK characters are 18 MiB of UTF-8: over the 16 MiB line limit.
    text = "群" * (6 * 1024 * 1024)
    line = json.dumps(base(type="message", msg_id="m-1", text=text), ensure_ascii=False)
    assert len(line.encode()) > MAX_LINE_BYTES
    with pytest.raises(EventError, match="limit"):
        parse_event(line, where=WHERE)


def test_errors_without_a_place_have_no_prefix() -> None:
    with pytest.raises(EventError) as info:
        parse_event("{")
    assert not str(info.value).startswith(":")
    assert info.value.where == ""


def test_an_emoji_must_not_be_empty() -> None:
    err = refused(json.dumps(base(type="reaction", target="m-1", emoji="")))
    assert "'emoji'" in str(err)


# --------------------------------------------------------------------------- names


HOSTILE = "\u202eevil\u202c小王\u0007\n\u200f"


def test_hostile_names_are_kept_raw_in_the_event() -> None:
    event = parse_event(json.dumps(base(type="member_joined", actor={"id": "u-1", "name": HOSTILE})))
    assert event.actor.name == HOSTILE


def test_display_name_strips_controls_and_bidi_overrides() -> None:
    shown = display_name(HOSTILE, "u-1")
    assert shown == "evil小王"
    for ch in shown:
        assert ord(ch) >= 0x20
    assert "\u202e" not in shown


@pytest.mark.parametrize("name", [None, "", "\u202e\u202c", "  \t "])
def test_display_name_falls_back_when_nothing_is_left(name: str | None) -> None:
    assert display_name(name, "u-1") == "u-1"


def test_display_name_is_bounded_and_nfc() -> None:
    long = "长" * 100
    shown = display_name(long, "u", limit=32)
    assert len(shown) == 32
    assert shown.endswith("…")
    assert display_name("e\u0301", "u") == "\u00e9"


def test_clip() -> None:
    assert clip("abcdef", 10) == "abcdef"
    assert clip("abcdef", 4) == "abc…"
    assert len(clip("abcdef", 4)) == 4


def test_event_time_is_aware_utc_comparable() -> None:
    a = parse_event(base(type="recall", target="m", ts="2026-11-02T23:30:00+08:00"))
    b = parse_event(base(type="recall", target="m", ts="2026-11-02T16:00:00+00:00"))
    assert a.ts < b.ts
    assert a.ts.astimezone(UTC).hour == 15

"""The OneBot adapter against a small implementation-side peer written from the specs.

The peer plays NapCat/LLBot (OneBot 11) or a WeChat OneBot 12 implementation:
it connects to our reverse WebSocket server with the headers the standard
prescribes, pushes events, and answers our API calls. The payloads are the
fixtures beside the adapter, written from botuniverse/onebot-11 and
botuniverse/onebot (no live QQ or WeChat account was used).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import select

from qunyun.adapters.base import DeliveryResult, Limits
from qunyun.adapters.onebot import OneBotAdapter, OneBotOptions, mapping
from qunyun.config.model import settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.events import parse_event
from qunyun.engine.engine import Engine
from qunyun.runtime import Runtime, rooms_of
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine
from tests.test_runtime import FakeTime, turns, until

FIXTURES = Path(__file__).resolve().parents[2] / "src" / "qunyun" / "adapters" / "onebot" / "fixtures"
TOKEN = "s3cret-token"
SECRET = "hmac-secret"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------- the peer


class Peer:
    """An OneBot implementation: connects to us, pushes events, answers API calls."""

    def __init__(self, adapter: OneBotAdapter, *, version: int = 11) -> None:
        self.adapter = adapter
        self.version = version
        self.calls: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], dict[str, Any] | None] = self.ok
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}"

    def ok(self, call: dict[str, Any]) -> dict[str, Any]:
        data = {"message_id": 900 + len(self.calls)} if "send" in call["action"] else None
        return {"status": "ok", "retcode": 0, "data": data, "message": "", "echo": call["echo"]}

    def headers(self, token: str | None = TOKEN, self_id: str | None = "10001000", role: str = "Universal") -> dict[str, str]:
        h = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if self.version == 11:
            if self_id is not None:
                h["X-Self-ID"] = self_id
            h["X-Client-Role"] = role
        return h

    async def connect(self, **kwargs: Any) -> None:
        self._session = aiohttp.ClientSession()
        protocols = ("12.testimpl",) if self.version == 12 else ()
        self.ws = await self._session.ws_connect(
            self.url + self.adapter.options.ws_path, headers=self.headers(**kwargs), protocols=protocols
        )
        self._reader = asyncio.create_task(self._read())
        await until(lambda: self.adapter.connected, "the adapter to see the connection")

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            call = json.loads(msg.data)
            self.calls.append(call)
            response = self.answer(call)
            if response is not None:
                await self.ws.send_str(json.dumps(response))

    async def send(self, payload: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def options(**kw: Any) -> OneBotOptions:
    base: dict[str, Any] = {"port": 0, "access_token": TOKEN, "secret": SECRET, "api_timeout": 2.0}
    base.update(kw)
    return OneBotOptions(**base)


class Collected:
    """A sink that validates like the runtime's and keeps the events."""

    def __init__(self, adapter: OneBotAdapter) -> None:
        self.adapter = adapter
        self.events: list[Any] = []

    async def __call__(self, data: Any) -> bool:
        event = self.adapter.validate(data, "test")
        if event is None:
            return False
        self.events.append(event)
        return True


async def serving(opts: OneBotOptions, rooms: dict[str, str] | None = None) -> tuple[OneBotAdapter, Collected]:
    adapter = OneBotAdapter(opts, rooms=rooms or {"123456789": "qq-main"}, clock=FakeClock(datetime(2026, 11, 2, tzinfo=UTC)))
    sink = Collected(adapter)
    await adapter.start(sink)
    return adapter, sink


# ------------------------------------------------------- payloads → events


def event_of(name: str, version: int = 11, rooms: dict[str, str] | None = None) -> Any:
    data = mapping.payload_to_event(fixture(name), version=version, platform="onebot",
                                    rooms=rooms or {"123456789": "qq-main"})
    return None if data is None else parse_event(data)


def test_v11_group_message_segments() -> None:
    e = event_of("v11_group_message")
    assert e.type == "message" and e.group == "qq-main" and e.platform == "onebot"
    assert e.actor.id == "2233445566" and e.actor.name == "小王-上海"
    assert e.text == "打卡 第3天"
    assert e.mentions == ["10001000", "3344556677"]
    assert e.reply_to == "1850129300" and e.msg_id == "1850129371"
    assert e.id == "10001000/msg/1850129371"
    assert e.ts == datetime.fromtimestamp(1793667660, UTC)


def test_v11_image_and_string_format() -> None:
    image = event_of("v11_group_message_image")
    assert image.content_type == "image" and image.text == ""
    text = event_of("v11_group_message_string")
    assert text.mentions == ["2233445566"]
    assert text.text == "欢迎！[新人] 看群公告&群规"


def test_v11_notices_and_requests() -> None:
    approve = event_of("v11_group_increase_approve")
    assert approve.type == "member_joined" and approve.via == "approve" and approve.inviter is None
    invite = event_of("v11_group_increase_invite")
    assert invite.via == "invite" and invite.inviter == "3344556677"
    leave = event_of("v11_group_decrease_leave")
    assert leave.type == "member_left" and leave.by is None
    kick = event_of("v11_group_decrease_kick")
    assert kick.by == "3344556677" and kick.actor.id == "5566778899"
    request = event_of("v11_request_group_add")
    assert request.type == "join_request" and request.actor.id == "6677889900"
    assert "朋友推荐" in request.answers["comment"]
    assert event_of("v11_meta_heartbeat") is None


def test_v12_events() -> None:
    rooms = {"12345678@chatroom": "wx-main"}
    msg = event_of("v12_message_group", 12, rooms)
    assert msg.id == "b6e65187-5ac0-489c-b431-53078e9d2bbb" and msg.group == "wx-main"
    assert msg.mentions == ["wxid_alice"] and msg.text == "打卡" and msg.content_type == "image"
    joined = event_of("v12_notice_group_member_increase", 12, rooms)
    assert joined.type == "member_joined" and joined.via == "invite" and joined.inviter == "wxid_bob"
    left = event_of("v12_notice_group_member_decrease", 12, rooms)
    assert left.type == "member_left" and left.by == "wxid_bob"
    assert event_of("v12_meta_connect", 12) is None


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ([1, 2], "JSON object"),
        ({"time": 1, "self_id": 1, "post_type": "message", "message_type": "group", "message_id": 5,
          "user_id": 7, "message": []}, "group_id"),
        ({"time": "yesterday", "self_id": 1, "post_type": "notice", "notice_type": "group_increase",
          "group_id": 5, "user_id": 7}, "time"),
        ({"time": 1, "self_id": 1, "post_type": "message", "message_type": "group", "message_id": 5,
          "group_id": 5, "user_id": 7, "message": [{"data": {}}]}, "message.0"),
        ({"post_type": "surprise"}, "post_type"),
    ],
)
def test_v11_malformed_payloads_say_what_is_wrong(payload: Any, what: str) -> None:
    with pytest.raises(mapping.PayloadError, match=what.replace(".", r"\.")):
        mapping.payload_to_event(payload, version=11, platform="onebot", rooms={})


def test_responses_are_interpreted() -> None:
    assert mapping.interpret(fixture("v11_response_ok")) == DeliveryResult.ok("1850129500")
    refused = mapping.interpret(fixture("v11_response_failed"))
    assert refused.status == "failed" and "no permission" in refused.reason and "retcode 100" in refused.reason
    limited = mapping.interpret({"status": "failed", "retcode": 1429, "data": {"retry_after": 12}, "echo": "x"})
    assert limited.status == "retry" and limited.retry_after == 12
    tired = mapping.interpret({"status": "failed", "retcode": 36000, "data": None, "message": "", "echo": "x"})
    assert tired.status == "retry"
    assert mapping.interpret(fixture("v12_response_ok")).platform_id == "2452352435"
    assert mapping.interpret({"status": "async", "retcode": 1, "data": None}).status == "ok"


def test_capabilities() -> None:
    assert OneBotAdapter(options()).capabilities >= {"send", "direct", "remove", "delete", "mute", "invite"}
    plain = OneBotAdapter(options(version=12, secret=None))
    assert "remove" not in plain.capabilities and "mute" not in plain.capabilities
    ext = OneBotAdapter(options(version=12, secret=None, extensions=frozenset({"wx.delete_groupmember"})))
    assert "remove" in ext.capabilities


# ------------------------------------------------------ reverse WebSocket


def test_reverse_ws_checks_token_self_id_and_role() -> None:
    async def main() -> None:
        adapter, sink = await serving(options(self_id="10001000"))
        peer = Peer(adapter)
        try:
            for kwargs, status in (
                ({"token": None}, 401),
                ({"token": "forged"}, 403),
                ({"self_id": None}, 400),
                ({"role": "Spectator"}, 400),
                ({"self_id": "999"}, 403),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await peer.connect(**kwargs)
                assert err.value.status == status, kwargs
                await peer.close()
            assert adapter.refused == 5 and not adapter.connected
            # the token may come as a query parameter, too
            async with aiohttp.ClientSession() as session, session.ws_connect(
                f"{peer.url}/onebot/ws?access_token={TOKEN}",
                headers={"X-Self-ID": "10001000", "X-Client-Role": "Universal"},
            ) as ws:
                await until(lambda: adapter.connected)
                await ws.send_str(json.dumps(fixture("v11_group_message")))
                await until(lambda: len(sink.events) == 1)
        finally:
            await adapter.stop()

    run(main())


def test_malformed_and_oversized_payloads_are_reported_and_skipped() -> None:
    async def main() -> None:
        adapter, sink = await serving(options(max_payload_bytes=2048))
        peer = Peer(adapter)
        try:
            await peer.connect()
            await peer.send("{not json")
            broken = fixture("v11_group_message")
            del broken["group_id"]
            await peer.send(broken)
            huge = fixture("v11_group_message")
            huge["message"] = [{"type": "text", "data": {"text": "灌水" * 2000}}]
            await peer.send(huge)
            await peer.send(fixture("v11_meta_heartbeat"))  # nothing for us: not an error
            await peer.send(fixture("v11_group_message"))
            await until(lambda: len(sink.events) == 1, "the good event")
            assert adapter.bad_count == 3
            whats = [b.what for b in adapter.bad]
            assert "not valid JSON" in whats[0]
            assert "group_id" in whats[1] and "1850129371" in adapter.bad[1].where
            assert "over the 2,048-byte limit" in whats[2]
            assert adapter.connected  # the connection carries on
        finally:
            await peer.close()
            await adapter.stop()

    run(main())


def test_api_calls_carry_echo_and_map_actions() -> None:
    async def main() -> tuple[Peer, list[DeliveryResult]]:
        adapter, sink = await serving(options())
        peer = Peer(adapter)
        results = []
        try:
            await peer.connect()
            await peer.send(fixture("v11_request_group_add"))
            await until(lambda: len(sink.events) == 1)
            base = {"v": 1, "ts": "2026-11-02T00:00:00+00:00", "playbook": "t", "cause": "c", "group": "qq-main",
                    "room": "123456789"}
            for action in (
                {**base, "id": "a1", "type": "send", "text": "欢迎", "mentions": ["2233445566"], "reply_to": "77"},
                {**base, "id": "a2", "type": "direct", "member": "2233445566", "text": "hi"},
                {**base, "id": "a3", "type": "remove", "member": "2233445566", "reason": "spam"},
                {**base, "id": "a4", "type": "delete", "msg_id": "1850129371"},
                {**base, "id": "a5", "type": "mute", "member": "2233445566", "until": "2026-11-02T01:00:00+00:00"},
                {**base, "id": "a6", "type": "invite", "member": "6677889900"},
                {**base, "id": "a7", "type": "invite", "member": "1111"},
                {**base, "id": "a8", "type": "pin", "msg_id": "5"},
            ):
                results.append(await adapter.deliver(action))
        finally:
            await peer.close()
            await adapter.stop()
        return peer, results

    peer, results = run(main())
    calls = {c["action"]: c for c in peer.calls}
    assert len({c["echo"] for c in peer.calls}) == len(peer.calls)
    send = calls["send_group_msg"]["params"]
    assert send["group_id"] == 123456789
    assert send["message"] == [
        {"type": "reply", "data": {"id": "77"}},
        {"type": "at", "data": {"qq": "2233445566"}},
        {"type": "text", "data": {"text": " 欢迎"}},
    ]
    assert calls["send_private_msg"]["params"]["user_id"] == 2233445566
    assert calls["set_group_kick"]["params"] == {"group_id": 123456789, "user_id": 2233445566, "reject_add_request": False}
    assert calls["delete_msg"]["params"] == {"message_id": 1850129371}
    assert calls["set_group_ban"]["params"]["duration"] == 3600
    assert calls["set_group_add_request"]["params"] == {"flag": "1793667500123456", "sub_type": "add", "approve": True}
    assert [r.status for r in results] == ["ok"] * 6 + ["failed", "failed"]
    assert results[0].platform_id == "901"
    assert "no pending join request" in results[6].reason
    assert "no action for 'pin'" in results[7].reason


def test_failures_retries_and_disconnects() -> None:
    async def main() -> list[DeliveryResult]:
        adapter, _ = await serving(options(api_timeout=0.05))
        action = {"v": 1, "id": "a1", "ts": "2026-11-02T00:00:00+00:00", "playbook": "t", "cause": "c",
                  "group": "qq-main", "room": "123456789", "type": "send", "text": "hi"}
        out = [await adapter.deliver(action)]  # nobody connected yet
        peer = Peer(adapter)
        try:
            await peer.connect()
            peer.answer = lambda c: {**fixture("v11_response_failed"), "echo": c["echo"]}
            out.append(await adapter.deliver(action))
            peer.answer = lambda c: {"status": "failed", "retcode": 1429, "data": {"retry_after": 7},
                                     "message": "rate limited", "echo": c["echo"]}
            out.append(await adapter.deliver(action))
            peer.answer = lambda c: None  # the implementation hangs
            out.append(await adapter.deliver(action))
        finally:
            await peer.close()
            await adapter.stop()
        return out

    offline, refused, limited, silent = run(main())
    assert offline.status == "retry" and "no OneBot implementation is connected" in offline.reason
    assert refused.status == "failed" and "send_group_msg: retcode 100: no permission" in refused.reason
    assert limited.status == "retry" and limited.retry_after == 7
    assert silent.status == "retry" and "no answer" in silent.reason


# ---------------------------------------------------------------- HTTP POST


def test_http_post_signature_is_checked() -> None:
    async def main() -> tuple[list[int], Collected, OneBotAdapter]:
        adapter, sink = await serving(options(max_payload_bytes=4096))
        body = orjson.dumps(fixture("v11_group_message"))
        good = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
        forged = "sha1=" + hmac.new(b"guess", body, hashlib.sha1).hexdigest()
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for headers in ({}, {"X-Signature": forged}, {"X-Signature": good[:-1] + "0"}, {"X-Signature": good}):
                    async with session.post(f"http://127.0.0.1:{adapter.port}/onebot/http", data=body,
                                            headers={"Content-Type": "application/json", "X-Self-ID": "10001000",
                                                     **headers}) as resp:
                        statuses.append(resp.status)
                async with session.post(f"http://127.0.0.1:{adapter.port}/onebot/http", data=b"x" * 10_000,
                                        headers={"X-Signature": good}) as resp:
                    statuses.append(resp.status)
        finally:
            await adapter.stop()
        return statuses, sink, adapter

    statuses, sink, adapter = run(main())
    assert statuses == [401, 403, 403, 204, 413]
    assert len(sink.events) == 1 and adapter.refused == 3 and adapter.bad_count == 1


def test_v12_webhook_needs_the_token_and_ws_offers_the_subprotocol() -> None:
    async def main() -> tuple[list[int], Collected, list[dict[str, Any]], str | None]:
        opts = options(version=12, secret=None, extensions=frozenset({"wx.delete_groupmember"}))
        adapter, sink = await serving(opts, rooms={"12345678@chatroom": "wx-main"})
        statuses = []
        peer = Peer(adapter, version=12)
        try:
            async with aiohttp.ClientSession() as session:
                for token in (None, "forged", TOKEN):
                    headers = {"X-OneBot-Version": "12"} | ({"Authorization": f"Bearer {token}"} if token else {})
                    async with session.post(f"http://127.0.0.1:{adapter.port}/onebot/http",
                                            json=fixture("v12_message_group"), headers=headers) as resp:
                        statuses.append(resp.status)
            await peer.connect()
            assert peer.ws is not None
            protocol = peer.ws.protocol
            await peer.send(fixture("v12_meta_connect"))
            await peer.send(fixture("v12_notice_group_member_increase"))
            await until(lambda: len(sink.events) == 2)
            base = {"v": 1, "ts": "2026-11-02T00:00:00+00:00", "playbook": "t", "cause": "c", "group": "wx-main",
                    "room": "12345678@chatroom"}
            assert (await adapter.deliver({**base, "id": "a1", "type": "send", "text": "hi",
                                           "mentions": ["wxid_carol"]})).status == "ok"
            assert (await adapter.deliver({**base, "id": "a2", "type": "remove", "member": "wxid_carol",
                                           "reason": "x"})).status == "ok"
        finally:
            await peer.close()
            await adapter.stop()
        return statuses, sink, peer.calls, protocol

    statuses, sink, calls, protocol = run(main())
    assert statuses == [401, 403, 204]
    assert protocol == "12.testimpl"
    assert [e.type for e in sink.events] == ["message", "member_joined"]
    assert calls[0]["action"] == "send_message"
    assert calls[0]["params"] == {
        "detail_type": "group", "group_id": "12345678@chatroom",
        "message": [{"type": "mention", "data": {"user_id": "wxid_carol"}}, {"type": "text", "data": {"text": " hi"}}],
    }
    assert calls[1] == {"action": "wx.delete_groupmember", "params": {"group_id": "12345678@chatroom",
                                                                     "user_list": ["wxid_carol"]}, "echo": calls[1]["echo"]}


# -------------------------------------------------- through the runtime


CONFIG = """
communities:
  - id: qq
    name: QQ community
    timezone: Asia/Shanghai
    locale: en
    groups:
      - {id: qq-main, platform: onebot, room: "123456789"}
      - {id: qq-admins, platform: onebot, room: "987654321", admin: true}
    playbooks:
      moderation: {}
      checkin: {}
"""


class Live:
    """Engine + runtime + OneBot adapter + peer, on fake time."""

    def __init__(self, db_url: str) -> None:
        self.db = open_engine(db_url)
        migrate(self.db)
        self.settings = settings_from_text(CONFIG, "<onebot test>")
        self.clock = FakeClock(datetime.fromtimestamp(1793667000, UTC))
        self.time = FakeTime(self.clock)
        self.adapter = OneBotAdapter(
            options(limits=Limits(None, None)), rooms=rooms_of(self.settings, "onebot"), clock=self.clock
        )
        engine = Engine(self.db, self.settings, clock=self.clock, capabilities={"onebot": self.adapter.capabilities})
        self.runtime = Runtime(engine, [self.adapter], mono=self.time.mono, sleep=self.time.sleep)
        self.peer = Peer(self.adapter)

    async def __aenter__(self) -> Live:
        self.task = asyncio.create_task(self.runtime.run())
        await until(lambda: self.adapter.port is not None, "the server")
        await self.peer.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.runtime.request_stop()
        await self.task
        await self.peer.close()

    def rows(self) -> list[dict[str, Any]]:
        t = m.table(m.ActionRow)
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(select(t).order_by(t.c.seq)).mappings()]

    def sends(self, room: int) -> list[dict[str, Any]]:
        return [c for c in self.peer.calls if c["action"] == "send_group_msg" and c["params"]["group_id"] == room]


def message(text: str, message_id: int, user: int = 2233445566) -> dict[str, Any]:
    p = fixture("v11_group_message")
    p.update(message_id=message_id, user_id=user, time=1793667660 + message_id % 100,
             message=[{"type": "text", "data": {"text": text}}])
    return p


def test_duplicate_deliveries_of_an_event_are_handled_once(db_url: str) -> None:
    async def main() -> Live:
        async with Live(db_url) as live:
            event = message("打卡", 1001)
            await live.peer.send(event)
            await live.peer.send(event)  # NapCat resends after a reconnect
            await until(lambda: live.runtime.report.outcomes.get("duplicate") == 1, "the duplicate")
            await until(lambda: len(live.sends(123456789)) == 1, "the reply")
            await turns(20)
        live.db.dispose()
        return live

    live = run(main())
    assert live.runtime.report.outcomes == {"handled": 1, "duplicate": 1}
    [reply] = live.sends(123456789)
    segments = reply["params"]["message"]
    assert segments[0] == {"type": "reply", "data": {"id": "1001"}}
    assert segments[1] == {"type": "at", "data": {"qq": "2233445566"}}
    assert "checked in" in segments[2]["data"]["text"]


def test_a_rate_limited_response_is_honoured(db_url: str) -> None:
    async def main() -> tuple[Live, list[float]]:
        times: list[float] = []
        async with Live(db_url) as live:
            def answer(call: dict[str, Any]) -> dict[str, Any]:
                times.append(live.time.mono())
                if len(times) == 1:
                    return {"status": "failed", "retcode": 1429, "data": {"retry_after": 40},
                            "message": "send too frequent", "echo": call["echo"]}
                return live.peer.ok(call)

            live.peer.answer = answer
            await live.peer.send(message("打卡", 1002))
            await until(lambda: live.runtime.report.retried == 1, "the rate-limited attempt")
            await live.time.advance(20)
            assert len(times) == 1
            await live.time.advance(25)
            await until(lambda: len(times) == 2, "the retry after the wait")
        live.db.dispose()
        return live, times

    live, times = run(main())
    assert times[1] - times[0] >= 40
    [row] = live.rows()
    assert row["status"] == "delivered" and row["attempts"] == 2 and "too frequent" in row["last_error"]


def test_no_permission_is_a_permanent_failure_and_the_admins_are_told(db_url: str) -> None:
    async def main() -> Live:
        async with Live(db_url) as live:
            def answer(call: dict[str, Any]) -> dict[str, Any]:
                if call["action"] == "delete_msg":
                    return {**fixture("v11_response_failed"), "echo": call["echo"]}
                return live.peer.ok(call)

            live.peer.answer = answer
            await live.peer.send(message("加微信 abc123 代理 http://spam.example.com", 1003))
            await until(lambda: len(live.sends(987654321)) == 1, "the admins' note")
        live.db.dispose()
        return live

    live = run(main())
    rows = {r["type"]: r for r in live.rows()}
    assert rows["delete"]["status"] == "failed" and rows["delete"]["attempts"] == 1
    assert "no permission" in rows["delete"]["last_error"]
    assert rows["notify_admins"]["downgraded_from"] == "delete" and rows["notify_admins"]["status"] == "delivered"
    note = live.sends(987654321)[0]["params"]["message"][-1]["data"]["text"]
    assert "delete a message" in note and "no permission" in note
    assert len([c for c in live.peer.calls if c["action"] == "delete_msg"]) == 1  # not retried

"""The Telegram adapter against a loopback Bot API peer (no real network).

The peer (:class:`qunyun.adapters.telegram.BotAPIPeer`) plays api.telegram.org
on 127.0.0.1 from the published Bot API, answering with the recorded-shape
responses in ``src/qunyun/adapters/telegram/fixtures``; the updates are the
fixtures beside them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.types import Update
from pydantic import ValidationError
from sqlalchemy import select

from qunyun.adapters.base import DeliveryResult, Limits
from qunyun.adapters.telegram import (
    BotAPIPeer,
    TelegramAdapter,
    TelegramOptions,
    TelegramSettings,
    mapping,
)
from qunyun.adapters.telegram.peer import fixture
from qunyun.config.model import settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.errors import ConfigError
from qunyun.core.events import BaseEvent
from qunyun.engine.engine import Engine
from qunyun.runtime import Runtime, rooms_of
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine
from tests.test_runtime import FakeTime, turns, until

TOKEN = "123456789:TEST-token_for-the-peer"
SECRET = "webhook-Secret_42"
CHAT = -1001234567890
ROOM = str(CHAT)
WANG, BOB, ADMIN, BOT = 111111111, 222222222, 333333333, 7000000001
NOW = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Harness:
    def __init__(self, peer: BotAPIPeer, adapter: TelegramAdapter) -> None:
        self.peer = peer
        self.adapter = adapter
        self.events: list[BaseEvent] = []
        self.accept = True
        self.sleeps: list[float] = []

    async def sink(self, event: Any) -> bool:
        if not self.accept:
            return False
        assert isinstance(event, BaseEvent)
        self.events.append(event)
        return True

    def dumped(self) -> list[dict[str, Any]]:
        return [e.model_dump(mode="json") for e in self.events]


@asynccontextmanager
async def live(*, mode: str = "polling", clock: FakeClock | None = None, start: bool = True,
               **opts: Any) -> AsyncIterator[Harness]:
    peer = await BotAPIPeer(TOKEN).start()
    harness: Harness

    async def sleep(seconds: float) -> None:
        harness.sleeps.append(seconds)
        await asyncio.sleep(0.001)

    webhook = {"webhook_port": 0, "webhook_secret": SECRET} if mode == "webhook" else {}
    options = TelegramOptions(token=TOKEN, api_base=peer.base, mode=mode, poll_timeout=1, **webhook, **opts)
    adapter = TelegramAdapter(
        options, rooms={ROOM: "g-main"}, group_names={"g-main": "晨跑群"}, clock=clock or FakeClock(NOW), sleep=sleep
    )
    harness = Harness(peer, adapter)
    try:
        if start:
            await adapter.start(harness.sink)
        yield harness
    finally:
        await adapter.stop()
        await peer.stop()


def by_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in events}


# ------------------------------------------------------------ receiving


ALL_UPDATES = [
    "update_message_text", "update_message_photo_reply", "update_new_chat_members", "update_chat_member_added",
    "update_chat_member_link", "update_left_chat_member", "update_chat_member_kicked", "update_chat_member_left",
    "update_chat_member_promoted", "update_message_reaction", "update_edited_message", "update_private_message",
    "update_forum_topic_message", "update_service_pinned", "update_anonymous_admin",
]


def test_long_polling_maps_every_update_type() -> None:
    async def main() -> Harness:
        async with live(start=False) as h:
            h.peer.push(*[fixture(n) for n in ALL_UPDATES], *fixture("update_message_media"))
            await h.adapter.start(h.sink)
            await until(lambda: h.adapter.offset == 800000121, "every update")
            return h

    h = run(main())
    ev = by_id(h.dumped())
    assert h.adapter.bad_count == 0
    # the call asked for chat_member and message_reaction, which Telegram only sends when asked
    first = h.peer.calls_to("getUpdates")[0]
    assert set(first["allowed_updates"]) >= {"message", "edited_message", "chat_member", "message_reaction"}
    assert first["timeout"] == 1 and "offset" not in first
    assert h.peer.calls_to("getUpdates")[-1]["offset"] == 800000121
    assert h.peer.calls_to("deleteWebhook")  # polling clears a webhook first

    text = ev[f"{CHAT}/msg/4101"]
    assert text["group"] == "g-main" and text["platform"] == "telegram"
    assert text["ts"] == "2026-01-01T01:00:00Z"
    assert text["actor"] == {"id": str(ADMIN), "name": "管理员", "username": "qy_admin"}
    assert text["text"].startswith("@bobli 早上好 😀 小王")
    assert text["mentions"] == [str(WANG)]  # text_mention; @bobli was not seen yet
    assert text["telegram"]["unresolved_mentions"] == ["@bobli"]
    assert text["content_type"] == "link"

    photo = ev[f"{CHAT}/msg/4102"]
    assert (photo["content_type"], photo["text"], photo["reply_to"]) == ("image", "打卡 第3天 🏃", "4101")
    kinds = {ev[f"{CHAT}/msg/{n}"]["content_type"] for n in (4103, 4104, 4105, 4106)}
    assert kinds == {"sticker", "voice", "file", "video"}
    assert ev[f"{CHAT}/msg/4105"]["text"] == "本周总结"

    # Bob added by the admin: a service message and a chat_member update, one event
    joins = [e for e in ev.values() if e["type"] == "member_joined"]
    assert [(j["actor"]["id"], j["via"], j["inviter"]) for j in joins] == [
        (str(BOB), "invite", str(ADMIN)), (str(WANG), "link", None),
    ]
    assert joins[0]["id"] == f"{CHAT}/join/{BOB}/1767229400"
    # 小王 removed by the admin: service message, then chat_member one second later — one event, `by` the admin
    lefts = [e for e in ev.values() if e["type"] == "member_left"]
    assert [(e["actor"]["id"], e["by"]) for e in lefts] == [(str(WANG), str(ADMIN)), (str(BOB), None)]

    reactions = [e for e in ev.values() if e["type"] == "reaction"]
    assert [(r["target"], r["emoji"]) for r in reactions] == [("4101", "❤"), ("4101", "custom:5368324170671202286")]
    edit = ev[f"{CHAT}/edit/4101/1767229900"]
    assert (edit["type"], edit["target"], edit["text"]) == ("edit", "4101", "早上好，大家")

    topic = ev[f"{CHAT}/msg/4120"]
    assert topic["reply_to"] is None and topic["telegram"]["topic"] == 4000  # the topic root is not a reply
    anonymous = ev[f"{CHAT}/msg/4122"]
    assert anonymous["actor"]["id"] == str(CHAT) and anonymous["actor"]["name"] == "qunyun 测试群"
    # private chat, pinned-message service message and a promotion are no events
    assert f"{BOB}/msg/12" not in ev and f"{CHAT}/msg/4121" not in ev
    assert len(h.events) == 6 + 2 + 2 + 2 + 1 + 2  # messages, joins, lefts, reactions, edit, topic + anonymous


def test_a_mention_by_username_resolves_once_the_member_was_seen() -> None:
    directory = mapping.Directory()
    update = Update.model_validate(fixture("update_message_text"))
    [first] = mapping.update_to_events(update, platform="telegram", rooms={}, directory=directory)
    assert first["mentions"] == [str(WANG)] and first["group"] == ROOM
    directory.see(Update.model_validate(fixture("update_message_photo_reply")).message.from_user)  # type: ignore[union-attr]
    [again] = mapping.update_to_events(update, platform="telegram", rooms={}, directory=directory)
    assert again["mentions"] == [str(BOB), str(WANG)]
    assert "unresolved_mentions" not in again["telegram"]


def test_utf16_helpers() -> None:
    text = "😀a中"
    assert mapping.utf16_len(text) == 4
    assert mapping.utf16_slice(text, 2, 1) == "a"
    assert mapping.utf16_slice(text, 0, 2) == "😀"


def oversized() -> dict[str, Any]:
    update = fixture("update_message_text")
    update["update_id"] = 800000201
    update["message"].update(message_id=4201, text="长" * 6000, entities=[])
    return update


def malformed() -> list[dict[str, Any]]:
    no_chat = {"update_id": 800000202, "message": {"message_id": 4202, "date": 1767229200, "text": "hi"}}
    bad_entity = fixture("update_message_text")
    bad_entity["update_id"] = 800000203
    bad_entity["message"]["entities"] = [{"type": "mention", "offset": 100, "length": 5}]
    no_from = {"update_id": 800000204, "message": {"message_id": 4204, "date": 1767229200, "text": "who?",
                                                   "chat": {"id": CHAT, "type": "supergroup", "title": "t"}}}
    bad_member = {"update_id": 800000205, "chat_member": {"chat": {"id": CHAT, "type": "supergroup"}, "date": 1}}
    return [no_chat, bad_entity, no_from, bad_member, {"message": {"text": "no update id"}}]


def test_malformed_and_oversized_updates_are_reported_and_skipped() -> None:
    async def main() -> Harness:
        async with live(start=False, max_update_bytes=8192) as h:
            good = fixture("update_message_photo_reply")
            good["update_id"] = 800000299
            h.peer.push(oversized(), *malformed(), good)
            await h.adapter.start(h.sink)
            await until(lambda: h.adapter.offset == 800000300, "the batch")
            return h

    h = run(main())
    assert [e.id for e in h.events] == [f"{CHAT}/msg/4102"]
    assert h.adapter.bad_count == 6
    what = {b.where: b.what for b in h.adapter.bad}
    assert "over the 8,192-byte limit" in what["getUpdates update 800000201"]
    assert "'message.chat'" in what["getUpdates update 800000202"]
    assert "outside the text" in what["getUpdates update 800000203"]
    assert "who did it" in what["getUpdates update 800000204"]
    assert "'chat_member.from'" in what["getUpdates update 800000205"]
    assert what["getUpdates"] == "an update without a numeric update_id"


def test_a_member_update_with_an_impossible_date_is_reported_not_raised() -> None:
    """A chat_member date beyond any calendar (found by mutating the fixtures) is a bad payload, not a crash."""
    async def main() -> tuple[Any, Harness]:
        async with live(start=False) as h:
            item = fixture("update_chat_member_added")
            item["chat_member"]["date"] = 10**30
            return await h.adapter.process(item, "test"), h

    taken, h = run(main())
    assert taken is None and h.events == []
    assert h.adapter.bad_count == 1 and "'date' is out of range" in h.adapter.bad[0].what


def test_an_unexpected_mapping_error_drops_the_update_and_polling_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mapping.update_to_events

    def flaky(update: Any, **kw: Any) -> list[dict[str, Any]]:
        if update.update_id == 800000298:
            raise RuntimeError("a bug in the mapping")
        return real(update, **kw)

    monkeypatch.setattr(mapping, "update_to_events", flaky)

    async def main() -> Harness:
        async with live(start=False) as h:
            first, second = fixture("update_message_text"), fixture("update_message_photo_reply")
            first["update_id"], second["update_id"] = 800000298, 800000299
            h.peer.push(first, second)
            await h.adapter.start(h.sink)
            await until(lambda: h.adapter.offset == 800000300, "the batch")
            return h

    h = run(main())
    assert [e.id for e in h.events] == [f"{CHAT}/msg/4102"]
    assert h.adapter.bad_count == 1 and "RuntimeError: a bug in the mapping" in h.adapter.bad[0].what


def test_duplicate_delivery_gives_the_same_event_id() -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with live(start=False) as h:
            h.peer.push(fixture("update_message_text"))
            await h.adapter.start(h.sink)
            await until(lambda: len(h.events) == 1, "the first delivery")
            # the process stops before its offset is confirmed: the same update comes again
            first = [e.id for e in h.events]
        async with live(start=False) as again:
            again.peer.push(fixture("update_message_text"))
            again.peer.push(fixture("update_new_chat_members"))
            again.peer.push(fixture("update_new_chat_members") | {"update_id": 800000300})  # resent under a new update id
            await again.adapter.start(again.sink)
            await until(lambda: again.adapter.offset == 800000301, "the redelivery")
            return first, [e.id for e in again.events]

    first, second = run(main())
    assert second[0] == first[0] == f"{CHAT}/msg/4101"
    assert second[1:] == [f"{CHAT}/join/{BOB}/1767229400"]  # the same join described twice is passed on once


def test_polling_confirms_its_offset_when_it_stops_and_backs_off_on_errors() -> None:
    async def main() -> Harness:
        async with live(start=False) as h:
            h.peer.fail("getUpdates", "response_conflict_webhook")
            h.peer.fail("getUpdates", {"ok": False, "error_code": 502, "description": "Bad Gateway"})
            h.peer.push(fixture("update_message_text"))
            await h.adapter.start(h.sink)
            await until(lambda: len(h.events) == 1, "the update after the errors")
        return h

    h = run(main())
    assert len(h.sleeps) == 2 and 0.5 <= h.sleeps[0] <= 1.0 and 1.0 <= h.sleeps[1] <= 2.0  # backoff with jitter
    assert h.peer.calls_to("getUpdates")[-1] == {"offset": 800000102, "limit": 1, "timeout": 0}
    assert h.peer.updates == []  # confirmed: Telegram forgets them


def test_events_are_not_confirmed_while_the_runtime_refuses_them() -> None:
    async def main() -> Harness:
        async with live(start=False) as h:
            h.accept = False
            h.peer.push(fixture("update_message_text"))
            await h.adapter.start(h.sink)
            await until(lambda: len(h.peer.calls_to("getUpdates")) >= 2, "a second poll")
            assert h.adapter.offset is None and h.sleeps and h.sleeps[0] == 1.0
            h.accept = True
            await until(lambda: len(h.events) == 1, "the update, taken at last")
        return h

    run(main())


# -------------------------------------------------------------- webhook


def test_webhook_checks_the_secret_token() -> None:
    async def main() -> tuple[Harness, list[int]]:
        async with live(mode="webhook", webhook_url="https://bot.example.org/telegram/webhook",
                        max_update_bytes=8192) as h:
            [registered] = h.peer.calls_to("setWebhook")
            assert registered["url"] == "https://bot.example.org/telegram/webhook"
            assert registered["secret_token"] == SECRET
            assert "chat_member" in registered["allowed_updates"]
            # Telegram would post to the public URL; here the peer posts straight to the adapter
            h.peer.webhook["url"] = f"http://127.0.0.1:{h.adapter.port}/telegram/webhook"
            update = fixture("update_message_text")
            statuses = [
                await h.peer.post_webhook(update, secret=None),
                await h.peer.post_webhook(update, secret="webhook-Secret_43"),
                await h.peer.post_webhook(update, secret=""),
            ]
            assert h.events == [] and h.adapter.bad_count == 0 and h.adapter.refused == 3
            statuses.append(await h.peer.post_webhook(update))
            statuses.append(await h.peer.post_webhook(update))  # Telegram retried it
            statuses.append(await h.peer.post_webhook(None, raw=b"{not json"))
            statuses.append(await h.peer.post_webhook(oversized()))
            statuses.append(await h.peer.post_webhook(malformed()[0]))
            return h, statuses

    h, statuses = run(main())
    assert statuses == [401, 401, 401, 200, 200, 200, 200, 200]
    assert [e.id for e in h.events] == [f"{CHAT}/msg/4101"] * 2  # the same id: the engine drops the second
    assert h.adapter.bad_count == 3
    assert h.adapter.bad[0].what.startswith("not valid JSON")
    assert "byte limit" in h.adapter.bad[1].what
    assert h.peer.calls_to("getUpdates") == []


# -------------------------------------------------------------- actions


def send(text: str, mentions: list[str] = (), reply_to: str | None = None, **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {"v": 1, "id": extra.pop("id", "act-1"), "ts": NOW.isoformat(), "group": "g-main", "room": ROOM,
            "type": "send", "text": text, "mentions": list(mentions), "reply_to": reply_to, "playbook": "welcome",
            "cause": "evt-1", **extra}


def action(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": fields.pop("id", f"act-{kind}"), "ts": NOW.isoformat(), "group": "g-main", "room": ROOM,
            "type": kind, "playbook": "moderation", "cause": "evt-1", **fields}


def test_send_places_mentions_with_utf16_offsets() -> None:
    async def main() -> tuple[Harness, list[DeliveryResult]]:
        async with live(start=False) as h:
            h.peer.push(fixture("update_message_photo_reply"), fixture("update_chat_member_link"))
            await h.adapter.start(h.sink)
            await until(lambda: len(h.events) == 2, "the names")
            results = [
                await h.adapter.deliver(send("😀😀 欢迎 @小王！🎉 还有 @Bob Li 一起打卡", [str(WANG), str(BOB)], reply_to="4102")),
                await h.adapter.deliver(send("早 @someone、@另一位 👋", ["444", "555"])),
                await h.adapter.deliver(send("👋 大家好", ["666"])),
            ]
            return h, results

    h, results = run(main())
    assert [r.status for r in results] == ["ok"] * 3
    assert results[0].platform_id == "5001"
    first, second, third = h.peer.calls_to("sendMessage")
    text = "😀😀 欢迎 @小王！🎉 还有 @Bob Li 一起打卡"
    assert first["chat_id"] == CHAT and first["text"] == text
    assert first["reply_parameters"] == {"message_id": 4102, "allow_sending_without_reply": True}
    # 😀 is two UTF-16 units, Chinese one: "😀😀 欢迎 " is 8 units; "@小王！🎉 还有 " 10 more
    assert [(e["type"], e["offset"], e["length"], e["user"]["id"]) for e in first["entities"]] == [
        ("text_mention", 8, 3, WANG), ("text_mention", 18, 7, BOB),
    ]
    assert [(e["offset"], e["length"]) for e in first["entities"]] == [
        (u16("😀😀 欢迎 "), u16("@小王")), (u16("😀😀 欢迎 @小王！🎉 还有 "), u16("@Bob Li")),
    ]
    # names unknown: each takes the next "@word" in order
    assert [(e["offset"], e["length"], e["user"]["id"]) for e in second["entities"]] == [(2, 8, 444), (11, 4, 555)]
    # nowhere in the text: appended, so they are still notified
    assert third["text"] == "👋 大家好 @666"
    assert third["entities"][0]["offset"] == u16("👋 大家好 ") == 7
    assert "reply_parameters" not in second


def h_text() -> str:
    lines = [f"{i:03d} {'签到' * 30} 😀" for i in range(120)]
    return "\n".join(lines) + "\n@小王 加油"


def test_a_long_message_is_sent_in_pieces_and_the_rest_after_a_retry() -> None:
    async def main() -> tuple[Harness, list[DeliveryResult]]:
        async with live() as h:
            text = h_text()
            long = send(text, [str(WANG)], id="act-long")
            h.peer.fail("sendMessage", "response_too_many_requests", after=1)  # the second piece is refused
            first = await h.adapter.deliver(long)
            second = await h.adapter.deliver(long)
            return h, [first, second]

    h, (first, second) = run(main())
    assert first.status == "retry" and first.retry_after == 17
    calls = [c.params["text"] for c in h.peer.calls if c.method == "sendMessage"]
    assert len(calls) >= 3 and all(u16(t) <= 4096 for t in calls)
    assert calls[1] == calls[2]  # the refused piece is sent again, the first one is not
    assert "".join([calls[0], *calls[2:]]).replace("\n", "") == h_text().replace("\n", "")
    assert second.status == "ok"
    assert h.peer.calls_to("sendMessage")[-1]["entities"][0]["user"]["id"] == WANG


def test_every_action_becomes_its_api_call() -> None:
    clock = FakeClock(NOW)

    async def main() -> tuple[Harness, dict[str, DeliveryResult]]:
        async with live(clock=clock, start=False) as h:
            h.adapter.locales["g-main"] = "zh-CN"
            results = {
                "direct": await h.adapter.deliver(action("direct", member=str(BOB), text="你好")),
                "delete": await h.adapter.deliver(action("delete", msg_id="4101")),
                "remove": await h.adapter.deliver(action("remove", member=str(WANG), reason="spam")),
                "remove_channel": await h.adapter.deliver(action("remove", member="-1001111111111")),
                "mute": await h.adapter.deliver(action("mute", member=str(WANG),
                                                       until=(NOW + timedelta(hours=1)).isoformat())),
                "mute_short": await h.adapter.deliver(action("mute", member=str(BOB),
                                                             until=(NOW + timedelta(seconds=5)).isoformat())),
                "mute_over": await h.adapter.deliver(action("mute", member=str(BOB),
                                                            until=(NOW - timedelta(minutes=1)).isoformat())),
                "invite": await h.adapter.deliver(action("invite", member=str(BOB))),
                "pin": await h.adapter.deliver(action("pin", msg_id="4101")),
                "create_group": await h.adapter.deliver(action("create_group", template="study")),
                "bad_member": await h.adapter.deliver(action("remove", member="@bobli")),
            }
            return h, results

    h, r = run(main())
    assert {k: v.status for k, v in r.items()} == {
        "direct": "ok", "delete": "ok", "remove": "ok", "remove_channel": "ok", "mute": "ok", "mute_short": "ok",
        "mute_over": "ok", "invite": "ok", "pin": "ok", "create_group": "failed", "bad_member": "failed",
    }
    order = [c.method for c in h.peer.calls]
    assert order == [
        "sendMessage", "deleteMessage", "banChatMember", "unbanChatMember", "banChatSenderChat", "unbanChatSenderChat",
        "restrictChatMember", "restrictChatMember", "createChatInviteLink", "sendMessage", "pinChatMessage",
    ]
    dm, invite_dm = h.peer.calls_to("sendMessage")
    assert dm == {"chat_id": BOB, "text": "你好"}
    assert h.peer.calls_to("deleteMessage") == [{"chat_id": CHAT, "message_id": 4101}]
    assert h.peer.calls_to("banChatMember") == [{"chat_id": CHAT, "user_id": WANG, "revoke_messages": False}]
    assert h.peer.calls_to("unbanChatMember") == [{"chat_id": CHAT, "user_id": WANG, "only_if_banned": True}]
    assert h.peer.calls_to("banChatSenderChat") == [{"chat_id": CHAT, "sender_chat_id": -1001111111111}]
    mute, short = h.peer.calls_to("restrictChatMember")
    assert mute["until_date"] == int((NOW + timedelta(hours=1)).timestamp())
    assert mute["use_independent_chat_permissions"] is True
    assert mute["permissions"]["can_send_messages"] is False and not any(mute["permissions"].values())
    assert short["until_date"] == int((NOW + timedelta(seconds=31)).timestamp())  # under 30 s would be "for ever"
    [link] = h.peer.calls_to("createChatInviteLink")
    assert link == {"chat_id": CHAT, "name": f"qunyun {BOB}", "member_limit": 1,
                    "expire_date": int((NOW + timedelta(hours=24)).timestamp())}
    assert invite_dm["chat_id"] == BOB and "晨跑群" in invite_dm["text"]
    assert "https://t.me/+Qy7kLm2NpQrStUvW1" in invite_dm["text"] and "24 小时" in invite_dm["text"]
    assert h.peer.calls_to("pinChatMessage") == [{"chat_id": CHAT, "message_id": 4101, "disable_notification": True}]
    assert "cannot do 'create_group'" in r["create_group"].reason
    assert "not a Telegram user id" in r["bad_member"].reason


def test_rate_limits_and_refusals() -> None:
    async def main() -> tuple[Harness, dict[str, DeliveryResult]]:
        async with live(start=False) as h:
            h.peer.no_dm.add(BOB)
            h.peer.fail("sendMessage", "response_too_many_requests")
            out = {"429": await h.adapter.deliver(send("早安"))}
            out["dm_403"] = await h.adapter.deliver(action("direct", member=str(BOB), text="hi"))
            out["invite_403"] = await h.adapter.deliver(action("invite", member=str(BOB)))
            h.peer.fail("restrictChatMember", "response_not_enough_rights")
            out["rights_400"] = await h.adapter.deliver(action("mute", member=str(WANG),
                                                               until=(NOW + timedelta(hours=1)).isoformat()))
            h.peer.fail("sendMessage", "response_migrated")
            out["migrated"] = await h.adapter.deliver(send("早安"))
            h.peer.fail("deleteMessage", {"ok": False, "error_code": 400, "description": "Bad Request: message to delete not found"})
            out["gone"] = await h.adapter.deliver(action("delete", msg_id="4101"))
            h.peer.fail("pinChatMessage", {"ok": False, "error_code": 500, "description": "Internal Server Error"})
            out["500"] = await h.adapter.deliver(action("pin", msg_id="4101"))
            return h, out

    h, out = run(main())
    assert out["429"] == DeliveryResult.retry("sendMessage: 429 Too Many Requests, retry after 17 s", after=17.0)
    assert out["dm_403"].status == "failed"
    assert "bot can't initiate conversation" in out["dm_403"].reason and "pressed Start" in out["dm_403"].reason
    assert out["invite_403"].status == "failed" and "has not started a chat" in out["invite_403"].reason
    [revoked] = h.peer.calls_to("revokeChatInviteLink")  # the unusable link is not left lying around
    assert revoked["invite_link"] == "https://t.me/+Qy7kLm2NpQrStUvW1"
    assert out["rights_400"] == DeliveryResult.failed(
        "restrictChatMember: Bad Request: not enough rights to restrict/unrestrict chat member")
    assert out["migrated"].status == "failed" and 'room: "-1009876543210"' in out["migrated"].reason
    assert out["gone"].status == "ok"
    assert out["500"].status == "retry" and out["500"].retry_after is None


def test_the_bot_removed_from_a_group(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[Harness, DeliveryResult, Any, Any]:
        async with live(start=False) as h:
            h.peer.push(fixture("update_my_chat_member_kicked"))
            with caplog.at_level(logging.ERROR, "qunyun.adapters.telegram"):
                await h.adapter.start(h.sink)
                await until(lambda: ROOM in h.adapter.removed_from, "the removal")
            calls = len(h.peer.calls)
            refused = await h.adapter.deliver(send("还在吗"))
            assert len(h.peer.calls) == calls  # not even tried
            h.peer.members[(CHAT, BOT)] = {"user": {"id": BOT, "is_bot": True, "first_name": "qunyun"},
                                           "status": "kicked", "until_date": 0}
            checks = await h.adapter.check()
            back = fixture("update_my_chat_member_kicked")
            back["update_id"] = 800000400
            back["my_chat_member"]["old_chat_member"] = {"user": back["my_chat_member"]["new_chat_member"]["user"],
                                                         "status": "left"}
            back["my_chat_member"]["new_chat_member"]["status"] = "member"
            h.peer.push(back)
            await until(lambda: ROOM not in h.adapter.removed_from, "the bot added back")
            return h, refused, checks, await h.adapter.deliver(send("我回来了"))

    h, refused, checks, again = run(main())
    assert h.events == []  # the bot's own membership is not a member event
    assert "the bot was banned from group g-main" in caplog.text and "管理员 (333333333)" in caplog.text
    assert refused.status == "failed" and "removed from this Telegram group" in refused.reason
    group = checks[-1]
    assert group.ok is False and "not in this group" in group.detail and "管理员" in group.detail
    assert again.status == "ok"


def test_check_reports_connectivity_and_rights() -> None:
    async def main() -> list[list[Any]]:
        async with live(start=False) as h:
            h.adapter.rooms["-1002"] = "g-plain"
            h.adapter.rooms["-1003"] = "g-partial"
            h.adapter.rooms["-1004"] = "g-quiet"
            h.adapter.needs["g-quiet"] = frozenset({"send"})
            member = fixture("response_getChatMember_member")["result"]
            h.peer.members[(-1002, BOT)] = member
            h.peer.members[(-1004, BOT)] = member
            partial = fixture("response_getChatMember_administrator")["result"] | {"can_restrict_members": False}
            h.peer.members[(-1003, BOT)] = partial
            good = await h.adapter.check()
        async with live(start=False) as h2:
            h2.adapter.bot = type(h2.adapter.bot)("999:wrong", session=h2.adapter.bot.session)
            bad = await h2.adapter.check()
        return [good, bad]

    good, bad = run(main())
    rows = {c.name: c for c in good}
    me = rows["telegram (Telegram)"]
    assert me.ok is True and "@qunyun_bot" in me.detail and "privacy mode" in me.notes[0]
    assert rows["telegram group g-main"].ok is True
    assert rows["telegram group g-plain"].ok is False and "not an administrator" in rows["telegram group g-plain"].detail
    partial = rows["telegram group g-partial"]
    assert partial.ok is False and "can_restrict_members" in partial.detail and "mute, remove" in partial.notes[0]
    assert rows["telegram group g-quiet"].ok is True
    [token] = bad
    assert token.ok is False and "token is refused" in token.detail


def test_check_in_webhook_mode_reads_the_webhook_info() -> None:
    async def main() -> list[Any]:
        async with live(mode="webhook", webhook_url="https://bot.example.org/telegram/webhook") as h:
            h.adapter.rooms.clear()
            return await h.adapter.check()

    checks = run(main())
    assert checks[1].ok is True and "https://bot.example.org/telegram/webhook" in checks[1].detail


# ------------------------------------------------------------- settings


def test_settings_are_validated_and_secrets_come_from_the_environment() -> None:
    spec = TelegramSettings.model_validate({"type": "telegram"})
    options = TelegramOptions.from_settings(spec, {"QUNYUN_TELEGRAM_TOKEN": TOKEN})
    assert options.mode == "polling" and options.limits.per_group is not None
    assert (options.limits.per_group.count, options.limits.per_group.per) == (20, 60.0)
    assert options.limits.overall is not None and options.limits.overall.count == 30
    with pytest.raises(ValidationError, match="needs a `webhook:` block"):
        TelegramSettings.model_validate({"type": "telegram", "mode": "webhook"})
    with pytest.raises(ValidationError, match="only posts to https"):
        TelegramSettings.model_validate({"type": "telegram", "mode": "webhook",
                                         "webhook": {"url": "http://x.org/h", "secret_env": "S"}})
    with pytest.raises(ValidationError, match="not 8080"):
        TelegramSettings.model_validate({"type": "telegram", "mode": "webhook",
                                         "webhook": {"url": "https://x.org:8080/h", "secret_env": "S"}})
    with pytest.raises(ValidationError, match="token"):
        TelegramSettings.model_validate({"type": "telegram", "token": "123:abc"})  # the token itself: refused
    hook = TelegramSettings.model_validate({"type": "telegram", "mode": "webhook", "webhook": {"secret_env": "HOOK"}})
    with pytest.raises(ConfigError) as err:
        TelegramOptions.from_settings(hook, {"QUNYUN_TELEGRAM_TOKEN": "not-a-token", "HOOK": "has spaces!"})
    assert len(err.value.problems) == 2
    assert "QUNYUN_TELEGRAM_TOKEN does not hold a bot token" in err.value.problems[0]
    assert "HOOK may only hold" in err.value.problems[1]
    with pytest.raises(ConfigError, match="QUNYUN_TELEGRAM_TOKEN is not set"):
        TelegramOptions.from_settings(spec, {})
    ok = TelegramOptions.from_settings(hook, {"QUNYUN_TELEGRAM_TOKEN": TOKEN, "HOOK": SECRET})
    assert ok.webhook_secret == SECRET and ok.bot_id == 123456789
    with pytest.raises(ValueError, match="secret"):
        replace(ok, webhook_secret=None)


# -------------------------------------------------- through the runtime


CONFIG = """
communities:
  - id: tg
    name: Telegram community
    timezone: Asia/Shanghai
    locale: zh-CN
    groups:
      - {id: tg-main, platform: telegram, room: "-1001234567890"}
      - {id: tg-admins, platform: telegram, room: "-1002", admin: true}
    playbooks:
      checkin: {}
"""


def test_through_the_runtime_a_redelivered_update_is_handled_once(db_url: str) -> None:
    async def main() -> tuple[BotAPIPeer, Runtime, list[dict[str, Any]]]:
        db = open_engine(db_url)
        migrate(db)
        settings = settings_from_text(CONFIG, "<telegram test>")
        clock = FakeClock(datetime(2026, 1, 1, 1, 0, 5, tzinfo=UTC))
        time = FakeTime(clock)
        peer = await BotAPIPeer(TOKEN).start()
        adapter = TelegramAdapter(
            TelegramOptions(token=TOKEN, api_base=peer.base, poll_timeout=1, limits=Limits(None, None)),
            rooms=rooms_of(settings, "telegram"), clock=clock,
        )
        engine = Engine(db, settings, clock=clock, capabilities={"telegram": adapter.capabilities})
        runtime = Runtime(engine, [adapter], mono=time.mono, sleep=time.sleep)
        checkin = fixture("update_message_photo_reply")
        peer.push(checkin, checkin | {"update_id": 800000500})  # the same message delivered twice
        task = asyncio.create_task(runtime.run())
        try:
            await until(lambda: runtime.report.outcomes.get("duplicate") == 1, "the duplicate")
            await until(lambda: len(peer.calls_to("sendMessage")) == 1, "the reply")
            await turns(20)
        finally:
            runtime.request_stop()
            await task
            await peer.stop()
        t = m.table(m.ActionRow)
        with db.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(t).order_by(t.c.seq)).mappings()]
        db.dispose()
        return peer, runtime, rows

    peer, runtime, rows = run(main())
    assert runtime.report.outcomes == {"handled": 1, "duplicate": 1}
    [reply] = peer.calls_to("sendMessage")
    assert reply["chat_id"] == CHAT
    assert reply["reply_parameters"]["message_id"] == 4102
    [mention] = reply["entities"]
    assert mention["user"]["id"] == BOB
    assert reply["text"][mention["offset"]: mention["offset"] + mention["length"]].startswith("@")
    assert [r["status"] for r in rows] == ["delivered"]

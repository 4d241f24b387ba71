"""The Matrix adapter: recorded payloads, then end to end against a real Synapse.

The first half maps the payloads recorded from Synapse 1.163 (``fixtures/``)
without a server. The second half starts Synapse once for the session
(:mod:`tests.adapters.synapse`), registers a fresh bot and fresh humans for
each test, and asserts on what the humans' own Matrix clients (mautrix
``ClientAPI``) receive.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mautrix.client import ClientAPI
from mautrix.types import EventType, RoomCreatePreset
from pydantic import ValidationError

from qunyun.adapters.base import PayloadError
from qunyun.adapters.matrix import MatrixAdapter, MatrixSettings
from qunyun.adapters.matrix import mapping as mx
from qunyun.core.errors import ConfigError
from qunyun.core.events import BaseEvent
from tests.adapters.synapse import Account, Synapse, synapse_server, wait_for

__all__ = ["synapse_server"]  # the session fixture, used by the tests below

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[2] / "src/qunyun/adapters/matrix/fixtures"
BOT = "@bot:qunyun.test"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def mapped(name: str, **kw: Any) -> dict[str, Any] | None:
    fx = fixture(name)
    return mx.to_event(fx["event"], room=fx["room_id"], group="g1", platform="matrix", self_id=BOT,
                       names=kw.get("names", {"@bob:qunyun.test": "小王"}))


# ------------------------------------------------------------- recorded payloads


def test_recorded_member_events_map_to_joins_and_leaves() -> None:
    joined = mapped("member_join_invited")
    assert joined is not None
    assert joined["type"] == "member_joined"
    assert joined["actor"] == {"id": "@bob:qunyun.test", "name": "小王"}
    assert joined["via"] == "invite" and joined["inviter"] == "@alice:qunyun.test"
    again = mapped("member_join")  # joined again on their own after leaving
    assert again is not None and again["via"] == "unknown" and again["inviter"] is None
    kicked = mapped("member_kicked")
    assert kicked is not None and kicked["type"] == "member_left" and kicked["by"] == "@alice:qunyun.test"
    left = mapped("member_leave")
    assert left is not None and left["type"] == "member_left" and left["by"] is None
    banned = mapped("member_banned")
    assert banned is not None and banned["by"] == "@alice:qunyun.test" and banned["matrix_membership"] == "ban"
    assert mapped("member_invite") is None  # an invitation is not a member yet


def test_recorded_messages_reactions_edits_and_redactions() -> None:
    text = mapped("message_text_mention")
    assert text is not None
    assert text["type"] == "message" and text["text"] == "打卡 第1天 @Alice"
    assert text["mentions"] == ["@alice:qunyun.test"]
    assert text["msg_id"] == text["id"] == fixture("message_text_mention")["event"]["event_id"]
    assert text["actor"]["name"] == "小王"

    reply = mapped("message_reply")
    assert reply is not None
    assert reply["reply_to"] == text["msg_id"]
    assert reply["text"] == "加油"  # the quoted fallback is stripped

    reaction = mapped("reaction")
    assert reaction == {**reaction, "type": "reaction", "target": text["msg_id"], "emoji": "👍"}

    edit = mapped("message_edit")
    assert edit is not None and edit["type"] == "edit" and edit["target"] == text["msg_id"]
    assert edit["text"] == "打卡 第2天"

    image = mapped("message_image")
    assert image is not None and image["content_type"] == "image" and image["text"] == ""

    assert mapped("message_redacted") is None  # redacted before we saw it: nothing left to read
    recall = mapped("redaction")
    assert recall is not None and recall["type"] == "recall"
    assert recall["target"] == fixture("message_redacted")["event"]["event_id"]


def test_every_mapped_fixture_is_a_valid_event() -> None:
    from qunyun.core.events import parse_event

    count = 0
    for path in sorted(FIXTURES.glob("m*.json")) + sorted(FIXTURES.glob("r*.json")):
        data = mapped(path.stem)
        if data is not None:
            parse_event(data, where=path.name)
            count += 1
    assert count >= 11


def test_the_bots_own_events_are_ignored() -> None:
    fx = fixture("message_text_mention")
    me = fx["event"]["sender"]
    assert mx.to_event(fx["event"], room=fx["room_id"], group="g1", platform="matrix", self_id=me) is None


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "m.room.message", "sender": "@x:y", "event_id": "$1", "origin_server_ts": "yesterday",
          "content": {"msgtype": "m.text", "body": "hi"}}, "origin_server_ts"),
        ({"type": "m.room.message", "sender": "@x:y", "event_id": "$1", "origin_server_ts": 1,
          "content": {"msgtype": "m.text", "body": 7}}, "content.body"),
        ({"type": "m.room.message", "sender": "@x:y", "origin_server_ts": 1,
          "content": {"msgtype": "m.text", "body": "hi"}}, "event_id"),
        ({"type": "m.reaction", "sender": "@x:y", "event_id": "$1", "origin_server_ts": 1,
          "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$2"}}}, "key"),
        ({"type": "m.room.member", "sender": "@x:y", "event_id": "$1", "origin_server_ts": 1, "state_key": "@x:y",
          "content": "join"}, "content"),
        ({"type": "m.room.message", "sender": "@x\u0000:y", "event_id": "$1", "origin_server_ts": 1,
          "content": {"msgtype": "m.text", "body": "hi"}}, "sender"),
    ],
)
def test_malformed_payloads_name_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError, match=field.split(".")[-1]):
        mx.to_event(event, room="!r:y", group="g1", platform="matrix", self_id=BOT)


def test_bad_payloads_are_reported_and_dropped_without_stopping(tmp_path: Path) -> None:
    adapter = MatrixAdapter(_settings(tmp_path, "http://127.0.0.1:9"), rooms={"!r:y": "g1"}, access_token="t")
    got: list[BaseEvent] = []

    async def sink(event: Any) -> bool:
        got.append(event)
        return True

    async def go() -> None:
        adapter._sink = sink
        good = fixture("message_text_mention")["event"]
        await adapter._hand_over("!r:y", "g1", {**good, "origin_server_ts": "soon"})
        await adapter._hand_over("!r:y", "g1", {**good, "content": {"msgtype": "m.text", "body": "x" * 10, "m.relates_to": 5}})
        await adapter._hand_over("!r:y", "g1", good)

    run(go())
    assert [e.id for e in got] == [fixture("message_text_mention")["event"]["event_id"]] * 2
    assert adapter.bad_count == 1 and "origin_server_ts" in adapter.bad[0].what


def test_the_sync_position_is_written_at_most_once_a_second_and_always_at_stop(tmp_path: Path) -> None:
    adapter = MatrixAdapter(_settings(tmp_path, "http://127.0.0.1:9"), rooms={"!r:y": "g1"}, access_token="t")
    adapter.STATE_SAVE_SECONDS = 3600.0  # nothing in this test is an hour apart

    def written() -> str:
        return str(json.loads(adapter.state_path.read_text(encoding="utf-8"))["next_batch"])

    async def go() -> list[str]:
        seen = []
        for token in ("s1", "s2", "s3"):
            assert await adapter._process({"next_batch": token, "rooms": {}})
            seen.append(written())
        await adapter.stop()
        seen.append(written())
        return seen

    # the first sync is written at once, the next two wait for their turn, the stop writes the last one taken
    assert run(go()) == ["s1", "s1", "s1", "s3"]
    assert adapter.next_batch == "s3" and adapter.syncs == 3


def test_send_content_has_pills_and_m_mentions() -> None:
    content = mx.message_content(
        "欢迎 @小王 和 @Carol！", ["@bob:qunyun.test", "@carol:qunyun.test", "@dan:qunyun.test"],
        names={"@bob:qunyun.test": "小王", "@carol:qunyun.test": "Carol"}, reply_to="$q",
    )
    assert content["m.mentions"] == {"user_ids": ["@bob:qunyun.test", "@carol:qunyun.test", "@dan:qunyun.test"]}
    assert '<a href="https://matrix.to/#/@bob:qunyun.test">@小王</a>' in content["formatted_body"]
    assert '<a href="https://matrix.to/#/@carol:qunyun.test">@Carol</a>' in content["formatted_body"]
    # not written in the text: added at the end, so the person sees their name
    assert content["formatted_body"].endswith('<a href="https://matrix.to/#/@dan:qunyun.test">dan</a>')
    assert content["body"] == "欢迎 @小王 和 @Carol！ dan"
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$q"}}
    hostile = mx.message_content("<b>x</b>", [], names={})
    assert hostile["formatted_body"] == "&lt;b&gt;x&lt;/b&gt;"


def test_settings_name_environment_variables_never_secrets() -> None:
    ok = MatrixSettings(homeserver="https://m.example.org/", user_id="@bot:example.org", access_token_env="MX_TOKEN")
    assert ok.homeserver == "https://m.example.org"
    assert ok.secrets({"MX_TOKEN": "syt_abc"}) == ("syt_abc", None)
    with pytest.raises(ConfigError, match="MX_TOKEN"):
        ok.secrets({})
    with pytest.raises(ValidationError, match="environment variable"):
        MatrixSettings(homeserver="https://m.example.org", user_id="@bot:example.org", access_token_env="syt_a.b-c")
    with pytest.raises(ValidationError, match="access_token_env or password_env"):
        MatrixSettings(homeserver="https://m.example.org", user_id="@bot:example.org")
    with pytest.raises(ValidationError, match="user id"):
        MatrixSettings(homeserver="https://m.example.org", user_id="bot", password_env="P")
    with pytest.raises(ValidationError, match="Extra inputs"):
        MatrixSettings.model_validate({"homeserver": "https://m.example.org", "user_id": "@b:e.org",
                                       "password_env": "P", "access_token": "oops"})


# ------------------------------------------------------------------- live world


def _settings(tmp: Path, url: str, user_id: str = BOT, **kw: Any) -> MatrixSettings:
    kw.setdefault("sync_timeout_seconds", 10)
    return MatrixSettings(homeserver=url, user_id=user_id, access_token_env="QUNYUN_MATRIX_TOKEN",
                          state_file=str(tmp / "matrix-state.json"), **kw)


class Human:
    """A person in the chat, with their own Matrix client and /sync."""

    def __init__(self, server: Synapse, account: Account) -> None:
        self.account = account
        self.id = account.user_id
        self.api = ClientAPI(base_url=server.url, token=account.access_token, mxid=account.user_id)
        self.since: str | None = None
        self.filter_id: str | None = None
        self.timeline: dict[str, list[dict[str, Any]]] = {}
        self.invites: set[str] = set()

    async def sync(self, timeout_ms: int = 0) -> None:
        if self.filter_id is None:
            made = await self.api.api.request("POST", f"/_matrix/client/v3/user/{self.id}/filter",
                                              {"room": {"timeline": {"limit": 1000}}})
            self.filter_id = made["filter_id"]
        resp = await self.api.sync(since=self.since, timeout=timeout_ms, filter_id=self.filter_id)
        self.since = resp["next_batch"]
        rooms = resp.get("rooms", {})
        for room, data in rooms.get("join", {}).items():
            self.timeline.setdefault(room, []).extend(data.get("timeline", {}).get("events", []))
        for room, data in rooms.get("leave", {}).items():
            self.timeline.setdefault(room, []).extend(data.get("timeline", {}).get("events", []))
        self.invites |= set(rooms.get("invite", {}))

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        async def check() -> bool:
            await self.sync(200)
            return predicate()

        await wait_for(check, f"{self.id}: {what}", timeout=timeout, step=0)

    def messages(self, room: str, sender: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.timeline.get(room, []) if e.get("type") == "m.room.message"
                and (sender is None or e.get("sender") == sender) and e.get("content")]

    def bodies(self, room: str, sender: str | None = None) -> list[str]:
        return [e["content"].get("body", "") for e in self.messages(room, sender)]

    def redacted(self, room: str) -> set[str]:
        return {e["redacts"] if "redacts" in e else e["content"]["redacts"]
                for e in self.timeline.get(room, []) if e.get("type") == "m.room.redaction"}

    def membership(self, room: str, user: str) -> list[tuple[str, str]]:
        return [(e["content"].get("membership"), e["sender"]) for e in self.timeline.get(room, [])
                if e.get("type") == "m.room.member" and e.get("state_key") == user]

    async def say(self, room: str, text: str, **extra: Any) -> str:
        return str(await self.api.send_message_event(room, EventType.ROOM_MESSAGE,
                                                     {"msgtype": "m.text", "body": text, **extra}))

    async def close(self) -> None:
        await self.api.api.session.close()


class Scene:
    """Fresh accounts on the session's Synapse, and cleanup of what a test started."""

    def __init__(self, server: Synapse, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.tag = secrets.token_hex(3)
        self.bot = server.register(f"bot{self.tag}", displayname="群运")
        self.humans: list[Human] = []
        self.adapters: list[MatrixAdapter] = []

    def human(self, name: str, displayname: str) -> Human:
        h = Human(self.server, self.server.register(f"{name}{self.tag}", displayname=displayname))
        self.humans.append(h)
        return h

    async def room(self, owner: Human, *, bot_power: int = 50, invite: list[str] = ()) -> str:  # type: ignore[assignment]
        room = await owner.api.create_room(
            preset=RoomCreatePreset.PUBLIC, invitees=[self.bot.user_id, *invite],
            power_level_override={"users": {self.bot.user_id: bot_power}} if bot_power else None,
        )
        return str(room)

    def adapter(self, rooms: dict[str, str], *, password: bool = False, **kw: Any) -> MatrixAdapter:
        settings = _settings(self.tmp, self.server.url, self.bot.user_id, **kw)
        a = MatrixAdapter(settings, rooms=rooms, access_token=None if password else self.bot.access_token,
                          password=self.bot.password if password else None)
        self.adapters.append(a)
        return a

    async def close(self) -> None:
        for a in self.adapters:
            await a.stop()
        for h in self.humans:
            await h.close()


class Sink:
    def __init__(self) -> None:
        self.events: list[BaseEvent] = []
        self.accepting = True

    async def __call__(self, event: Any) -> bool:
        if not self.accepting:
            return False
        self.events.append(event)
        return True

    def of(self, etype: str) -> list[Any]:
        return [e for e in self.events if e.type == etype]


def live(fn: Callable[[Scene], Awaitable[None]]) -> Callable[[Synapse, Path], None]:
    """Run ``fn(scene)`` on the session's Synapse, cleaning up afterwards."""

    def test(synapse_server: Synapse, tmp_path: Path) -> None:
        async def go() -> None:
            scene = Scene(synapse_server, tmp_path)
            try:
                await fn(scene)
            finally:
                await scene.close()

        run(go())

    test.__name__ = fn.__name__
    test.__doc__ = fn.__doc__
    return test


@live
async def test_live_room_events_reach_the_sink_in_order(scene: Scene) -> None:
    """Joins, messages with mentions, replies, reactions, edits, redactions and leaves, as the bot syncs them."""
    alice, bob = scene.human("alice", "Alice"), scene.human("bob", "小王")
    room = await scene.room(alice)
    adapter = scene.adapter({room: "g1"})
    sink = Sink()
    await adapter.start(sink)
    await bob.api.join_room(room)
    hello = await bob.say(room, "大家好 @Alice", **{"m.mentions": {"user_ids": [alice.id]}})
    await alice.api.send_message_event(room, EventType.REACTION, {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": hello, "key": "🎉"}})
    await alice.say(room, f"> <{bob.id}> 大家好\n\n欢迎", **{"m.relates_to": {"m.in_reply_to": {"event_id": hello}}})
    await bob.say(room, "* 大家好呀", **{"m.new_content": {"msgtype": "m.text", "body": "大家好呀"},
                                       "m.relates_to": {"rel_type": "m.replace", "event_id": hello}})
    await bob.api.redact(room, hello)
    await bob.api.leave_room(room)
    await wait_for(lambda: len(sink.of("member_left")) == 1, "bob's leave")
    types = [e.type for e in sink.events]
    assert types == ["member_joined", "message", "reaction", "message", "edit", "recall", "member_left"]
    joined, msg, reaction, reply, edit, recall, left = sink.events
    assert joined.actor.id == bob.id and joined.actor.name == "小王"
    assert msg.id == msg.msg_id == hello and msg.group == "g1" and msg.platform == "matrix"
    assert msg.mentions == [alice.id] and msg.actor.name == "小王"
    assert reaction.target == hello and reaction.emoji == "🎉"
    assert reply.reply_to == hello and reply.text == "欢迎"
    assert edit.target == hello and edit.text == "大家好呀"
    assert recall.target == hello and recall.actor.id == bob.id
    assert left.actor.id == bob.id and left.by is None
    # the bot's own messages are never events
    await adapter.deliver({"id": "act-own", "type": "send", "group": "g1", "room": room, "text": "hi", "mentions": []})
    await alice.say(room, "after")
    await wait_for(lambda: sink.events[-1].type == "message" and sink.events[-1].text == "after", "alice's message")
    assert not [e for e in sink.events if e.actor.id == scene.bot.user_id]


@live
async def test_send_uses_the_action_id_as_txn_id_so_a_redelivery_shows_once(scene: Scene) -> None:
    alice, bob = scene.human("alice", "Alice"), scene.human("bob", "小王")
    room = await scene.room(alice)
    await bob.api.join_room(room)
    adapter = scene.adapter({room: "g1"})
    await adapter.start(Sink())
    await wait_for(lambda: adapter.syncs >= 1, "first sync")
    asked = await bob.say(room, "请问怎么打卡？")
    action = {"id": "act-0123456789abcdef01234567", "type": "send", "group": "g1", "room": room,
              "text": "@小王 发「打卡」两个字就好", "mentions": [bob.id], "reply_to": asked}
    first = await adapter.deliver(action)
    again = await adapter.deliver(dict(action))
    assert first.status == again.status == "ok"
    assert first.platform_id == again.platform_id  # the homeserver recognised the transaction
    await bob.until(lambda: any(e["event_id"] == first.platform_id for e in bob.messages(room)), "the answer")
    await bob.say(room, "谢谢")
    await bob.until(lambda: "谢谢" in bob.bodies(room), "the thanks")
    answers = bob.messages(room, scene.bot.user_id)
    assert len(answers) == 1
    content = answers[0]["content"]
    assert content["m.mentions"] == {"user_ids": [bob.id]}
    assert f'<a href="https://matrix.to/#/{bob.id}">@小王</a>' in content["formatted_body"]
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}


@live
async def test_direct_messages_reuse_one_dm_room_across_restarts(scene: Scene) -> None:
    alice, bob = scene.human("alice", "Alice"), scene.human("bob", "小王")
    room = await scene.room(alice)
    adapter = scene.adapter({room: "g1"})
    await adapter.start(Sink())
    one = await adapter.deliver({"id": "act-d1", "type": "direct", "group": "g1", "room": room, "member": bob.id,
                                 "text": "你的积分：10"})
    two = await adapter.deliver({"id": "act-d2", "type": "direct", "group": "g1", "room": room, "member": bob.id,
                                 "text": "你的积分：20"})
    assert one.status == two.status == "ok"
    await adapter.stop()
    later = scene.adapter({room: "g1"})  # a restart: same state file, same account data
    await later.start(Sink())
    three = await later.deliver({"id": "act-d3", "type": "direct", "group": "g1", "room": room, "member": bob.id,
                                 "text": "你的积分：30"})
    assert three.status == "ok"
    await bob.until(lambda: len(bob.invites) >= 1, "the DM invitation")
    assert len(bob.invites) == 1
    dm = next(iter(bob.invites))
    await bob.api.join_room(dm)
    await bob.until(lambda: len(bob.bodies(dm)) >= 3, "three direct messages")
    assert bob.bodies(dm) == ["你的积分：10", "你的积分：20", "你的积分：30"]
    direct = await scene_bot_account_data(scene, "m.direct")
    assert direct == {bob.id: [dm]}


async def scene_bot_account_data(scene: Scene, kind: str) -> Any:
    api = ClientAPI(base_url=scene.server.url, token=scene.bot.access_token, mxid=scene.bot.user_id)
    try:
        return await api.api.request("GET", f"/_matrix/client/v3/user/{scene.bot.user_id}/account_data/{kind}")
    finally:
        await api.api.session.close()


@live
async def test_remove_delete_invite_pin_and_create_group_are_safe_to_repeat(scene: Scene) -> None:
    alice, bob, carol = scene.human("alice", "Alice"), scene.human("bob", "小王"), scene.human("carol", "Carol")
    room = await scene.room(alice)
    await bob.api.join_room(room)
    adapter = scene.adapter({room: "g1"}, room_templates={"study": {"name": "学习小组", "topic": "二期"}})
    await adapter.start(Sink())
    spam = await bob.say(room, "加微信领优惠券")
    note = await alice.say(room, "本周安排见置顶")

    def act(aid: str, kind: str, **fields: Any) -> dict[str, Any]:
        return {"id": aid, "type": kind, "group": "g1", "room": room, **fields}

    for _ in range(2):  # every action twice: a redelivery must change nothing
        assert (await adapter.deliver(act("act-del", "delete", msg_id=spam))).status == "ok"
        assert (await adapter.deliver(act("act-kick", "remove", member=bob.id, reason="广告"))).status == "ok"
        assert (await adapter.deliver(act("act-inv", "invite", member=carol.id))).status == "ok"
        assert (await adapter.deliver(act("act-pin", "pin", msg_id=note))).status == "ok"
    made = [await adapter.deliver(act("act-new", "create_group", template="study")) for _ in range(2)]
    assert made[0].status == "ok" and made[0].platform_id == made[1].platform_id
    await alice.until(lambda: carol.id in [e.get("state_key") for e in alice.timeline.get(room, [])], "the invite")
    assert alice.redacted(room) == {spam}
    assert alice.membership(room, bob.id)[-1] == ("leave", scene.bot.user_id)
    assert [m for m, _ in alice.membership(room, bob.id)].count("leave") == 1
    assert alice.membership(room, carol.id) == [("invite", scene.bot.user_id)]
    pinned = [e["content"]["pinned"] for e in alice.timeline[room] if e["type"] == "m.room.pinned_events"]
    assert pinned == [[note]]
    unknown = await adapter.deliver(act("act-new2", "create_group", template="nope"))
    assert unknown.status == "failed" and "study" in unknown.reason
    mute = await adapter.deliver(act("act-mute", "mute", member=carol.id, until="2030-01-01T00:00:00+00:00"))
    assert mute.status == "failed" and "mute" not in adapter.capabilities


@live
async def test_no_permission_is_a_permanent_failure_with_the_homeservers_reason(scene: Scene) -> None:
    alice, bob = scene.human("alice", "Alice"), scene.human("bob", "小王")
    room = await scene.room(alice, bot_power=0)
    await bob.api.join_room(room)
    adapter = scene.adapter({room: "g1"})
    await adapter.start(Sink())
    said = await bob.say(room, "spam")
    kick = await adapter.deliver({"id": "act-k", "type": "remove", "group": "g1", "room": room, "member": bob.id})
    assert kick.status == "failed" and "M_FORBIDDEN" in kick.reason
    redact = await adapter.deliver({"id": "act-r", "type": "delete", "group": "g1", "room": room, "msg_id": said})
    assert redact.status == "failed" and "M_FORBIDDEN" in redact.reason
    checks = await adapter.check()
    assert checks[0].ok is True
    assert checks[1].ok is False and "remove members" in checks[1].detail


@live
async def test_the_bot_kicked_from_a_room_fails_there_until_invited_back(scene: Scene) -> None:
    alice = scene.human("alice", "Alice")
    room = await scene.room(alice)
    adapter = scene.adapter({room: "g1"})
    sink = Sink()
    await adapter.start(sink)
    assert (await adapter.check())[1].ok is True
    await alice.api.kick_user(room, scene.bot.user_id, reason="测试踢出")
    await wait_for(lambda: room in adapter.removed, "the adapter to notice")
    assert adapter.removed[room].by == alice.id
    send = {"id": "act-after-kick", "type": "send", "group": "g1", "room": room, "text": "还在吗", "mentions": []}
    result = await adapter.deliver(send)
    assert result.status == "failed" and alice.id in result.reason and "测试踢出" in result.reason
    check = (await adapter.check())[1]
    assert check.ok is False and "removed" in check.detail
    assert not sink.events  # the bot's own leave is not a member_left
    await alice.api.invite_user(room, scene.bot.user_id)
    await wait_for(lambda: room not in adapter.removed, "the bot to join again")
    assert (await adapter.deliver(send)).status == "ok"


@live
async def test_a_restart_resumes_from_the_stored_sync_position(scene: Scene) -> None:
    alice = scene.human("alice", "Alice")
    room = await scene.room(alice)
    await alice.say(room, "before the bot ever ran")
    first = scene.adapter({room: "g1"})
    sink = Sink()
    await first.start(sink)
    await alice.say(room, "one")
    await wait_for(lambda: len(sink.events) == 1, "one")
    await first.stop()
    for text in ("two", "three", "four"):
        await alice.say(room, text)
    second = scene.adapter({room: "g1"})
    await second.start(sink)
    await wait_for(lambda: len(sink.events) == 4, "the messages sent while it was down")
    assert [e.text for e in sink.events] == ["one", "two", "three", "four"]
    assert not second.gaps


@live
async def test_a_sync_gap_is_recorded_and_filled_from_messages(scene: Scene) -> None:
    alice = scene.human("alice", "Alice")
    room = await scene.room(alice)
    first = scene.adapter({room: "g1"})
    await first.start(Sink())
    await first.stop()
    sent = [f"m{i}" for i in range(12)]
    for text in sent:
        await alice.say(room, text)
    state = Path(first.settings.state_file).read_text(encoding="utf-8")

    full = Sink()
    filled = scene.adapter({room: "g1"}, timeline_limit=5)
    await filled.start(full)
    await wait_for(lambda: len(full.events) == 12, "all twelve messages")
    assert [e.text for e in full.events] == sent
    assert len(filled.gaps) == 1 and filled.gaps[0].complete and filled.gaps[0].fetched == 7
    await filled.stop()

    Path(first.settings.state_file).write_text(state, encoding="utf-8")  # back to before the gap
    part = Sink()
    capped = scene.adapter({room: "g1"}, timeline_limit=5, backfill_limit=4)
    await capped.start(part)
    await wait_for(lambda: capped.syncs >= 1, "the capped sync")
    gap = capped.gaps[0]
    assert not gap.complete and gap.fetched == 4 and gap.missing is None
    assert [e.text for e in part.events] == sent[3:]  # the three oldest are the ones missing


@live
async def test_the_homeserver_going_away_loses_and_doubles_nothing(scene: Scene) -> None:
    alice = scene.human("alice", "Alice")
    room = await scene.room(alice)
    adapter = scene.adapter({room: "g1"}, password=True)  # a fresh login after the restart keeps the device
    sink = Sink()
    await adapter.start(sink)
    await wait_for(lambda: adapter.syncs >= 1, "first sync")
    a = {"id": "act-outage-a", "type": "send", "group": "g1", "room": room, "text": "before", "mentions": []}
    b = {"id": "act-outage-b", "type": "send", "group": "g1", "room": room, "text": "during", "mentions": []}
    first = await adapter.deliver(a)
    assert first.status == "ok"
    server = scene.server
    server.stop()
    try:
        down = await adapter.deliver(b)
        assert down.status == "retry" and "unreachable" in down.reason
        await wait_for(lambda: adapter.sync_errors >= 1, "the sync loop to notice")
    finally:
        server.start()
    errors = adapter.sync_errors
    syncs = adapter.syncs
    await wait_for(lambda: adapter.syncs > syncs and adapter.last_error is None, "the sync loop to recover", 60)
    assert errors >= 1
    assert (await adapter.deliver(b)).status == "ok"
    again = await adapter.deliver(a)  # the runtime never heard "ok" for a: it delivers it again
    assert again.status == "ok" and again.platform_id == first.platform_id
    await alice.say(room, "back")
    await wait_for(lambda: [e.text for e in sink.events if e.type == "message"] == ["back"], "alice's message")
    await alice.until(lambda: "back" in alice.bodies(room), "her own message")
    assert alice.bodies(room, scene.bot.user_id) == ["before", "during"]


# ---------------------------------------------------------------- end to end

E2E_CONFIG = """
communities:
  - id: c1
    name: 晨读会
    timezone: Asia/Shanghai
    locale: zh-CN
    roles:
      owner: ["{owner}"]
    groups:
      - {{id: main, platform: matrix, room: "{room}"}}
      - {{id: admins, platform: matrix, room: "{admins}", admin: true}}
    playbooks:
      moderation: {{}}
      welcome: {{batch_size: 2, batch_minutes: 5, charter_every: 0, greet_prompt: false}}
      checkin: {{}}
      faq:
        entries:
          - id: price
            keywords: [多少钱]
            answer: {{zh-CN: 本期训练营 399 元。, en: This camp costs 399 yuan.}}
"""


@live
async def test_end_to_end_the_bot_runs_the_group_for_real_clients(scene: Scene) -> None:
    """Users join, check in, ask, spam; the bot welcomes, counts, answers, warns and removes."""
    from qunyun.config.model import settings_from_text
    from qunyun.core.clock import SystemClock
    from qunyun.engine.engine import Engine
    from qunyun.runtime import Runtime, rooms_of
    from qunyun.store.db import migrate, open_engine

    alice, bob, carol = scene.human("alice", "Alice"), scene.human("bob", "小王"), scene.human("carol", "小李")
    room = await scene.room(alice)
    admins = await scene.room(alice)
    settings = settings_from_text(E2E_CONFIG.format(owner=alice.id, room=room, admins=admins), "<e2e>")
    db = open_engine(f"sqlite:///{scene.tmp / 'qunyun.db'}")
    migrate(db)
    adapter = scene.adapter(rooms_of(settings, "matrix"))
    engine = Engine(db, settings, clock=SystemClock(), capabilities={"matrix": adapter.capabilities})
    runtime = Runtime(engine, [adapter], poll_seconds=0.5, tick_seconds=0.5, flush_seconds=5)
    task = asyncio.create_task(runtime.run())
    try:
        await wait_for(lambda: adapter.syncs >= 1, "the bot's first sync")
        await bob.api.join_room(room)
        await carol.api.join_room(room)
        bot = scene.bot.user_id

        await bob.until(lambda: any(set(m["content"].get("m.mentions", {}).get("user_ids", [])) == {bob.id, carol.id}
                                    for m in bob.messages(room, bot)), "the welcome")
        welcome = next(m for m in bob.messages(room, bot) if "欢迎" in m["content"]["body"])
        assert "晨读会" in welcome["content"]["body"]
        assert f'href="https://matrix.to/#/{bob.id}"' in welcome["content"]["formatted_body"]

        checkin = await bob.say(room, "打卡")
        await bob.until(lambda: any(m["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                                    == checkin for m in bob.messages(room, bot)), "the check-in confirmation")
        ask = await carol.say(room, "请问多少钱？")
        await carol.until(lambda: any("399" in b for b in carol.bodies(room, bot)), "the FAQ answer")
        answer = next(m for m in carol.messages(room, bot) if "399" in m["content"]["body"])
        assert answer["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == ask

        spam = [await carol.say(room, f"免费资料 https://spam{i}.example.com/get") for i in range(3)]
        await alice.until(lambda: alice.membership(room, carol.id)[-1:] == [("leave", bot)], "carol removed", 30)
        await alice.until(lambda: set(spam) <= alice.redacted(room), "the spam taken down")
        warnings = [m for m in alice.messages(room, bot) if carol.id in m["content"].get("m.mentions", {})
                    .get("user_ids", []) and m is not answer and "欢迎" not in m["content"]["body"]]
        assert len(warnings) >= 3  # two warnings and the removal notice
        await alice.until(lambda: any(carol.id in b or "小李" in b for b in alice.bodies(admins, bot)),
                          "the admins' note")
        checked = engine.db
        from sqlalchemy import func, select

        from qunyun.store import models as m

        t = m.table(m.ActionRow)
        with checked.connect() as conn:
            rows = conn.execute(select(t.c.type, t.c.status, func.count()).group_by(t.c.type, t.c.status)).all()
        by = {(k, s): n for k, s, n in rows}
        assert by.get(("remove", "delivered")) == 1 and by.get(("delete", "delivered")) == 3
        assert not [r for r in rows if r[1] != "delivered"], rows
    finally:
        runtime.request_stop("test over")
        await asyncio.wait_for(task, 30)
        db.dispose()

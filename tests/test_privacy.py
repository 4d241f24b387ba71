"""Privacy (SPEC §9.2): a member's data can be exported, and erased from every table.

The erasure proof walks every table of the schema (``Base.metadata``) and
every text or JSON column in it, and looks for the member's name, their
profile values and the text of their messages — case-folded, so a tag
("量子烘焙术q") is found as well as the value it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String, Text, select, type_coerce

from qunyun.store import models as m
from qunyun.store.types import JSONText
from qunyun.testing import Chat

Make = Callable[..., Chat]

NAME = "王小明Zed"
PROFILE_VALUES = ["Zanzibarville", "量子烘焙术Q", "秘密公司Xyz", "Moonlight Sonata Club", "秘密需求Needle"]
MESSAGES = ["读完了《私密日记ABC》", "今天跑了十公里Kx9", "因为想学量子烘焙Ans"]
# "星际料理" is what the others ask and search for (their own words, so not a needle);
# everything else on the card only u1 ever wrote
INTRO = (
    "#自我介绍\n城市：Zanzibarville\n擅长：量子烘焙术Q、星际料理\n公司：秘密公司Xyz\n爱好: Moonlight Sonata Club"
)
CONFIG = {
    "welcome": {"batch_size": 1},
    "checkin": {},
    "levels": {},
    "profile": {"sharing": "open"},
    "microphone": {},
}


def _every_text(chat: Chat) -> list[tuple[str, str, str]]:
    """(table, column, text) for every text/JSON value in every table of the schema."""
    out = []
    with chat.db.connect() as conn:
        for table in m.Base.metadata.sorted_tables:
            for col in table.columns:
                if isinstance(col.type, JSONText):
                    expr: Any = type_coerce(col, Text)
                elif isinstance(col.type, (String, Text)):
                    expr = col
                else:
                    continue
                for (value,) in conn.execute(select(expr).where(col.is_not(None))):
                    out.append((table.name, col.name, str(value)))
    return out


def _leaks(chat: Chat, needles: list[str]) -> list[tuple[str, str, str]]:
    wanted = [n.casefold() for n in needles]
    return [
        (table, col, needle)
        for table, col, text in _every_text(chat)
        for needle in wanted
        if needle in text.casefold()
    ]


def _member_id(chat: Chat, uid: str) -> int:
    return int(chat.scalar("SELECT id FROM members WHERE user_id = :u", u=uid))


def _populate(chat: Chat) -> None:
    chat.event("join_request", "u1", name=NAME, answers={"为什么想加入？": MESSAGES[2]})
    chat.join("u1", NAME)
    chat.join("u2", "李四Kay")
    chat.join("u3", "Carol")
    chat.say("u1", INTRO)
    chat.command("profile", "set", member="u1", fields={"needs": "秘密需求Needle"})
    chat.say("u1", f"打卡 {MESSAGES[0]}")
    chat.advance(days=1)
    chat.say("u1", f"打卡 {MESSAGES[1]}")
    chat.advance(days=1)
    chat.say("u1", "打卡 第三天")
    chat.say("u4", "打卡", name="Dora")
    chat.say("u2", f"谢谢 @{NAME} 的分享", mentions=["u1"])
    chat.say("u3", "请问星际料理怎么入门呢？")  # the microphone passes it to u1
    chat.say("u3", "find 星际料理")  # an open directory: the reply shows u1's name and card
    chat.pay("u1", 9900, "CNY", memo=f"{NAME} 的年费")
    chat.advance(minutes=30)


def test_erasure_leaves_nothing_personal_in_any_table(make_chat: Make) -> None:
    chat = make_chat(CONFIG, roles={"admin": ["boss"]})
    _populate(chat)
    chat.say("boss", f"认证 @{NAME}", mentions=["u1"])
    assert chat.state("profile", "m:u1")["verified"] is True
    assert chat.state("checkin", "m:u1")["streak"] == 3
    assert chat.sent(NAME, playbook="microphone") and chat.sent(NAME, playbook="profile")
    points_before = chat.points("u1")
    other_points = chat.points("u4")
    assert points_before > 0 and other_points > 0
    needles = [NAME, *PROFILE_VALUES, *MESSAGES]
    found = {needle for _, _, needle in _leaks(chat, needles)}
    assert found == {n.casefold() for n in needles}  # the test looks where the data is
    mid = _member_id(chat, "u1")
    rollups_before = chat.scalar("SELECT count(*) FROM rollups WHERE member_id = :m", m=mid)
    assert rollups_before > 0
    assert chat.failures() == []

    assert chat.engine.erase_member("test", "sim", "u1") == []

    assert _leaks(chat, needles) == []
    # the aggregates and the ledger stay, under the anonymous member id
    assert chat.scalar("SELECT name FROM members WHERE id = :m", m=mid) == f"erased-{mid}"
    assert chat.scalar("SELECT count(*) FROM rollups WHERE member_id = :m", m=mid) == rollups_before
    assert chat.scalar("SELECT sum(messages) FROM rollups WHERE member_id = :m", m=mid) > 0
    assert chat.points("u1") == points_before and chat.points("u4") == other_points
    chat.assert_ledger_balanced()
    # other people's words stay, with the name replaced
    assert chat.scalar("SELECT text FROM messages WHERE text LIKE '谢谢%'") == f"谢谢 @erased-{mid} 的分享"
    # the other member is untouched
    assert chat.state("checkin", "m:u4")["streak"] == 1
    # mid-streak: the streak is gone, and checking in again starts afresh without failing
    chat.say("u1", "打卡")
    assert chat.state("checkin", "m:u1")["streak"] == 1
    assert chat.failures() == []
    chat.assert_ledger_balanced()


def test_export_holds_everything_then_nothing_after_erasure(make_chat: Make) -> None:
    chat = make_chat(CONFIG)
    _populate(chat)
    out = chat.engine.export_member("test", "sim", "u1")
    assert out["user_id"] == "u1" and out["member"]["name"] == NAME
    assert [ms["group"] for ms in out["memberships"]] == ["g-main"]
    texts = [msg["text"] for msg in out["messages"]]
    assert INTRO in texts and f"打卡 {MESSAGES[0]}" in texts
    assert {e["type"] for e in out["events"]} >= {"join_request", "member_joined", "message", "payment"}
    [account] = [a for a in out["ledger"]["accounts"] if a["currency"] == "POINTS"]
    assert account["balance"] == chat.points("u1") == sum(p["amount"] for p in out["ledger"]["postings"])
    assert any(r["kind"] == "command" for r in out["records"])  # the operator's "profile set" about them
    assert out["playbooks"]["profile"]["m:u1"]["fields"]["city"] == "Zanzibarville"
    assert out["playbooks"]["checkin"]["m:u1"]["streak"] == 3
    import orjson

    orjson.dumps(out)  # JSON-able as it is

    assert chat.engine.erase_member("test", "sim", "u1") == []
    after = chat.engine.export_member("test", "sim", "u1")
    assert all(not v for v in after["playbooks"].values()), after["playbooks"]
    assert after["member"]["erased"] is True and NAME not in orjson.dumps(after).decode()
    assert all(msg["text"] == "" for msg in after["messages"])
    assert after["records"] == [] or all(r["data"].get("erased") for r in after["records"])
    assert after["ledger"]["accounts"] == out["ledger"]["accounts"]  # the ledger is kept


def test_erasure_is_exact_and_repeatable(make_chat: Make) -> None:
    chat = make_chat(CONFIG)
    chat.say("u1", INTRO, name="Al")
    chat.say("u10", "#intro\ncity: Oslo\nexpertise: skiing", name="Alma")
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.engine.erase_member("test", "sim", "u1") == []  # twice is harmless
    assert chat.state("profile", "m:u1") is None
    assert chat.state("profile", "m:u10")["fields"]["city"] == "Oslo"
    assert chat.scalar("SELECT name FROM members WHERE user_id = 'u10'") == "Alma"
    assert chat.scalar("SELECT text FROM messages WHERE member_id = :m", m=_member_id(chat, "u10")).startswith(
        "#intro"
    )


def test_a_direct_message_not_yet_delivered_is_cancelled(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", "#自我介绍 大家好", name="小周")  # no fields: the required ones are asked for by DM
    [dm] = chat.assert_sent(type="direct")
    assert dm["member"] == "u1"
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.scalar("SELECT status FROM actions WHERE id = :i", i=dm["id"]) == "failed"
    assert "小周" not in str(chat.scalar("SELECT payload FROM actions WHERE id = :i", i=dm["id"]))


def test_unknown_community_is_a_clear_error(make_chat: Make) -> None:
    import pytest

    from qunyun.core.errors import CommandError

    chat = make_chat({"profile": {}})
    with pytest.raises(CommandError, match="unknown community"):
        chat.engine.export_member("nope", "sim", "u1")
    with pytest.raises(CommandError, match="unknown community"):
        chat.engine.erase_member("nope", "sim", "u1")


# ----------------------------------------------- the member-lifecycle playbooks too

LIFECYCLE = {
    "gate": {"mode": "approval"},
    "rules": {"proposals": True, "min_votes": 1, "vote_days": 1, "consequence": "notify_admins"},
    "profile": {"sharing": "open"},
    "activation": {},
    "hours": {"windows": {"daily": ["08:00-22:00"]}, "strikes": True, "max_strikes": 2},
    "guard": {"min_exchanges": 4, "min_hostile": 2},
    "microphone": {},
    "referrals": {},
    "elimination": {},
    "capacity": {},
    "flash": {},
    "launch": {},
}
#: What only u1 ever wrote: their application answer, a proposal, quarrel lines, a late-night message
LIFE_TEXTS = ["申请理由Quokka", "提议内容Wombat", "你这个白痴Pangolin", "闭嘴吧傻逼Narwhal", "深夜消息Axolotl"]


def test_erasure_in_the_lifecycle_playbooks_leaves_nothing_personal(make_chat: Make) -> None:
    chat = make_chat(LIFECYCLE, roles={"admin": ["boss"]})
    # the clock starts at 17:00 in Asia/Shanghai: the quarrel happens in open hours
    chat.event("join_request", "u1", name=NAME, answers={"为什么想加入？": LIFE_TEXTS[0]})
    chat.command("gate", "approve", member="u1")
    chat.join("u1", NAME)
    chat.join("u2", "李四Kay")
    chat.command("gate", "approve", member="u2")
    chat.say("u1", INTRO)
    chat.say("u1", "我的邀请码")
    chat.say("u1", f"propose: {LIFE_TEXTS[1]}")
    chat.say("u1", "我已阅读")
    chat.say("u2", "你说得不对")
    chat.say("u1", LIFE_TEXTS[2])
    chat.say("u2", "你才是白痴")
    chat.say("u1", LIFE_TEXTS[3])
    chat.say("u2", "闭嘴")
    assert chat.sent(type="notify_admins", playbook="guard")
    chat.advance(days=1)  # the proposal closes (passed: the group hears its text)
    assert chat.sent(LIFE_TEXTS[1], playbook="rules")
    chat.advance(hours=6)  # 23:00 local: closed time
    chat.say("u1", LIFE_TEXTS[4])
    chat.say("u1", LIFE_TEXTS[4] + "2")
    assert chat.records("hours", "strike")
    assert chat.failures() == []
    needles = [NAME, *PROFILE_VALUES[:4], *LIFE_TEXTS]
    found = {needle for _, _, needle in _leaks(chat, needles)}
    assert found == {n.casefold() for n in needles}  # the test looks where the data is

    assert chat.engine.erase_member("test", "sim", "u1") == []

    assert _leaks(chat, needles) == []
    out = chat.engine.export_member("test", "sim", "u1")
    assert all(not v for v in out["playbooks"].values()), out["playbooks"]
    chat.assert_ledger_balanced()
    assert chat.failures() == []

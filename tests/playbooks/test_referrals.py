"""referrals: invite codes, attribution of joins, boards and the invitation cascade."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.playbooks.referrals import ALPHABET, derive_code, normalise_code
from qunyun.testing import Chat

Make = Callable[..., Chat]


def code_of(chat: Chat, uid: str) -> str:
    """The member's code, as they would get it: ask for it in the group."""
    chat.say(uid, "我的邀请码")
    sent = chat.assert_sent(type="direct", playbook="referrals", count=1)
    assert sent[0]["member"] == uid
    code = chat.state("referrals", f"m:{uid}")["code"]
    assert code in sent[0]["text"]
    return str(code)


def exported_by(chat: Chat, uid: str) -> dict[str, Any]:
    """What the referrals playbook exports about ``uid`` (through the engine's export)."""
    out = chat.engine.export_member("test", "sim", uid)
    return dict(out.get("playbooks", out).get("referrals") or {})


def referrals(chat: Chat) -> list[tuple[str | None, str | None]]:
    return [(r["member"], r["data"].get("invitee")) for r in chat.records("referrals", "referral")]


# ------------------------------------------------------------------- codes


def test_a_member_gets_their_code_privately(make_chat: Make) -> None:
    chat = make_chat({"referrals": {}})
    chat.join("u1", "小王")
    chat.say("u1", "  我的邀请码 ")
    [dm] = chat.assert_sent(type="direct", playbook="referrals", count=1)
    expected = derive_code("test", "sim", "u1")  # no secret: keyed by the community id
    assert len(expected) == 6 and set(expected) <= set(ALPHABET)
    assert expected in dm["text"] and dm["member"] == "u1"
    assert "邀请码 " + expected in dm["text"]
    assert chat.state("referrals", f"code:{expected}") == {
        "member": "u1",
        "platform": "sim",
        "issued": chat.now.isoformat(),
    }
    assert chat.state("referrals", "m:u1")["code"] == expected
    # asking again gives the same code; more than three times a day is ignored
    for _ in range(2):
        chat.say("u1", "我的邀请码")
        assert expected in chat.assert_sent(type="direct", count=1)[0]["text"]
    chat.say("u1", "我的邀请码")
    chat.assert_nothing_sent()
    chat.advance(days=1)
    chat.say("u1", "我的邀请码")
    chat.assert_sent(expected, type="direct", count=1)


def test_the_code_comes_with_a_link_and_a_secret_changes_it(
    make_chat: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QY_REFERRAL_SECRET", "s3cret-for-tests")
    chat = make_chat(
        {"referrals": {"secret": "${QY_REFERRAL_SECRET}", "link_template": "https://example.org/join?c={code}"}},
        locale="en",
    )
    chat.say("u1", "my invite code")
    [dm] = chat.assert_sent(type="direct", count=1)
    code = derive_code("s3cret-for-tests", "sim", "u1")
    assert code != derive_code("test", "sim", "u1")
    assert f"https://example.org/join?c={code}" in dm["text"]
    assert "Your invite code" in dm["text"]


def test_bad_settings_are_refused_at_load_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QY_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="QY_NOT_SET"):
        Chat({"referrals": {"secret": "${QY_NOT_SET}"}})
    with pytest.raises(ConfigError, match="must contain \\{code\\}"):
        Chat({"referrals": {"link_template": "https://example.org/join"}})
    with pytest.raises(ConfigError, match="too short"):
        Chat({"referrals": {"secret": "abc"}})


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("AB12CD", "AB12CD"),
        ("  ab12cd\n", "AB12CD"),
        ("ab-12 cd", "AB12CD"),
        ("ＡＢ１２ＣＤ", "AB12CD"),  # full-width, as Chinese keyboards type it
        ("oil0o1", "011001"),  # O→0, I→1, L→1
        ("S7229F1", "S7229F1"),  # a collision's longer code
        ("", None),
        ("AB12C", None),
        ("AB12CU", None),  # U is not in the alphabet
        ("AB12C!", None),
        ("😀😀😀😀😀😀", None),
        ("A" * 11, None),
        ("A" * 10_000, None),
        ("AB\u200b12CD", None),  # a zero-width space is not a dash
        ("\u202eAB12CD", None),
    ],
)
def test_codes_are_read_forgivingly(text: str, code: str | None) -> None:
    assert normalise_code(text) == code


def test_a_colliding_code_gets_the_next_characters(make_chat: Make) -> None:
    # found by search: these two ids share their first six characters under the key "test"
    assert derive_code("test", "sim", "c17382") == derive_code("test", "sim", "c54373") == "S7229F"
    chat = make_chat({"referrals": {}})
    first = code_of(chat, "c17382")
    second = code_of(chat, "c54373")
    assert first == "S7229F"
    assert second == derive_code("test", "sim", "c54373", 7) and second.startswith("S7229F") and len(second) == 7
    chat.join("n1")
    chat.say("n1", f"邀请码 {second.lower()}")
    chat.assert_sent("c54373", type="direct")
    assert referrals(chat) == [("c54373", "n1")]


# ------------------------------------------------------------- attribution


def test_the_platform_inviter_is_attributed_once(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"points": 5}})
    chat.join("u1", "小王")
    chat.join("u2", "小李", inviter="u1", via="invite")
    [news] = chat.assert_sent(type="direct", count=1)
    assert news["member"] == "u1" and "小李" in news["text"] and "1" in news["text"] and "+5" in news["text"]
    assert referrals(chat) == [("u1", "u2")]
    assert chat.state("referrals", "m:u2")["by"] == "u1"
    assert chat.points("u1") == 5
    # leaving and coming back (invited by someone else this time) changes nothing
    chat.leave("u2")
    chat.join("u2", inviter="u3", via="invite")
    chat.assert_nothing_sent()
    assert referrals(chat) == [("u1", "u2")]
    assert chat.state("referrals", "m:u2")["by"] == "u1"
    assert chat.state("referrals", "m:u1")["invited"] == 1
    assert chat.points("u1") == 5 and chat.points("u3") == 0
    chat.assert_ledger_balanced()


def test_a_code_said_after_joining_is_attributed(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"points": 3, "points_daily_limit": 1}})
    chat.join("u1", "小王")
    code = code_of(chat, "u1")
    chat.join("u2", "小李")
    chat.assert_nothing_sent()
    chat.say("u2", f"邀请码：{code[:3].lower()}-{code[3:]}")
    sent = chat.assert_sent(type="direct", count=2)
    assert {a["member"] for a in sent} == {"u1", "u2"}
    assert "小王" in next(a["text"] for a in sent if a["member"] == "u2")
    assert referrals(chat) == [("u1", "u2")]
    assert chat.points("u1") == 3
    # the first attribution wins: another code later is not taken, and said so once
    chat.join("u3")
    other = code_of(chat, "u3")
    chat.say("u2", f"邀请码 {other}")
    chat.assert_sent("小王", type="direct", count=1)
    chat.say("u2", f"邀请码 {other}")
    chat.assert_nothing_sent()
    assert chat.state("referrals", "m:u2")["by"] == "u1"
    # a second referral the same day still counts, without points over the daily limit
    chat.join("u4")
    chat.say("u4", f"invite code {code}")
    chat.assert_sent(type="direct", count=2)
    assert referrals(chat) == [("u1", "u2"), ("u1", "u4")]
    assert chat.points("u1") == 3
    chat.assert_ledger_balanced()


def test_self_referral_is_refused(make_chat: Make) -> None:
    chat = make_chat({"referrals": {}})
    chat.join("u1")
    own = code_of(chat, "u1")
    chat.say("u1", f"邀请码 {own}")
    [dm] = chat.assert_sent(type="direct", count=1)
    assert "自己" in dm["text"]
    chat.join("u5", inviter="u5", via="invite")  # the platform says they invited themselves
    chat.assert_nothing_sent()
    assert referrals(chat) == []
    assert "by" not in chat.state("referrals", "m:u1")


def test_forged_and_departed_codes_are_not_attributed(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"max_attempts": 3}})
    chat.join("u1", "小王")
    code = code_of(chat, "u1")
    forged = next(c + code[1:] for c in ALPHABET if c + code[1:] != code)
    chat.join("u2")
    chat.say("u2", f"邀请码 {forged}")
    [dm] = chat.assert_sent(type="direct", count=1)
    assert dm["member"] == "u2" and "2" in dm["text"]  # two tries left
    # the owner leaves: their code no longer brings anyone in
    chat.leave("u1")
    chat.say("u2", f"邀请码 {code}")
    chat.assert_sent(type="direct", count=1)
    chat.say("u2", "邀请码 nonsense")
    chat.assert_nothing_sent()  # the last try: no more hints for guessing
    chat.say("u2", f"邀请码 {code}")
    chat.assert_nothing_sent()  # out of tries
    assert referrals(chat) == []
    # a platform invitation by a departed member is not counted either
    chat.join("u3", inviter="u1", via="invite")
    assert referrals(chat) == []
    # back in the group, their code works again
    chat.join("u1")
    chat.join("u4")
    chat.say("u4", f"邀请码 {code}")
    assert referrals(chat) == [("u1", "u4")]


def test_codes_count_only_from_newcomers_within_the_window(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"window_hours": 24}})
    chat.join("u1")
    code = code_of(chat, "u1")
    chat.say("old", f"邀请码 {code}")  # never seen joining: not a newcomer
    chat.join("u2")
    chat.advance(hours=25)
    chat.say("u2", f"邀请码 {code}")
    chat.assert_nothing_sent()
    assert referrals(chat) == []


def test_a_code_in_the_join_request_is_attributed_on_joining(make_chat: Make) -> None:
    chat = make_chat({"referrals": {}})
    chat.join("u1", "小王")
    code = code_of(chat, "u1")
    chat.event("join_request", "u2", answers={"城市": "上海", "邀请人": f"邀请码是 {code.lower()} 谢谢"})
    chat.assert_nothing_sent()
    assert referrals(chat) == []
    # the code came first, so it wins over the platform's inviter (the admin who approved)
    chat.join("u2", inviter="admin1", via="approve")
    assert referrals(chat) == [("u1", "u2")]
    assert chat.state("referrals", "m:u2")["via"] == "code"
    chat.event("join_request", "u3", answers=["ZZZZZZ", "PYTH0N"])  # forged: nothing remembered
    chat.join("u3")
    assert referrals(chat) == [("u1", "u2")]


def test_an_invitation_loop_is_refused(make_chat: Make) -> None:
    chat = make_chat({"referrals": {}}, groups=("g-main", "g-other"))
    chat.say("u1", "我的邀请码")  # u1 was here before the bot: never seen joining
    chat.take()
    chat.join("u2", inviter="u1", via="invite")
    chat.join("u1", inviter="u2", via="invite", group="g-other")
    assert referrals(chat) == [("u1", "u2")]


def test_ordinary_messages_get_no_answer(make_chat: Make) -> None:
    chat = make_chat({"referrals": {}})
    chat.join("u1")
    for text in ("你好", "邀请码是什么？", "我的邀请码呢", "referral", "邀请榜单在哪"):
        chat.say("u1", text)
    chat.assert_nothing_sent()
    assert chat.failures() == []


HOSTILE = [
    "",
    "\u202eAB12CD",
    "{code}{0.__class__}",
    "'; DROP TABLE playbook_state; --",
    "A" * 100_000,
    "😀" * 500,
    "\u0000\u0007",
    "ab12cd" * 20,
    "   ",
    "-----",
]


def test_hostile_code_input_is_harmless(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"max_attempts": 20}})
    chat.join("u1")
    code_of(chat, "u1")
    chat.join("x1")
    for text in HOSTILE:
        chat.say("x1", "邀请码 " + text)
        chat.say("x1", "invite code" + text)
    chat.event("join_request", "x2", answers=HOSTILE[:8])
    chat.event("join_request", "x3", answers={"q" * 300: "A" * 100_000})
    chat.join("x2")
    chat.join("x3")
    assert chat.failures() == []
    assert referrals(chat) == []
    for action in chat.take():
        assert action["type"] == "direct" and action["member"] == "x1"
        assert "\u202e" not in action["text"] and "\u0000" not in action["text"]


# -------------------------------------------------------------------- boards


def test_boards_follow_the_local_day_week_and_month(make_chat: Make) -> None:
    # Monday 2026-11-02, 23:30 in Shanghai is 15:30 UTC
    chat = make_chat({"referrals": {"notify_inviter": False}}, start=datetime(2026, 11, 2, 15, 30, tzinfo=UTC))
    chat.join("a", "阿甲")
    chat.join("b", "阿乙")
    chat.join("n1", inviter="a", via="invite")
    chat.advance(minutes=20)  # 23:50 local: the join at 23:30 belongs to today
    chat.say("a", "邀请榜")
    [board] = chat.assert_sent(playbook="referrals", count=1)
    assert "阿甲 · 邀请 1 人" in board["text"] and "2026-11-02" in board["text"]
    chat.advance(minutes=20)  # 00:10 local on Tuesday, still Monday in UTC
    chat.join("n2", inviter="b", via="invite")
    chat.join("n3", inviter="b", via="invite")
    chat.say("a", "邀请榜")
    text = chat.assert_sent(count=1)[0]["text"]
    assert "2026-11-03" in text and "1. 阿乙 · 邀请 2 人" in text and "阿甲" not in text
    result = chat.command("referrals", "board", period="week")
    assert result["label"] == "2026-W45"
    assert [(r["member"], r["referrals"]) for r in result["rows"]] == [("b", 2), ("a", 1)]
    chat.say("a", "邀请月榜")
    assert "1. 阿乙 · 邀请 2 人\n2. 阿甲 · 邀请 1 人" in chat.assert_sent(count=1)[0]["text"]
    # next week, the week's board is empty; the month's is not
    chat.advance(days=7)
    chat.say("a", "邀请周榜")
    chat.assert_sent("还没有人邀请", count=1)
    assert len(chat.command("referrals", "board", period="month")["rows"]) == 2
    with pytest.raises(CommandError, match="unknown period"):
        chat.command("referrals", "board", period="year")


def test_the_board_command_shows_the_period_of_a_given_day(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"notify_inviter": False}})  # Monday 2026-11-02, 17:00 in Shanghai
    assert chat.command("referrals", "board")["latest"] is None  # no referral yet
    chat.join("a", "阿甲")
    chat.join("b", "阿乙")
    chat.join("n1", inviter="a", via="invite")
    chat.advance(days=1)
    chat.join("n2", inviter="b", via="invite")
    chat.join("n3", inviter="b", via="invite")
    chat.advance(days=40)  # Sunday 2026-12-13: nothing today, this week or this month
    for period in ("day", "week", "month"):
        now = chat.command("referrals", "board", period=period)
        assert now["rows"] == [] and now["latest"] == "2026-11-03"

    def rows(answer: dict[str, Any]) -> list[tuple[str, int]]:
        return [(r["member"], r["referrals"]) for r in answer["rows"]]

    monday = chat.command("referrals", "board", period="day", day="2026-11-02")
    assert monday["label"] == "2026-11-02" and rows(monday) == [("a", 1)]
    week = chat.command("referrals", "board", period="week", day="2026-11-08")  # the Sunday of that week
    assert week["label"] == "2026-W45" and rows(week) == [("b", 2), ("a", 1)]
    month = chat.command("referrals", "board", period="month", day="2026-11-30")
    assert month["label"] == "2026-11" and rows(month) == [("b", 2), ("a", 1)]
    assert month["latest"] == "2026-11-03"
    # a period without referrals is shown as asked, empty; the day after the week is the next week
    empty = chat.command("referrals", "board", period="week", day="2026-11-09")
    assert empty["label"] == "2026-W46" and empty["rows"] == []
    # the day in the group's board is still today's
    chat.say("a", "邀请月榜")
    chat.assert_sent("还没有人邀请", count=1)
    for bad in ("2026-11-31", "2026/11/02", "20261102", "2026-W45-1", "2026-11-02\n", "yesterday", "", 20261102):
        with pytest.raises(CommandError, match="day must be a date written 2026-11-02") as refused:
            chat.command("referrals", "board", period="week", day=bad)
    assert refused.value.localized("zh-CN") == (
        "day 必须是形如 2026-11-02 的日期，而不是 '20261102'\n  提示: 不填 day 即为今天")
    with pytest.raises(CommandError, match="day must be a date") as refused:
        chat.command("referrals", "board", day="x" * 5000)
    assert len(str(refused.value)) < 200  # the input is cut short in the refusal


def test_the_board_speaks_english(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"notify_inviter": False}}, locale="en")
    chat.join("n1", inviter="a", via="invite")
    chat.say("a", "Referral Board")
    chat.assert_sent("1. a · 1 invited", count=1)


# ------------------------------------------------------------------- cascade


def _tree(chat: Chat) -> None:
    """a → b → c → d, a → e, f → g; and h → i joining another group."""
    for invitee, inviter in (("b", "a"), ("c", "b"), ("d", "c"), ("e", "a"), ("g", "f")):
        chat.join(invitee, inviter=inviter, via="invite")
    chat.join("i", inviter="h", via="invite", group="g-b")


def test_the_cascade_has_depth_roots_and_subtrees(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"notify_inviter": False}}, groups=("g-main", "g-b"))
    _tree(chat)
    tree = chat.command("referrals", "cascade")
    assert tree["referrals"] == 6 and tree["members"] == 9 and tree["max_depth"] == 3
    assert [(r["member"], r["subtree"]) for r in tree["roots"]] == [("a", 4), ("f", 1), ("h", 1)]
    nodes = {n["member"]: n for n in tree["nodes"]}
    assert (nodes["a"]["invited"], nodes["a"]["subtree"], nodes["a"]["depth"]) == (2, 4, 0)
    assert (nodes["b"]["subtree"], nodes["b"]["depth"], nodes["b"]["inviter"]) == (2, 1, "a")
    assert (nodes["d"]["subtree"], nodes["d"]["depth"]) == (0, 3)
    assert tree["nodes"][0]["member"] == "a"
    one = chat.command("referrals", "cascade", group_key="g-b")
    assert one["referrals"] == 1 and one["max_depth"] == 1 and [r["member"] for r in one["roots"]] == ["h"]
    assert len(chat.command("referrals", "cascade", top=2)["nodes"]) == 2
    with pytest.raises(CommandError, match="top"):
        chat.command("referrals", "cascade", top=0)


def test_the_code_command_issues_codes_for_operators(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"link_template": "https://example.org/j/{code}"}})
    result = chat.command("referrals", "code", member="u9")
    assert result["code"] == derive_code("test", "sim", "u9")
    assert result["link"] == f"https://example.org/j/{result['code']}"
    assert chat.state("referrals", f"code:{result['code']}")["member"] == "u9"
    with pytest.raises(CommandError, match="member"):
        chat.command("referrals", "code")


# ------------------------------------------------------------------- privacy


def test_erasing_a_member_keeps_the_tree_anonymously(make_chat: Make) -> None:
    chat = make_chat({"referrals": {"notify_inviter": False}})
    chat.join("a")
    chat.join("b", inviter="a", via="invite")
    code = code_of(chat, "b")
    chat.join("c")
    chat.say("c", f"邀请码 {code}")
    before = chat.command("referrals", "cascade")
    exported = exported_by(chat, "b")
    assert exported["m:b"]["by"] == "a" and exported[f"code:{code}"]["member"] == "b"
    assert chat.engine.erase_member("test", "sim", "b") == []
    assert not exported_by(chat, "b")
    assert chat.state("referrals", f"code:{code}") is None
    after = chat.command("referrals", "cascade", id="cascade-after-erasure")
    assert (after["max_depth"], after["referrals"]) == (before["max_depth"], before["referrals"]) == (2, 2)
    assert chat.state("referrals", "m:c")["by"] == "~erased-1"
    assert all("b" not in (r["member"], r["data"].get("invitee")) for r in chat.records("referrals"))
    assert [r["member"] for r in chat.records("referrals", "referral")] == ["a", None]
    chat.say("a", "邀请榜")
    assert "2. （已注销成员） · 邀请 1 人" in chat.assert_sent(type="send", count=1)[0]["text"]

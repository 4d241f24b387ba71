"""essence: admin marking by reply and command, votes by reaction (no self-votes), erase."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qunyun.core.errors import CommandError
from qunyun.testing import Chat

Make = Callable[..., Chat]
ROLES = {"owner": ["own"], "admin": ["boss"]}
GOOD = "复盘的关键是先写下当时的判断依据，再对照结果。"


def _chat(make_chat: Make, **settings: object) -> Chat:
    return make_chat({"essence": settings}, roles=ROLES)


def test_an_admin_reply_marks_the_message(make_chat: Make) -> None:
    chat = _chat(make_chat)
    msg = chat.say("u1", GOOD, name="小王")
    chat.say("boss", "精华", reply_to=msg)
    [notice] = chat.assert_sent("小王 的这条消息已收录为精华", playbook="essence")
    assert notice["reply_to"] == msg and notice["mentions"] == ["u1"]
    entry = chat.state("essence", f"e:{msg}")
    assert entry["by"] == "u1" and entry["text"] == GOOD and entry["marked_by"] == "boss"
    assert entry["kind"] == "message" and entry["day"] == "2026-11-02" and entry["group"] == "g-main"
    assert chat.state("essence", "m:u1")["essence"] == 1
    assert chat.points("u1") == 20
    [rec] = chat.records("essence", "essence")
    assert rec["member"] == "u1" and rec["data"]["msg"] == msg
    chat.say("boss", "精华", reply_to=msg)  # already essence: no second reward
    chat.assert_nothing_sent()
    assert chat.points("u1") == 20
    chat.assert_ledger_balanced()


def test_only_owners_and_admins_mark(make_chat: Make) -> None:
    chat = _chat(make_chat)
    msg = chat.say("u1", GOOD)
    chat.say("u2", "精华", reply_to=msg)  # an ordinary member
    chat.say("boss", "这条是精华吧", reply_to=msg)  # not exactly the word
    chat.say("boss", "精华")  # not a reply
    chat.assert_nothing_sent()
    assert chat.state("essence", f"e:{msg}") is None
    chat.say("own", "Essence", reply_to=msg)  # case-insensitive, the owner counts too
    chat.assert_sent(playbook="essence", count=1)


def test_marking_a_missing_or_recalled_message_is_explained(make_chat: Make) -> None:
    chat = _chat(make_chat, announce=False)
    chat.say("boss", "精华", reply_to="m-nowhere")
    chat.assert_sent("没有找到", count=1)
    msg = chat.say("u1", GOOD)
    chat.event("recall", "u1", target=msg)
    chat.say("boss", "精华", reply_to=msg)
    chat.assert_sent("没有找到", count=1)
    assert chat.points("u1") == 0


def test_unmarking_takes_back_the_entry_and_the_points(make_chat: Make) -> None:
    chat = _chat(make_chat)
    msg = chat.say("u1", GOOD, name="小王")
    chat.say("boss", "精华", reply_to=msg)
    chat.take()
    chat.say("boss", "取消精华", reply_to=msg)
    chat.assert_sent("移出精华", count=1)
    assert chat.state("essence", f"e:{msg}") is None
    assert chat.state("essence", "m:u1")["essence"] == 0
    assert chat.points("u1") == 0
    assert [r["member"] for r in chat.records("essence", "essence_removed")] == ["u1"]
    chat.assert_ledger_balanced()


def test_votes_make_essence_and_self_votes_do_not_count(make_chat: Make) -> None:
    chat = _chat(make_chat, votes_needed=3)
    msg = chat.say("u1", GOOD, name="小王")
    chat.react("u1", msg, "👍")  # the author: ignored
    chat.react("u2", msg, "👍")
    chat.react("u2", msg, "🔥")  # the same member again: ignored
    chat.react("u3", msg, "😂")  # not a voting emoji
    chat.react("u3", msg, "❤")  # ❤ without the variation selector counts as ❤️
    chat.assert_nothing_sent()
    assert chat.state("essence", f"e:{msg}") is None
    assert chat.state("essence", f"v:{msg}")["voters"] == ["u2", "u3"]
    chat.react("u4", msg, "⭐")
    [notice] = chat.assert_sent("3 位群友点赞", playbook="essence")
    assert notice["reply_to"] == msg
    entry = chat.state("essence", f"e:{msg}")
    assert entry["marked_by"] == "votes" and entry["by"] == "u1"
    assert chat.state("essence", f"v:{msg}") is None
    assert chat.points("u1") == 20
    chat.react("u5", msg, "👍")  # already essence
    chat.assert_nothing_sent()
    assert chat.points("u1") == 20
    chat.assert_ledger_balanced()


def test_votes_need_a_long_enough_recent_message(make_chat: Make) -> None:
    chat = _chat(make_chat, votes_needed=2, vote_window_days=1)
    short = chat.say("u1", "哈哈")
    old = chat.say("u1", GOOD)
    for voter in ("u2", "u3"):
        chat.react(voter, short)
    chat.advance(days=2)
    for voter in ("u2", "u3"):
        chat.react(voter, old)
    chat.react("u2", "no-such-message")
    chat.assert_nothing_sent()
    assert chat.state("essence", f"e:{short}") is None and chat.state("essence", f"e:{old}") is None
    chat.advance(days=3)  # the nightly tidy drops the closed tallies
    assert chat.state("essence", f"v:{short}") is None and chat.state("essence", f"v:{old}") is None


def test_voting_can_be_switched_off(make_chat: Make) -> None:
    chat = _chat(make_chat, votes_needed=0)
    msg = chat.say("u1", GOOD)
    for voter in ("u2", "u3", "u4", "u5"):
        chat.react(voter, msg)
    chat.assert_nothing_sent()
    assert chat.state("essence", f"v:{msg}") is None


def test_mark_command_finds_the_message_in_any_group(make_chat: Make) -> None:
    chat = make_chat({"essence": {}}, roles=ROLES, groups=["g-main", "g-two"])
    msg = chat.say("u1", GOOD, group="g-two")
    result = chat.command("essence", "mark", msg=msg)
    assert result["by"] == "u1" and result["group"] == "g-two" and result["marked_by"] == "operator"
    chat.assert_nothing_sent()  # an operator's mark is not announced
    assert chat.points("u1") == 20
    with pytest.raises(CommandError, match="already essence"):
        chat.command("essence", "mark", msg=msg)
    with pytest.raises(CommandError, match="no message m-404"):
        chat.command("essence", "mark", msg="m-404")
    with pytest.raises(CommandError, match="needs msg"):
        chat.command("essence", "mark")
    [row] = chat.command("essence", "list", member="u1")["entries"]
    assert row["msg"] == msg
    assert chat.command("essence", "unmark", msg=msg) == {"msg": msg, "unmarked": True}
    assert chat.command("essence", "list")["entries"] == []
    chat.assert_ledger_balanced()


def test_erase_removes_the_members_essence_and_votes(make_chat: Make) -> None:
    chat = _chat(make_chat, votes_needed=5)
    mine = chat.say("u1", GOOD)
    theirs = chat.say("u2", GOOD + "（二）")
    chat.say("boss", "精华", reply_to=mine)
    chat.react("u1", theirs)
    chat.react("u3", theirs)
    chat.take()
    assert set(chat.engine.export_member("test", "sim", "u1")["playbooks"]["essence"]) == {
        "m:u1", f"e:{mine}", f"v:{theirs}"
    }
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("essence", f"e:{mine}") is None
    assert chat.state("essence", f"v:{theirs}")["voters"] == ["u3"]
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"]["essence"]
    # the admin who marked is erased: the entry stays, without their name
    other = chat.say("u2", GOOD + "（三）")
    chat.say("boss", "精华", reply_to=other)
    chat.engine.erase_member("test", "sim", "boss")
    assert chat.state("essence", f"e:{other}")["marked_by"] is None
    chat.assert_ledger_balanced()


def test_english_notices(make_chat: Make) -> None:
    chat = make_chat({"essence": {"votes_needed": 1}}, roles=ROLES, locale="en")
    msg = chat.say("u1", "Write down why you decided, then compare.", name="Ann")
    chat.react("u2", msg)
    chat.assert_sent("1 members voted: Ann's message joins the essence", count=1)

"""Linking a person's platform ids into one member (SQLite and PostgreSQL).

A community with a group on Matrix and a group on Telegram; 小王 is
``@wang:hs`` on Matrix and ``777`` on Telegram. Linking makes the Telegram
id count for the Matrix member: rollups, streaks, points, levels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from sqlalchemy import ForeignKey, func, select, text

from qunyun.core.errors import CommandError
from qunyun.engine.identities import MERGE_RULES
from qunyun.store import models as m
from qunyun.testing import Chat
from qunyun.testing.harness import check_ledger
from tests.test_aggregates import rebuilt, snapshot

Make = Callable[..., Chat]

WANG_MX = "@wang:hs"
WANG_TG = "777"


def config(**playbooks: Any) -> str:
    doc = {
        "communities": [
            {
                "id": "test",
                "name": "测试社群",
                "timezone": "Asia/Shanghai",
                "locale": "zh-CN",
                "roles": {"admin": [WANG_TG]},
                "groups": [
                    {"id": "!mx:hs", "platform": "matrix"},
                    {"id": "-100", "platform": "telegram"},
                ],
                "playbooks": playbooks
                or {"checkin": {"reminder": None, "streak_bonus": {}}, "levels": {"announce": False}},
            },
            {
                "id": "other",
                "name": "别的社群",
                "timezone": "Asia/Shanghai",
                "locale": "zh-CN",
                "groups": [{"id": "-200", "platform": "telegram"}],
                "playbooks": {},
            },
        ]
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def on(chat: Chat, platform: str) -> Chat:
    """Point the harness at the group of ``platform``."""
    chat.platform = platform
    chat.group = "!mx:hs" if platform == "matrix" else "-100"
    return chat


def link(chat: Chat, into: str, other: str, *, id: str | None = None, community: str = "test") -> dict[str, Any]:
    return chat.engine.command(community, "members", "link", {"into": into, "other": other}, id=id)


def members(chat: Chat) -> list[tuple[str, str]]:
    with chat.db.connect() as conn:
        return [(p, u) for p, u in conn.execute(text("SELECT platform, user_id FROM members ORDER BY id"))]


def member_id(chat: Chat, platform: str, uid: str) -> int:
    with chat.db.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM members WHERE platform = :p AND user_id = :u"), {"p": platform, "u": uid}
            ).scalar_one()
        )


def rollup_totals(chat: Chat) -> dict[int, tuple[int, int, int]]:
    with chat.db.connect() as conn:
        return {
            int(mid): (int(msgs), int(chk), int(pts))
            for mid, msgs, chk, pts in conn.execute(
                text(
                    "SELECT member_id, sum(messages), sum(checkins), sum(points) FROM rollups "
                    "GROUP BY member_id"
                )
            )
        }


def aggregates(chat: Chat) -> dict[str, list[tuple[Any, ...]]]:
    with chat.db.connect() as conn:
        return snapshot(conn)


# ---------------------------------------------------------------- the schema


def test_every_column_pointing_at_members_has_a_merge_rule() -> None:
    """A new table holding a member id must say what a merge does with it."""
    found = set()
    for table in m.Base.metadata.sorted_tables:
        for col in table.columns:
            for fk in col.foreign_keys:
                assert isinstance(fk, ForeignKey)
                if fk.column.table.name == "members" and fk.column.name == "id":
                    found.add((table.name, col.name))
    missing = found - set(MERGE_RULES)
    assert not missing, f"columns referencing members.id without a rule in identities.MERGE_RULES: {missing}"
    assert set(MERGE_RULES) <= found, "a rule for a column that no longer points at members.id"
    assert len(found) >= 7


# -------------------------------------------------------------- linking


def test_link_before_any_history(make_chat: Make) -> None:
    chat = make_chat(config())
    result = link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    assert result["linked"] is True and result["merged"] is False
    assert members(chat) == [("matrix", WANG_MX)]  # the first id became a member; the second is an identity
    on(chat, "telegram").say(WANG_TG, "打卡 第一天", name="小王")
    on(chat, "matrix").advance(days=1)
    chat.say(WANG_MX, "打卡 第二天", name="小王")
    chat.assert_sent("连续 2 天")
    assert members(chat) == [("matrix", WANG_MX)]
    mid = member_id(chat, "matrix", WANG_MX)
    assert rollup_totals(chat) == {mid: (2, 2, 20)}
    assert chat.balance(f"member:matrix:{WANG_MX}:POINTS") == 20
    assert chat.balance(f"member:telegram:{WANG_TG}:POINTS") == 0
    check_ledger(chat.db)


def test_events_after_linking_count_for_one_member_and_actions_reach_the_platform_id(make_chat: Make) -> None:
    chat = make_chat(config())
    link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    on(chat, "telegram").say(WANG_TG, "打卡", name="小王")
    [reply] = chat.assert_sent("连续 1 天")
    # playbooks saw the member's own id; the Telegram group gets the Telegram id
    assert reply["mentions"] == [WANG_TG]
    assert reply["group"] == "-100"
    on(chat, "matrix").say(WANG_MX, "打卡")
    [again] = chat.assert_sent("已经打过卡")
    assert again["mentions"] == [WANG_MX]
    # a mention of the Telegram id in the Telegram group is a mention of the member
    on(chat, "telegram").say("888", "你好 @小王", name="老李", mentions=[WANG_TG])
    mid = member_id(chat, "matrix", WANG_MX)
    with chat.db.connect() as conn:
        received = conn.execute(
            text("SELECT sum(mentions_received) FROM rollups WHERE member_id = :m"), {"m": mid}
        ).scalar_one()
    assert received == 1
    assert members(chat) == [("matrix", WANG_MX), ("telegram", "888")]


def test_linked_ids_share_the_highest_role(make_chat: Make) -> None:
    chat = make_chat(config())
    link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    with chat.engine.transaction():
        community = chat.settings.communities["test"]
        assert chat.engine._role(community, WANG_MX) == "admin"  # admin as 777 on Telegram
        assert chat.engine._role(community, "nobody") == "member"


def test_link_with_history_merges_rollups_streak_points_and_levels(make_chat: Make) -> None:
    chat = make_chat(config(
        checkin={"reminder": None, "streak_bonus": {}},
        levels={"announce": False, "levels": [
            {"name": "新人", "min_points": 0}, {"name": "常客", "min_points": 30}, {"name": "老友", "min_points": 50},
        ]},
    ))
    # three days on Matrix, then two days on Telegram (the streak goes on)
    on(chat, "matrix").join(WANG_MX, "小王")
    for _ in range(3):
        chat.say(WANG_MX, "打卡")
        chat.advance(days=1)
    on(chat, "telegram").join(WANG_TG, "小王TG")
    for _ in range(2):
        chat.say(WANG_TG, "打卡")
        chat.advance(days=1)
    chat.say(WANG_TG, "hello")
    mx, tg = member_id(chat, "matrix", WANG_MX), member_id(chat, "telegram", WANG_TG)
    before_totals = rollup_totals(chat)
    assert before_totals[mx] == (3, 3, 30) and before_totals[tg] == (3, 2, 20)
    with chat.db.connect() as conn:
        total_before = conn.execute(text("SELECT sum(balance) FROM ledger_accounts")).scalar_one()
        postings_before = conn.execute(text("SELECT count(*) FROM ledger_postings")).scalar_one()
    assert chat.state("levels", f"m:{WANG_MX}")["level"] == 1
    assert chat.state("levels", f"m:{WANG_TG}") is None  # 20 points: still 新人

    result = link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")

    assert result["merged"] is True and result["member"] == mx
    assert members(chat) == [("matrix", WANG_MX)]
    assert rollup_totals(chat) == {mx: (6, 5, 50)}
    # the aggregates beside the rollups equal a rebuild from them
    assert aggregates(chat) == rebuilt(chat)
    # ledger: one account, every transaction balanced, nothing created or lost
    check_ledger(chat.db)
    assert chat.balance(f"member:matrix:{WANG_MX}:POINTS") == 50
    with chat.db.connect() as conn:
        assert conn.execute(text("SELECT sum(balance) FROM ledger_accounts")).scalar_one() == total_before
        assert conn.execute(text("SELECT count(*) FROM ledger_postings")).scalar_one() == postings_before
        assert conn.execute(
            text("SELECT count(*) FROM ledger_accounts WHERE code LIKE 'member:telegram:%'")
        ).scalar_one() == 0
        memberships = conn.execute(
            text("SELECT member_id, status FROM memberships ORDER BY group_id")
        ).all()
    assert [tuple(r) for r in memberships] == [(mx, "active"), (mx, "active")]
    # the streak joined up: 3 days on Matrix, then 2 on Telegram
    st = chat.state("checkin", f"m:{WANG_MX}")
    assert (st["streak"], st["total"], st["best"]) == (5, 5, 5)
    assert chat.state("checkin", f"m:{WANG_TG}") is None
    # 50 points: the merged member holds 老友 (lifted quietly)
    assert chat.state("levels", f"m:{WANG_MX}")["level"] == 2
    chat.take()
    # the next check-in, from Telegram, continues the one streak
    on(chat, "telegram").say(WANG_TG, "打卡")
    chat.assert_sent("连续 6 天")
    assert chat.balance(f"member:matrix:{WANG_MX}:POINTS") == 60
    check_ledger(chat.db)
    assert aggregates(chat) == rebuilt(chat)


def test_a_duplicate_command_id_is_a_no_op(make_chat: Make) -> None:
    chat = make_chat(config())
    on(chat, "telegram").say(WANG_TG, "hi", name="小王")
    on(chat, "matrix").say(WANG_MX, "hi", name="小王")
    first = link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}", id="cmd-link-1")
    assert first["merged"] is True
    assert link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}", id="cmd-link-1") == {"duplicate": True}
    with chat.db.connect() as conn:
        audit = conn.execute(
            text("SELECT actor_count FROM (SELECT count(*) AS actor_count FROM records "
                 "WHERE playbook = 'members' AND kind = 'command') x")
        ).scalar_one()
    assert audit == 1
    # the same link with a new id: nothing to do, said plainly
    again = link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    assert again == {"linked": False, "already": True, "member": member_id(chat, "matrix", WANG_MX)}


@pytest.mark.parametrize(
    ("into", "other", "message"),
    [
        (f"matrix:{WANG_MX}", f"matrix:{WANG_MX}", "to itself"),
        (f"matrix:{WANG_MX}", "telegram:999", "not a member of community 'test'"),
        (f"matrix:{WANG_MX}", "qq:1", "no groups on platform 'qq'"),
        (f"matrix:{WANG_MX}", "telegram", "not PLATFORM:USER_ID"),
    ],
)
def test_refused_links_say_why(make_chat: Make, into: str, other: str, message: str) -> None:
    chat = make_chat(config())
    on(chat, "matrix").say(WANG_MX, "hi", name="小王")
    # 999 is a member of the other community only
    chat.platform, chat.group = "telegram", "-200"
    chat.say("999", "hi")
    with pytest.raises(CommandError, match=message) as err:
        link(chat, into, other)
    assert err.value.hint
    assert members(chat) == [("matrix", WANG_MX), ("telegram", "999")]


def test_an_erased_member_cannot_be_linked(make_chat: Make) -> None:
    chat = make_chat(config())
    on(chat, "telegram").say(WANG_TG, "hi", name="小王")
    on(chat, "matrix").say(WANG_MX, "hi", name="小王")
    chat.engine.erase_member("test", "telegram", WANG_TG)
    with pytest.raises(CommandError, match="erased"):
        link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")


def test_an_id_linked_elsewhere_is_refused(make_chat: Make) -> None:
    chat = make_chat(config())
    link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    with pytest.raises(CommandError, match="already linked to another member"):
        link(chat, "matrix:@li:hs", f"telegram:{WANG_TG}")


def test_export_lists_the_ids_and_erasure_removes_them(make_chat: Make) -> None:
    chat = make_chat(config())
    on(chat, "telegram").say(WANG_TG, "我的手机号 13800000000", name="小王")
    on(chat, "matrix").say(WANG_MX, "hi", name="小王")
    link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    on(chat, "telegram").say(WANG_TG, "after the link", name="小王")
    data = chat.engine.export_member("test", "telegram", WANG_TG)  # a linked id exports the whole person
    assert data["user_id"] == WANG_MX
    assert [(i["platform"], i["user_id"]) for i in data["identities"]] == [("telegram", WANG_TG)]
    texts = {msg["text"] for msg in data["messages"]}
    assert texts == {"我的手机号 13800000000", "hi", "after the link"}
    assert {e["payload"]["actor"]["id"] for e in data["events"]} == {WANG_MX, WANG_TG}
    chat.engine.erase_member("test", "matrix", WANG_MX)
    with chat.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.table(m.MemberIdentity))).scalar_one() == 0
        leaked = conn.execute(
            text("SELECT count(*) FROM events WHERE payload LIKE '%13800000000%'")
            if conn.dialect.name == "sqlite"
            else text("SELECT count(*) FROM events WHERE payload::text LIKE '%13800000000%'")
        ).scalar_one()
    assert leaked == 0
    after = chat.engine.export_member("test", "matrix", WANG_MX)
    assert after["identities"] == [] and after["member"]["erased"] is True
    # the Telegram id is a stranger again: its next event makes a new member
    on(chat, "telegram").say(WANG_TG, "hello again", name="新人")
    assert members(chat)[-1] == ("telegram", WANG_TG)


def test_unlink_detaches_an_id_for_the_future(make_chat: Make) -> None:
    chat = make_chat(config())
    on(chat, "telegram").say(WANG_TG, "hi", name="小王")
    link(chat, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}")
    mx = member_id(chat, "matrix", WANG_MX)
    result = chat.engine.command("test", "members", "unlink", {"id": f"telegram:{WANG_TG}"})
    assert result == {"unlinked": f"telegram:{WANG_TG}", "member": mx}
    on(chat, "telegram").say(WANG_TG, "hi again", name="小王")
    assert members(chat) == [("matrix", WANG_MX), ("telegram", WANG_TG)]
    assert rollup_totals(chat)[mx][0] == 1  # the history stays with the member
    with pytest.raises(CommandError, match="not a linked id"):
        chat.engine.command("test", "members", "unlink", {"id": f"telegram:{WANG_TG}"})


def test_another_process_sees_the_link(make_chat: Make) -> None:
    """A running engine learns of a link given from another process (the community epoch)."""
    chat = make_chat(config())
    on(chat, "telegram").say(WANG_TG, "打卡", name="小王")
    on(chat, "matrix").say(WANG_MX, "hi", name="小王")
    from qunyun.engine.engine import Engine

    cli = Engine(chat.db, chat.settings, clock=chat.clock)
    cli.command("test", "members", "link", {"into": f"matrix:{WANG_MX}", "other": f"telegram:{WANG_TG}"})
    chat.advance(days=1)
    on(chat, "telegram").say(WANG_TG, "打卡")
    chat.assert_sent("连续 2 天")
    assert members(chat) == [("matrix", WANG_MX)]


def test_the_merge_of_a_checkin_record() -> None:
    from qunyun.playbooks.checkin import _combine

    a = {"last": "2026-11-05", "streak": 3, "best": 4, "total": 9, "wk": "2026-W45", "wkn": 3, "mo": "2026-11", "mon": 3}
    b = {"last": "2026-11-07", "streak": 2, "best": 2, "total": 2, "wk": "2026-W45", "wkn": 2, "mo": "2026-11", "mon": 2}
    joined = _combine(a, b)
    assert (joined["last"], joined["streak"], joined["best"], joined["total"], joined["wkn"]) == (
        "2026-11-07", 5, 5, 11, 5)
    gap = _combine({**a, "last": "2026-11-04"}, b)
    assert (gap["streak"], gap["best"]) == (2, 4)
    same = _combine({**a, "last": "2026-11-07"}, b)
    assert (same["streak"], same["total"], same["wkn"]) == (3, 10, 4)


# --------------------------------------------------------------------- CLI


def test_cli_link_identities_and_unlink(db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import qunyun.cli  # noqa: F401  (registers the commands)
    from qunyun.cli.app import app

    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QUNYUN_LANG", "en")
    text_ = config()
    path = tmp_path / "qunyun.yaml"
    path.write_text(text_, encoding="utf-8")
    with Chat(text_, db_url=db_url) as chat:
        on(chat, "matrix").say(WANG_MX, "打卡", name="小王")
        on(chat, "telegram").say(WANG_TG, "打卡", name="小王")
    runner = CliRunner()
    opts = ["--config", str(path), "--db", db_url, "--community", "test"]

    def run(*args: str, input: str | None = None, code: int = 0) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result.output

    # both have history: asked first; "n" leaves everything as it was
    run("members", "link", *opts, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}", input="n\n", code=1)
    out = run("members", "identities", *opts, f"telegram:{WANG_TG}")
    assert "1 id(s)" in out
    out = run("members", "link", *opts, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}", "--yes", "--id", "c-1")
    assert "linked telegram:777 to matrix:@wang:hs" in out and "merged" in out
    assert "already carried out" in run(
        "members", "link", *opts, f"matrix:{WANG_MX}", f"telegram:{WANG_TG}", "--yes", "--id", "c-1"
    )
    found = json.loads(run("members", "identities", *opts, f"telegram:{WANG_TG}", "--json"))
    assert [(i["platform"], i["user_id"], i["own"]) for i in found["ids"]] == [
        ("matrix", WANG_MX, True), ("telegram", WANG_TG, False)
    ]
    out = run("members", "identities", *opts, f"matrix:{WANG_MX}")
    assert "2 id(s)" in out and "linked id" in out
    bad = runner.invoke(app, ["members", "link", *opts, f"matrix:{WANG_MX}", "qq:1"])
    assert isinstance(bad.exception, CommandError) and "no groups on platform 'qq'" in str(bad.exception)
    assert "unlinked telegram:777" in run("members", "unlink", *opts, f"telegram:{WANG_TG}")
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    assert "共 1 个 ID" in run("members", "identities", *opts, f"matrix:{WANG_MX}")

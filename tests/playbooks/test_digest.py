"""digest: daily and weekly documents from the essence (and best answers, talks),
escaping, the quiet empty period, the book, the talent archive."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import insert

from qunyun.core.errors import CommandError
from qunyun.engine import Playbook, Registry
from qunyun.playbooks.digest import Digest
from qunyun.playbooks.essence import Essence
from qunyun.store import models as m
from qunyun.testing import Chat

Make = Callable[..., Chat]
ROLES = {"admin": ["boss"]}
# the harness starts on Monday 2026-11-02, 17:00 in Asia/Shanghai
NEXT_MORNING = {"hours": 16, "minutes": 1}  # 09:01 on 2026-11-03


class _Quiet(Playbook):
    """Stands in for ``qa`` / ``sessions`` (built elsewhere): only their state is read."""

    handles = frozenset({"member_joined"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "测试替身", "en": "test stand-in"}


class _Qa(_Quiet):
    id = "qa"


class _Sessions(_Quiet):
    id = "sessions"


REG = Registry({"essence": Essence, "digest": Digest, "qa": _Qa, "sessions": _Sessions})


def _chat(make_chat: Make, digest: dict[str, Any] | None = None, *, locale: str = "zh-CN",
          extra: dict[str, Any] | None = None, **kw: Any) -> Chat:
    config = {"essence": {"votes_needed": 2}, "digest": digest or {}, **(extra or {})}
    return make_chat(config, registry=REG, roles=ROLES, locale=locale, **kw)


def put_state(chat: Chat, playbook: str, key: str, value: Any) -> None:
    """Another playbook's state, written as that playbook would (its contract)."""
    with chat.db.begin() as conn:
        conn.execute(insert(m.table(m.PlaybookState)).values(
            community_id="test", playbook=playbook, key=key, value=value, updated_at=chat.now))


def mark(chat: Chat, user: str, text: str, *, name: str | None = None) -> str:
    msg = chat.say(user, text, name=name)
    chat.say("boss", "精华", reply_to=msg)
    return msg


def test_a_day_with_entries_makes_both_documents_and_a_notice(make_chat: Make, tmp_path: Path) -> None:
    out = tmp_path / "digests"
    chat = _chat(make_chat, {"out_dir": str(out), "link": "https://example.org/d/{period}.html"},
                 extra={"qa": {}, "sessions": {}})
    mark(chat, "u1", "先写下判断依据，再对照结果复盘。", name="小王")
    voted = chat.say("u2", "周报模板我放在群文件里了，欢迎取用。", name="Bob")
    chat.react("u3", voted)
    chat.react("u4", voted)
    question = chat.say("u3", "新人第一周做什么", name="小李")
    answer = chat.say("u1", "先把群公告和精华集读一遍，再做一次自我介绍。", reply_to=question)
    put_state(chat, "qa", "q:1", {
        "asker": "u3", "group": "g-main", "msg": question, "text": "新人第一周做什么", "ts": chat.now.isoformat(),
        "answers": {answer: {"by": "u1", "ts": chat.now.isoformat(), "votes": 2}}, "best": answer,
        "status": "resolved", "first_answer_ts": chat.now.isoformat()})
    put_state(chat, "sessions", "s:7", {
        "speaker": "u4", "host": "boss", "topic": "私域运营的三个误区", "status": "done",
        "starts_at": chat.now.isoformat(), "ends_at": chat.now.isoformat()})
    chat.say("u4", "分享开始", name="阿杰")
    chat.take()
    chat.advance(**NEXT_MORNING)
    [notice] = chat.assert_sent(playbook="digest")
    assert "2026-11-02 的精华已整理好：4 条，来自 3 位群友" in notice["text"]
    assert "https://example.org/d/2026-11-02.html" in notice["text"]
    assert sorted(p.name for p in out.iterdir()) == ["digest-2026-11-02.html", "digest-2026-11-02.md"]
    md = (out / "digest-2026-11-02.md").read_text(encoding="utf-8")
    html = (out / "digest-2026-11-02.html").read_text(encoding="utf-8")
    for doc in (md, html):
        assert "测试社群" in doc
        assert "先写下判断依据，再对照结果复盘。" in doc and "周报模板我放在群文件里了" in doc
        assert "精选发言" in doc and "最佳回答" in doc and "分享" in doc and "本期作者" in doc
        assert "新人第一周做什么" in doc and "私域运营的三个误区" in doc
        for name in ("小王", "Bob", "阿杰"):
            assert name in doc
    assert "## 本期作者" in md and "\n- 小王 · 2 条" in md
    assert '<html lang="zh-CN">' in html and "<li><strong>小王</strong> · 2 条</li>" in html
    published = chat.state("digest", "published:2026-11-02")
    assert published["entries"] == 4 and published["ts"] == "2026-11-03T01:00:00+00:00"  # 09:00 local
    included = {r["member"]: r["data"]["entries"] for r in chat.records("digest", "digest_included")}
    assert included == {"u1": 2, "u2": 1, "u4": 1}
    chat.advance(days=1)  # 2026-11-03 had no essence: nothing more
    chat.assert_nothing_sent()
    assert sorted(p.name for p in out.iterdir()) == ["digest-2026-11-02.html", "digest-2026-11-02.md"]


def test_english_weekly_digest(make_chat: Make) -> None:
    chat = _chat(make_chat, {"daily": None, "weekly": "0 10 * * 1", "formats": ["md"]}, locale="en")
    mark(chat, "u1", "Write the reasons down before you decide.", name="Ann")
    chat.advance(days=2)
    mark(chat, "u2", "Templates are in the shared folder.", name="Bob")
    chat.take()
    chat.advance(days=6)  # Monday 2026-11-09 10:00: the week 2026-W45
    [notice] = chat.assert_sent(playbook="digest")
    assert notice["text"] == "📚 This week's essence (2026-W45) is ready: 2 pieces by 2 members."
    result = chat.command("digest", "render", label="2026-W45")
    assert result["entries"] == 2 and set(result["files"]) == {"digest-2026-W45.md"}
    md = result["files"]["digest-2026-W45.md"]
    assert md.startswith("# 测试社群 · essence of the week 2026-W45\n\n2 pieces of essence by 2 members.")
    assert "## Highlights" in md and "## Contributors" in md and "- Ann · 1 entries" in md
    assert "> Write the reasons down before you decide." in md


def test_an_empty_period_makes_nothing(make_chat: Make, tmp_path: Path) -> None:
    chat = _chat(make_chat, {"weekly": "0 10 * * 1", "out_dir": str(tmp_path / "out")})
    chat.say("u1", "今天没什么要紧事")
    chat.take()
    assert chat.advance(days=8) > 0  # eight daily jobs and one weekly job ran
    chat.assert_nothing_sent()
    assert not (tmp_path / "out").exists()
    assert chat.scalar("SELECT count(*) FROM playbook_state WHERE playbook = 'digest'") == 0
    assert chat.records("digest", "digest_included") == []
    assert chat.command("digest", "render", period="week", date="2026-11-04")["files"] == {}


def test_hostile_html_is_escaped_and_markdown_stays_text(make_chat: Make) -> None:
    chat = _chat(make_chat, {"daily": None})
    hostile = "<script>alert('x')</script> [点我](javascript:alert(1)) **粗体**\n# 不是标题\n1. 不是列表 & &amp;"
    mark(chat, "u1", hostile, name="<b>老王</b>")
    files = chat.command("digest", "render", date="2026-11-02")["files"]
    html = files["digest-2026-11-02.html"]
    assert "<script>" not in html and "<b>老王</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;老王&lt;/b&gt;" in html and "&amp;amp;" in html
    md = files["digest-2026-11-02.md"]
    assert "<script>" not in md and "<b>" not in md
    assert "\\<script\\>alert('x')\\</script\\>" in md
    assert "\\[点我\\](javascript:alert(1))" in md and "\\*\\*粗体\\*\\*" in md
    assert "> \\# 不是标题" in md and "> 1\\. 不是列表 \\& \\&amp;" in md
    assert "\\<b\\>老王\\</b\\>" in md


def test_the_book_has_chapters_and_credits(make_chat: Make) -> None:
    chat = _chat(make_chat, {"daily": None})
    mark(chat, "u1", "十一月的第一条精华。", name="小王")
    chat.advance(days=30)  # December
    mark(chat, "u2", "十二月的一条精华。", name="小李")
    mark(chat, "u1", "十二月小王又来了。")
    book = chat.command("digest", "book", by="month")
    assert book["chapters"] == 2 and book["entries"] == 3 and book["authors"] == 2
    md = book["files"]["book-month.md"]
    assert md.index("## 1\\. 2026 年 11 月") < md.index("十一月的第一条精华") < md.index("## 2\\. 2026 年 12 月")
    assert md.index("## 2\\. 2026 年 12 月") < md.index("十二月的一条精华")
    index = md[md.index("## 作者索引"):]
    assert "- 小李 · 1 条 · 见：2026 年 12 月" in index
    assert "- 小王 · 2 条 · 见：2026 年 11 月, 2026 年 12 月" in index
    html = book["files"]["book-month.html"]
    assert '<a href="#c1">2026 年 11 月</a> (1 条)' in html and '<section class="chapter" id="c2">' in html
    by_kind = chat.command("digest", "book", by="kind", formats="md")
    assert by_kind["chapters"] == 1 and list(by_kind["files"]) == ["book-kind.md"]
    assert "## 1\\. 精选发言" in by_kind["files"]["book-kind.md"]
    with pytest.raises(CommandError, match="by month or by kind"):
        chat.command("digest", "book", by="year")


def test_archive_gathers_answers_shares_essence_and_awards(make_chat: Make) -> None:
    chat = _chat(make_chat, {"daily": None}, extra={"qa": {}, "sessions": {}})
    msg = mark(chat, "u1", "复盘要先写下判断依据。", name="小王")
    question = chat.say("u3", "怎么开始复盘")
    answer = chat.say("u1", "从一件小事开始，每周一次。", reply_to=question)
    put_state(chat, "qa", "q:9", {
        "asker": "u3", "group": "g-main", "msg": question, "text": "怎么开始复盘", "ts": chat.now.isoformat(),
        "answers": {answer: {"by": "u1", "ts": chat.now.isoformat(), "votes": 3}}, "best": answer,
        "status": "resolved", "first_answer_ts": chat.now.isoformat()})
    put_state(chat, "qa", "m:u1", {"asked": 0, "answers": 1, "best": 1, "votes": 3})
    put_state(chat, "sessions", "s:2", {"speaker": "u1", "host": "boss", "topic": "复盘方法",
                                         "starts_at": "2026-11-20T12:00:00+00:00", "status": "planned"})
    with chat.db.begin() as conn:
        conn.execute(insert(m.table(m.Record)).values(
            community_id="test", group_key="g-main", playbook="fund", kind="award", member="u1",
            ts=datetime(2026, 11, 9, 2, tzinfo=UTC), cause="job", data={"week": "2026-W45", "amount": 5000}))
    got = chat.command("digest", "archive", member="u1")
    assert got["name"] == "小王" and got["points"] == 20
    assert [e["msg"] for e in got["essence"]] == [msg]
    [ans] = got["answers"]
    assert ans["best"] and ans["text"] == "从一件小事开始，每周一次。" and ans["question"] == "怎么开始复盘"
    assert [s["topic"] for s in got["shares"]] == ["复盘方法"]
    assert got["awards"][0]["data"] == {"week": "2026-W45", "amount": 5000}
    assert got["stats"]["qa"]["best"] == 1 and got["stats"]["essence"]["essence"] == 1
    empty = chat.command("digest", "archive", member="nobody")
    assert empty["essence"] == [] and empty["answers"] == [] and empty["awards"] == []
    with pytest.raises(CommandError, match="needs a member"):
        chat.command("digest", "archive")


def test_one_digest_for_the_community_and_a_notice_in_each_group(make_chat: Make, tmp_path: Path) -> None:
    chat = _chat(make_chat, {"out_dir": str(tmp_path)}, groups=["g-main", "g-two"])
    mark(chat, "u1", "第一组的一条精华。")
    chat.take()
    chat.advance(**NEXT_MORNING)
    notices = chat.assert_sent(playbook="digest", count=2)
    assert sorted(n["group"] for n in notices) == ["g-main", "g-two"]
    assert len(chat.records("digest", "digest_included")) == 1


def test_bad_settings_and_arguments(make_chat: Make) -> None:
    from qunyun.config import settings_from_text
    from qunyun.core.errors import ConfigError
    from qunyun.testing import community_config

    for bad, needle in (({"daily": "0 25 * * *"}, "invalid cron"), ({"formats": ["pdf"]}, "formats"),
                        ({"link": " "}, "link is empty"), ({"kinds": []}, "kinds")):
        with pytest.raises(ConfigError, match=needle):
            settings_from_text(community_config({"digest": bad}), registry=REG)
    chat = _chat(make_chat)
    with pytest.raises(CommandError, match="neither a day"):
        chat.command("digest", "render", label="yesterday")
    with pytest.raises(CommandError, match="unknown format"):
        chat.command("digest", "render", formats=["pdf"])
    with pytest.raises(CommandError, match="no command"):
        chat.command("digest", "broadcast")


@pytest.mark.parametrize(("args", "quoted"), [
    ({"label": "yesterday"}, "'yesterday'"),
    ({"label": "2026-W60"}, "'2026-W60'"),
    ({"date": "soon"}, "'soon'"),
    ({"period": "week", "date": "9999-12-31"}, "'9999-W52'"),  # that week ends in year 10000
])
def test_a_bad_period_is_refused_in_the_operators_language(make_chat: Make, args: dict[str, Any],
                                                           quoted: str) -> None:
    chat = _chat(make_chat)
    with pytest.raises(CommandError) as refused:
        chat.command("digest", "render", **args)
    english = refused.value.localized("en")
    assert english.startswith(f"cannot read the period: {quoted} ") and "\n  hint: a day is written" in english
    zh = refused.value.localized("zh-CN")
    assert zh.startswith(f"无法识别时段：{quoted} ") and "\n  提示: 一天写作 2026-11-02" in zh
    # apart from the quoted input (and the way a week is written, 2026-W45), not one Latin letter
    assert not re.search(r"[A-Za-z]", zh.replace(quoted, "").replace("2026-W45", "")), zh


def test_only_sessions_that_took_place_are_shares(make_chat: Make) -> None:
    """With the real ``sessions``: a speaker who never showed, or a cancelled or future
    session, is not credited in the digest; a session held is, under its summary."""
    chat = make_chat({"sessions": {"stages": [], "warmups": [], "no_show_minutes": 15, "summary_delay": 5},
                      "essence": {}, "digest": {"daily": None}}, roles=ROLES)
    for uid, name in (("sp", "讲者老张"), ("sp2", "讲者小周"), ("ho", "主持小李"), ("boss", "群主")):
        chat.join(uid, name)
    chat.command("sessions", "create", speaker="sp", host="ho", topic="没来的分享", starts_at="2026-11-04 20:00")
    chat.command("sessions", "create", speaker="sp2", host="ho", topic="按时开讲", starts_at="2026-11-05 20:00")
    chat.command("sessions", "create", speaker="sp2", host="ho", topic="取消了", starts_at="2026-11-06 20:00")
    chat.command("sessions", "cancel", session="3")
    chat.advance_to(datetime(2026, 11, 5, 11, 59, tzinfo=UTC))
    assert chat.state("sessions", "s:1")["status"] == "no_show"
    chat.say("sp2", "大家好，开始了")
    chat.advance(days=3)
    assert chat.state("sessions", "s:2")["status"] == "done"
    week = chat.command("digest", "render", label="2026-W45", formats="md")
    assert week["entries"] == 1
    md = week["files"]["digest-2026-W45.md"]
    assert "讲者小周" in md and "讲者老张" not in md and "没来的分享" not in md and "取消了" not in md
    assert chat.command("digest", "render", label="2026-11-04")["entries"] == 0

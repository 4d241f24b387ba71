"""Reply linking, question detection and the answer rate.

A tiny hand-made IRC excerpt with known links, a sanity check against the
human annotations of one real ``#ubuntu`` file, and the answer rate and
median time to first answer read from the database (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from qunyun.analytics import replies as R
from qunyun.testing import Chat

IRC = Path("/work/shared/data/irc-ubuntu")

EXCERPT = """\
[10:00] <ana> how do I mount an iso image?
=== bo [~bo@example.org]  has joined #ubuntu
[10:01] <cy> ana: sudo mount -o loop file.iso /mnt
[10:01] <cy> the /mnt directory has to exist first
[10:02] <ana> thanks, that worked
[10:02] <dee> anyone know why my sound stopped after the upgrade?
=== bo is now known as bob
[10:03] <bob> dee, check alsamixer, the upgrade mutes it
[10:20] <ana> lunch time
[10:50] <eve> is there a way to make grub wait longer?
"""


def excerpt() -> list[R.ChatMessage]:
    return R.read_irc(EXCERPT.splitlines(), date(2007, 1, 19))


def test_reading_an_irc_log() -> None:
    msgs = excerpt()
    assert [m.key for m in msgs] == ["0", "2", "3", "4", "5", "7", "8", "9"]
    assert msgs[1].mentions == ("ana",)
    assert msgs[2].mentions == ()
    # bob was bo when he joined: the same person, addressed by his new nick
    assert msgs[5].author == "bo" and msgs[5].mentions == ("dee",)
    assert msgs[0].ts == datetime(2007, 1, 19, 10, 0)


def test_links_on_a_hand_made_excerpt() -> None:
    links = {(x.child, x.parent, x.how) for x in R.link_replies(excerpt())}
    assert links == {
        ("2", "0", "mention"),  # cy answers ana
        ("3", "2", "continue"),  # cy's second line, same minute
        ("4", "2", "back"),  # ana thanks the last message addressed to her
        ("7", "5", "mention"),  # bob (bo) answers dee
    }
    # "lunch time" 18 minutes later and eve's question start topics: no link


def test_each_rule_can_be_left_out() -> None:
    only_mentions = {(x.child, x.parent) for x in R.link_replies(excerpt(), rules=("mention",))}
    assert only_mentions == {("2", "0"), ("7", "5")}
    with pytest.raises(ValueError, match="unknown linking rules"):
        R.link_replies(excerpt(), rules=("telepathy",))


def test_questions_and_their_first_answers_on_the_excerpt() -> None:
    qs = {q.key: q for q in R.find_questions(excerpt())}
    assert set(qs) == {"0", "5", "9"}
    assert (qs["0"].first_answer, qs["0"].minutes_to_answer, qs["0"].answerers) == ("2", 1.0, ("cy",))
    assert (qs["5"].first_answer, qs["5"].minutes_to_answer) == ("7", 1.0)
    assert qs["9"].first_answer is None
    stats = R.summarize(list(qs.values()))
    assert stats == R.AnswerStats(questions=3, answered=2, rate=pytest.approx(2 / 3), median_first_answer_minutes=1.0)
    assert R.summarize([]) == R.AnswerStats(0, 0, None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how do I mount an iso image", True),
        ("ana: what does -o loop do", True),
        ("does it work?", True),
        ("请问怎么打卡", True),
        ("这个资料在哪里下载", True),
        ("今天可以交作业吗", True),
        ("thanks, that worked", False),
        ("今天读完第三章了", False),
        ("?", False),
        ("", False),
        ("is", False),
    ],
)
def test_question_detection(text: str, expected: bool) -> None:
    assert R.is_question(text) is expected


def test_a_reply_to_an_unknown_message_falls_back_to_mentions() -> None:
    t = datetime(2026, 11, 2, 9, 0)
    msgs = [
        R.ChatMessage("m1", t, "u1", "怎么打卡？"),
        R.ChatMessage("m2", t + timedelta(minutes=5), "u2", "@u1 发“打卡”就行", reply_to="gone", mentions=("u1",)),
        R.ChatMessage("m3", t + timedelta(hours=2), "u3", "@u1 还在吗", mentions=("u1",)),
    ]
    links = R.link_replies(msgs)
    assert [(x.child, x.parent, x.how) for x in links] == [("m2", "m1", "mention")]  # m3: too late


# ----------------------------------------------------------- real annotations


@pytest.mark.skipif(not IRC.exists(), reason="the #ubuntu data set is not on this machine")
def test_agreement_with_the_annotators_on_one_real_file() -> None:
    raw = IRC / "2006-02-24.train-a.raw.txt"
    ann = (IRC / "2006-02-24.train-a.annotation.txt").read_text().splitlines()
    msgs = R.read_irc(raw.read_text(errors="replace").splitlines(), date(2006, 2, 24))
    keys = {int(x.key) for x in msgs}
    first = min(int(line.split()[1]) for line in ann)
    gold = {(c, p) for c, p in R.read_irc_annotation(ann) if c in keys and p in keys}
    ours = {(int(x.child), int(x.parent)) for x in R.link_replies(msgs) if int(x.child) >= first}
    precision = len(ours & gold) / len(ours)
    recall = len(ours & gold) / len(gold)
    # measured by scripts/validate_replies.py: precision 0.715, recall 0.690 on this file
    assert precision >= 0.66
    assert recall >= 0.64


# ------------------------------------------------------------------ database


def test_answer_rate_and_median_time_from_the_database(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({}, groups=["g-main", "g-other"])
    for u in ("u1", "u2", "u3", "u4"):
        chat.join(u)
    chat.join("u1", group="g-other")
    chat.say("u4", "上周的问题：作业几点截止？")  # day 0, outside the period asked below
    chat.advance(days=1)
    q1 = chat.say("u1", "请问资料在哪里下载？")
    chat.advance(minutes=10)
    chat.say("u2", "群公告里有链接", reply_to=q1)  # answered by reply, 10 min
    chat.say("u1", "找到了，谢谢")
    chat.advance(minutes=5)
    chat.say("u3", "怎么打卡？")
    chat.advance(minutes=30)
    chat.say("u2", "@u3 发“打卡”两个字就行", mentions=["u3"])  # answered by mention, 30 min
    chat.advance(minutes=5)
    chat.say("u4", "有人周末一起复习吗？")  # nobody answers
    chat.say("u1", "另一个群的问题？", group="g-other")
    with chat.db.connect() as conn:
        stats = R.answer_stats(conn, "test", date(2026, 11, 3), date(2026, 11, 3), "g-main")
        everywhere = R.answer_stats(conn, "test", date(2026, 11, 3), date(2026, 11, 3))
        day0 = R.answer_stats(conn, "test", date(2026, 11, 2), date(2026, 11, 2), "g-main")
        empty = R.answer_stats(conn, "test", date(2026, 12, 1), date(2026, 12, 7))
        per_member = R.member_questions_and_answers(conn, "test", date(2026, 11, 3), date(2026, 11, 3))
        with pytest.raises(ValueError, match="ends"):
            R.answer_stats(conn, "test", date(2026, 11, 3), date(2026, 11, 2))
    assert stats == R.AnswerStats(3, 2, pytest.approx(2 / 3), 20.0)
    assert everywhere.questions == 4 and everywhere.answered == 2
    assert day0 == R.AnswerStats(1, 0, 0.0, None)
    assert empty == R.AnswerStats(0, 0, None, None)
    assert per_member == {"u1": (2, 0), "u2": (0, 2), "u3": (1, 0), "u4": (1, 0)}


def test_an_answer_the_next_day_counts_if_within_a_day(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({})
    chat.join("u1")
    chat.join("u2")
    chat.advance(hours=6)  # 23:00 local
    q = chat.say("u1", "明天的课几点开始？")
    chat.advance(hours=2)  # 01:00 the next local day
    chat.say("u2", "九点", reply_to=q)
    with chat.db.connect() as conn:
        stats = R.answer_stats(conn, "test", date(2026, 11, 2), date(2026, 11, 2))
    assert stats == R.AnswerStats(1, 1, 1.0, 120.0)

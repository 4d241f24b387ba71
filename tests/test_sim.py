"""The ``sim`` adapter: a seeded learning community that reacts to the bot.

Determinism, the persona mix, arrival waves, daily rhythm, valid and ordered
events, spammers that the moderation playbook removes, and members who
answer the bot (a welcomed newcomer introduces themselves; a run whose
actions are observed differs from one that is not).
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from qunyun.adapters.sim import BOT_ID, WAVE_DAYS, Simulation, persona_mix
from qunyun.adapters.sim import personas as P
from qunyun.adapters.sim.simulator import OPEN_HOURS, QUIZ
from qunyun.config.model import settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.events import BaseEvent, MemberJoined, MemberLeft, Message, Reaction, parse_event
from qunyun.demo import drive
from qunyun.engine.engine import Engine
from qunyun.playbooks.profile import ProfileConfig, compute_tags, parse_intro
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine


def dump(events: list[Any]) -> list[bytes]:
    return [orjson.dumps(e.model_dump(mode="json")) for e in events]


def local_day(sim: Simulation, event: BaseEvent) -> int:
    return (event.ts.astimezone(sim.tz).date() - sim.start.date()).days


@pytest.fixture(scope="module")
def month() -> tuple[Simulation, list[Any]]:
    """The default community, 30 days, nobody watching."""
    sim = Simulation(seed=42)
    return sim, sim.events()


# ------------------------------------------------------------ determinism


def test_same_seed_gives_identical_events_and_another_seed_does_not() -> None:
    first = dump(Simulation(seed=7, groups=2, members=60, days=6).events())
    again = dump(Simulation(seed=7, groups=2, members=60, days=6).events())
    other = dump(Simulation(seed=8, groups=2, members=60, days=6).events())
    assert len(first) > 300
    assert first == again
    assert first != other


def test_hour_by_hour_and_day_by_day_give_the_same_stream() -> None:
    whole = dump(Simulation(seed=3, members=50, days=3).events())
    sim = Simulation(seed=3, members=50, days=3)
    by_day = dump([e for day in range(3) for e in sim.run_day(day)])
    assert whole == by_day
    with pytest.raises(RuntimeError):
        sim.step()


def test_run_day_refuses_to_skip_ahead() -> None:
    sim = Simulation(seed=3, members=20, days=3)
    with pytest.raises(ValueError, match="not next"):
        sim.run_day(1)


# ---------------------------------------------------------------- the cast


def test_persona_mix_follows_the_community_structure() -> None:
    counts = Simulation(seed=1, members=300).persona_counts()
    assert sum(counts.values()) == 300
    assert 1 <= counts["spammer"] <= 2
    assert counts["big_name"] == 9  # 3%
    assert 45 <= counts["regular"] <= 60  # 15-20%
    assert counts["lurker"] / 300 > 0.7  # most people lurk
    big = persona_mix(1000)
    assert big["big_name"] == 30 and big["regular"] == 170 and big["spammer"] == 2
    assert persona_mix(1) == {"big_name": 1, "regular": 0, "lurker": 0, "spammer": 0}


def test_owner_is_a_big_name_in_the_main_group_and_some_members_are_in_two_groups() -> None:
    sim = Simulation(seed=5)
    assert sim.owner.persona == "big_name" and sim.owner.home == "g-main"
    doubles = [m for m in sim.members if len(m.joins) == 2]
    assert 3 <= len(doubles) <= 0.1 * len(sim.members)
    assert all(m.persona in ("big_name", "regular") for m in doubles)


def test_names_are_unique() -> None:
    sim = Simulation(seed=9, members=2000, days=1)
    names = [m.name for m in sim.members]
    assert len(set(names)) == len(names)


# ------------------------------------------------------------------ joins


def test_newcomers_arrive_with_a_core_on_day_zero_and_then_in_waves(
    month: tuple[Simulation, list[Any]],
) -> None:
    sim, events = month
    joins = Counter(local_day(sim, e) for e in events if isinstance(e, MemberJoined))
    assert sum(joins.values()) >= 300  # everyone, plus second groups
    assert joins[0] >= 0.3 * 300
    quiet = [joins[d] for d in range(1, 30) if d not in WAVE_DAYS]
    for day in WAVE_DAYS:
        assert joins[day] >= 15, (day, joins)
        assert joins[day] > 4 * max(1, statistics.median(quiet)), (day, joins)


def test_spammers_join_in_a_wave_and_post_ads_links_qr_codes_and_floods(
    month: tuple[Simulation, list[Any]],
) -> None:
    sim, events = month
    spammers = {m.uid for m in sim.members if m.persona == "spammer"}
    assert spammers
    joined = {e.actor.id: local_day(sim, e) for e in events if isinstance(e, MemberJoined)}
    assert all(joined[uid] in WAVE_DAYS for uid in spammers)
    spam = [e for e in events if isinstance(e, Message) and e.actor.id in spammers]
    assert any(e.content_type == "image" and (e.model_extra or {}).get("qr") is True for e in spam)
    assert any("http" in e.text for e in spam)
    texts = Counter((e.actor.id, e.text) for e in spam if e.text)
    assert max(texts.values()) >= 4  # a flood repeats itself
    # nobody removes them when no bot is watching
    assert not any(isinstance(e, MemberLeft) and e.actor.id in spammers for e in events)


# ------------------------------------------------------------ the events


def test_events_are_valid_unique_and_in_time_order_per_group(
    month: tuple[Simulation, list[Any]],
) -> None:
    sim, events = month
    assert 10_000 <= len(events) <= 60_000  # a few tens of thousands
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids) and all(i.startswith("sim-") for i in ids)
    last: dict[str, Any] = {}
    for e in events:
        assert e.platform == "sim" and e.ts.tzinfo is not None
        assert e.ts.utcoffset() == timedelta(hours=8)
        assert e.group not in last or last[e.group] <= e.ts, e.id
        last[e.group] = e.ts
    # every line survives the JSON Lines round trip of `qunyun replay`
    for raw, event in zip(dump(events[:2000]), events[:2000], strict=True):
        assert parse_event(raw) == event
    assert events[-1].ts < sim.end


def test_members_speak_only_while_in_the_group_and_refer_only_to_earlier_messages(
    month: tuple[Simulation, list[Any]],
) -> None:
    _, events = month
    inside: set[tuple[str, str]] = set()
    seen: dict[str, str] = {}
    for e in events:
        key = (e.group, e.actor.id)
        if isinstance(e, MemberJoined):
            assert key not in inside
            inside.add(key)
            continue
        assert key in inside, f"{e.id}: {e.actor.id} acts in {e.group} without being there"
        if isinstance(e, MemberLeft):
            inside.discard(key)
        elif isinstance(e, Message):
            assert e.msg_id not in seen
            if e.reply_to is not None:
                assert seen.get(e.reply_to) == e.group
            seen[e.msg_id] = e.group
        elif isinstance(e, Reaction):
            assert seen.get(e.target) == e.group


def test_activity_follows_the_day(month: tuple[Simulation, list[Any]]) -> None:
    sim, events = month
    hours = Counter(e.ts.astimezone(sim.tz).hour for e in events if isinstance(e, Message))
    total = sum(hours.values())
    night = sum(hours[h] for h in (2, 3, 4))
    assert night < 0.02 * total
    assert hours[21] > 5 * hours[3] and hours[8] > 5 * hours[3] and hours[12] > hours[15]


def test_the_mix_of_talk_matches_the_personas(month: tuple[Simulation, list[Any]]) -> None:
    sim, events = month
    said = Counter(e.actor.id for e in events if isinstance(e, Message))
    by_persona: dict[str, list[int]] = {}
    for member in sim.members:
        by_persona.setdefault(member.persona, []).append(said[member.uid])
    big = statistics.mean(by_persona["big_name"])
    regular = statistics.mean(by_persona["regular"])
    lurkers = by_persona["lurker"]
    assert big > 2 * regular
    assert regular > 10 * statistics.mean(lurkers)
    assert sum(1 for n in lurkers if n == 0) > 0.3 * len(lurkers)  # many never speak
    checkins = [
        e for e in events if isinstance(e, Message) and e.text.startswith(("打卡", "#打卡"))
    ]
    assert len(checkins) > 500
    assert any(e.reply_to for e in events if isinstance(e, Message))
    assert any(e.mentions for e in events if isinstance(e, Message))
    assert any(isinstance(e, Reaction) and e.emoji == "👍" for e in events)
    assert any(isinstance(e, MemberLeft) and e.by is None for e in events)


def test_some_questions_ask_what_the_faq_answers(month: tuple[Simulation, list[Any]]) -> None:
    sim, events = month
    keywords = [k for entry in _faq(sim) for k in entry["keywords"]]
    asked = [e for e in events if isinstance(e, Message) and any(k in e.text for k in keywords)]
    assert len(asked) > 50


def _faq(sim: Simulation) -> list[dict[str, Any]]:
    import yaml

    doc = yaml.safe_load(sim.config_yaml())
    entries: list[dict[str, Any]] = doc["communities"][0]["playbooks"]["faq"]["entries"]
    return entries


# ------------------------------------------------------- reacting to the bot


def _until(sim: Simulation, predicate: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        hour = sim.step()
        out.extend(hour.events)
        if predicate(hour):
            return out


def test_a_welcomed_newcomer_introduces_themselves_and_an_ignored_one_mostly_does_not() -> None:
    def run(welcome: bool) -> tuple[list[str], list[Any]]:
        sim = Simulation(seed=11, groups=1, members=120, days=3)
        before = _until(sim, lambda h: h.day == 0 and h.hour == 12)
        newcomers = [e.actor.id for e in before if isinstance(e, MemberJoined)]
        if welcome:
            sim.observe(
                [
                    {
                        "type": "send",
                        "playbook": "welcome",
                        "group": "g-main",
                        "mentions": newcomers,
                        "text": "欢迎",
                    }
                ]
            )
        return newcomers, sim.events()

    newcomers, welcomed_run = run(True)
    same, quiet_run = run(False)
    assert newcomers == same and len(newcomers) > 20

    def intros(events: list[Any]) -> set[str]:
        return {
            e.actor.id
            for e in events
            if isinstance(e, Message)
            and e.actor.id in newcomers
            and any(w in e.text for w in ("我是", "报到", "自我介绍", "城市", "#intro"))
        }

    assert len(intros(welcomed_run)) >= 0.3 * len(newcomers)
    assert len(intros(welcomed_run)) > 2 * len(intros(quiet_run))


def test_a_reminder_brings_check_ins_and_a_removal_becomes_a_left_event() -> None:
    def run(remind: bool) -> tuple[Simulation, set[str], set[str], list[Any], str]:
        sim = Simulation(seed=4, groups=1, members=80, days=4)
        _until(sim, lambda h: h.day == 1 and h.hour == 20)
        due = [m for m in sim.members if m.status.get("g-main") == "in" and m.checked_day != 1]
        if remind:
            sim.observe(
                [
                    {
                        "type": "send",
                        "playbook": "checkin",
                        "group": "g-main",
                        "mentions": [m.uid for m in due],
                        "reply_to": None,
                        "text": "🌙",
                    },
                    {"type": "remove", "group": "g-main", "member": due[-1].uid},
                ]
            )
        rest = _until(sim, lambda h: h.day == 1 and h.hour == 23)
        reminded = {m.uid for m in due}
        checked = {
            e.actor.id
            for e in rest
            if isinstance(e, Message)
            and e.actor.id in reminded
            and e.text.startswith(("打卡", "#打卡"))
        }
        return sim, reminded, checked, rest, due[-1].uid

    sim, reminded, checked, rest, gone = run(True)
    _, same, unreminded, _, _ = run(False)
    assert reminded == same and len(reminded) > 10
    assert len(checked) >= len(unreminded) + 0.3 * len(reminded)
    left = [e for e in rest if isinstance(e, MemberLeft) and e.actor.id == gone]
    assert len(left) == 1 and left[0].by == BOT_ID
    assert not any(e.actor.id == gone for e in sim.events())


def test_observe_ignores_what_it_does_not_know() -> None:
    def run(noise: bool) -> list[bytes]:
        sim = Simulation(seed=2, groups=1, members=30, days=2)
        out = dump(_until(sim, lambda h: h.day == 0 and h.hour == 12))
        if noise:
            sim.observe(
                [
                    {
                        "type": "send",
                        "playbook": "welcome",
                        "group": "elsewhere",
                        "mentions": ["u-0001"],
                    },
                    {
                        "type": "send",
                        "playbook": "welcome",
                        "group": "g-main",
                        "mentions": ["nobody"],
                    },
                    {"type": "remove", "group": "g-main", "member": "nobody"},
                    {"type": "pin", "group": "g-main", "msg_id": "m-1"},
                    {"type": "send", "group": "g-main", "text": "hello", "reply_to": "m-unknown"},
                ]
            )
        return out + dump(sim.events())

    assert run(True) == run(False)


def test_newcomers_answer_the_gate_quiz_they_were_given_and_spammers_do_not() -> None:
    sim = Simulation(seed=4, groups=1, members=60, days=2)
    before = _until(sim, lambda h: h.day == 0 and h.hour == 12)
    joined = [e.actor.id for e in before if isinstance(e, MemberJoined)]
    newcomers = [u for u in joined if u != sim.owner.uid][:20]
    # the English quiz: question 4 then question 2 (right answers B and B)
    text = f"Please answer:\n1. {QUIZ[3]['question']['en']}\n2. {QUIZ[1]['question']['en']}"
    sim.observe(
        [
            {"type": "send", "playbook": "gate", "group": "g-main", "mentions": [u], "text": text}
            for u in newcomers
        ]
    )
    answers = {
        e.actor.id: e.text
        for e in sim.events()
        if isinstance(e, Message) and e.actor.id in newcomers and e.text.replace(".", " ").startswith("1 ")
    }
    assert len(answers) >= 0.7 * len(newcomers)
    letters = [re.findall(r"[1-2][. ]+([A-Ca-c])", t) for t in answers.values()]
    assert all(len(pair) == 2 for pair in letters)
    right = sum(1 for pair in letters if [c.upper() for c in pair] == ["B", "B"])
    assert right >= 0.6 * len(answers)

    spammy = Simulation(seed=4, groups=1, members=60, days=6)
    spammers = {m.uid for m in spammy.members if m.persona == "spammer"}
    assert spammers
    spammy._gate(spammy.member(next(iter(spammers))), "g-main", text, 0.0)  # type: ignore[arg-type]
    assert not any(e[2] == "quiz" for e in spammy._heap)


def test_most_introductions_fill_a_profile_card_with_expertise_the_questions_mention() -> None:
    cfg = ProfileConfig()
    rng = random.Random(1)
    cards = 0
    with_expertise = 0
    for _ in range(400):
        topic = rng.choice(P.TOPICS)
        expertise = P.expertise_of(rng, topic)
        _, fields = parse_intro(P.intro_text(rng, "小王", expertise), cfg)
        if len(fields) >= 2:
            cards += 1
            if "expertise" in fields:
                with_expertise += 1
                assert set(compute_tags(fields, cfg)) >= {t.casefold() for t in expertise}
    assert 0.65 * 400 <= cards <= 0.85 * 400  # the rest is a plain sentence
    assert 0.7 * cards <= with_expertise < cards  # some forget the expertise line
    asked = " ".join(P._QUESTIONS).casefold()
    topics = [t for t, terms in P.EXPERTISE.items() if any(w.casefold() in asked for w in terms)]
    assert topics == list(P.EXPERTISE)  # every topic's experts can be asked something


def test_the_reading_club_is_quieter_while_closed_and_quarrels_happen(
    month: tuple[Simulation, list[Any]],
) -> None:
    sim, events = month

    def closed_share(group: str) -> float:
        hours = [
            e.ts.astimezone(sim.tz).hour
            for e in events
            if isinstance(e, Message) and e.group == group
        ]
        return sum(1 for h in hours if not any(a <= h < b for a, b in OPEN_HOURS)) / len(hours)

    assert sim.hours_group == "g-reading"
    assert closed_share("g-reading") < 0.6 * closed_share("g-main")
    barbs = [e for e in events if isinstance(e, Message) and len(e.mentions) == 1 and "@" in e.text
             and any(w in e.text for w in ("闭嘴", "有病", "放屁", "白痴", "神经病", "脑残", "滚开"))]  # fmt: skip
    pairs = Counter(frozenset((e.actor.id, e.mentions[0])) for e in barbs)
    assert sim.stats.get("quarrel", 0) >= 3
    assert max(pairs.values()) >= 3  # the same two, several times


def test_waiting_members_join_only_when_invited() -> None:
    sim = Simulation(seed=6, groups=2, members=100, days=4)
    waiting = sim.waitlist
    assert sum(len(v) for v in waiting.values()) == 4
    assert sum(sim.persona_counts().values()) == 100  # the waiting list is extra
    first = waiting["g-main"][0]
    before = _until(sim, lambda h: h.day == 1 and h.hour == 9)
    everyone = [uid for uids in waiting.values() for uid in uids]
    assert not any(e.actor.id in everyone for e in before)
    sim.observe([{"type": "invite", "group": "g-main", "member": first, "playbook": "elimination"}])
    sim.observe([{"type": "invite", "group": "g-main", "member": "u-0005", "playbook": "elimination"}])
    rest = sim.events()
    joins = [e for e in rest if isinstance(e, MemberJoined) and e.actor.id == first]
    assert len(joins) == 1 and joins[0].via == "invite" and joins[0].group == "g-main"
    others = everyone[1:]
    assert not any(e.actor.id in others for e in rest)


# ------------------------------------------------------ through the engine


def _engine(sim: Simulation, db_url: str) -> tuple[Any, Engine]:
    settings = settings_from_text(sim.config_yaml(), "<sim>")
    db = open_engine(db_url)
    migrate(db)
    return db, Engine(db, settings, clock=FakeClock(sim.start), batch_size=200)


def test_the_engine_removes_spammers_and_the_simulation_reports_it(db_url: str) -> None:
    sim = Simulation(seed=21, groups=2, members=160, days=12)
    spammers = {m.uid for m in sim.members if m.persona == "spammer"}
    assert len(spammers) == 1 or len(spammers) == 2
    db, engine = _engine(sim, db_url)
    actions: list[dict[str, Any]] = []
    engine.on_commit = lambda rows: actions.extend(r["payload"] for r in rows)
    try:
        drive(sim, engine)
        removed = {
            a["member"] for a in actions if a["type"] == "remove" and a["playbook"] == "moderation"
        }
        # moderation removes spammers and nobody else; a spammer who never
        # answers the entry quiz may be removed by the gate first
        assert removed <= spammers
        gone = {a["member"] for a in actions if a["type"] == "remove"}
        assert spammers <= gone
        warned = [a for a in actions if a["playbook"] == "moderation" and a["type"] == "send"]
        deleted = [a for a in actions if a["playbook"] == "moderation" and a["type"] == "delete"]
        assert warned and deleted
        for uid in spammers:
            member = sim.member(uid)
            assert member is not None and "removed" in member.status.values()
        ms = m.Membership.__table__
        mem = m.Member.__table__
        with db.connect() as conn:
            rows = conn.execute(
                select(mem.c.user_id, ms.c.status).join(ms, ms.c.member_id == mem.c.id)
            ).all()
        status = dict(rows)
        assert all(status[uid] == "removed" for uid in spammers)
    finally:
        db.dispose()


def test_a_community_that_sees_the_bot_talks_more_than_one_that_does_not(db_url: str) -> None:
    seen = Simulation(seed=13, groups=1, members=90, days=12)
    db, engine = _engine(seen, db_url)
    try:
        drive(seen, engine, observe=True)
    finally:
        db.dispose()
    # Not observing is the same as having no bot at all.
    blind = Simulation(seed=13, groups=1, members=90, days=12)
    blind.events()

    def newcomer_messages(sim: Simulation) -> int:
        return sum(
            m.messages for m in sim.members if m.persona != "spammer" and m.joins[m.home] > 0
        )

    assert seen.stats.get("intro", 0) > 2 * blind.stats.get("intro", 0)
    assert newcomer_messages(seen) > 1.15 * newcomer_messages(blind)
    assert seen.stats.get("checkin_after_reminder", 0) > 0
    assert blind.stats.get("checkin_after_reminder", 0) == 0
    assert seen.stats.get("spam", 0) < blind.stats.get("spam", 0)


# ------------------------------------------------- contribution and incentives


def test_the_contribution_plan_is_fixed_by_the_seed(month: tuple[Simulation, list[Any]]) -> None:
    from qunyun.adapters.sim.simulator import CHALLENGE, QA_FORMAT_P, SEED_DONATION, SESSION_DAY

    sim, events = month
    again = Simulation(seed=42)
    assert again.commands() == sim.commands()
    challenge, session = sim.commands()
    assert (challenge.playbook, challenge.name, challenge.day) == ("challenge", "create", 0)
    assert challenge.args == {**CHALLENGE, "start": "2026-11-03", "announce_group": "g-main"}
    assert session.args["starts_at"] == f"2026-11-{2 + SESSION_DAY:02d} 20:00"
    assert session.args["speaker"] == sim.speaker and sim.speaker not in sim.staff
    assert len(set(sim.duty_volunteers)) == 3 and sim.duty_volunteers[:2] == sim.admins
    assert sim.season_weeks == 5
    assert Simulation(seed=42, days=9).commands()[1:] == []  # the session falls after the run
    # without the bot: the owner's gift and the duty sign-ups happen, nobody pays dues
    # (that follows the quiz) and nobody rises for a challenge nobody announced
    payments = [e for e in events if e.type == "payment"]
    assert [(p.actor.id, p.amount) for p in payments] == [(sim.owner.uid, SEED_DONATION)]
    signups = [e for e in events if isinstance(e, Message) and e.text == "报名值班"]
    assert sorted(e.actor.id for e in signups) == sorted(sim.duty_volunteers)
    # about half of the ordinary questions use the qa format
    qa, plain = sim.stats["qa_question"], sim.stats["question"]
    assert abs(qa / (qa + plain) - QA_FORMAT_P) < 0.1
    assert sum(isinstance(e, Message) and e.text.startswith(("提问：", "问：")) for e in events) == qa


def test_members_pay_dues_join_the_challenge_and_pick_best_answers_when_the_bot_runs(
    db_url: str,
) -> None:
    sim = Simulation(seed=11, groups=1, members=60, days=4)
    db, engine = _engine(sim, db_url)
    with_bot: list[Any] = []
    original = sim.hours

    def recording() -> Any:
        for hour in original():
            with_bot.extend(hour.events)
            yield hour

    try:
        sim.hours = recording  # type: ignore[method-assign]
        drive(sim, engine)
    finally:
        db.dispose()
    payments = [e for e in with_bot if e.type == "payment"]
    dues = [p for p in payments if "会费" in p.memo or p.memo == "dues"]
    deposits = [p for p in payments if "早起" in p.memo]
    assert len(dues) >= 10 and all(p.amount == 5000 for p in dues)
    assert len(deposits) == len(sim.challengers) >= 1
    rises = [e for e in with_bot if isinstance(e, Message) and "#早起" in e.text]
    assert {e.actor.id for e in rises} <= set(sim.challengers) and len(rises) >= len(sim.challengers)
    picks = [e for e in with_bot if isinstance(e, Message) and e.reply_to and e.text in ("最佳", "best", "采纳")]
    assert picks and all(e.actor.id in sim.staff or e.text == "采纳" for e in picks)

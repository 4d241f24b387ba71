"""How the engine writes: member ids, concurrent writers, planner statistics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from qunyun.core.events import parse_event
from qunyun.testing import Chat

Make = Callable[..., Chat]


def _message(n: int, user: str) -> object:
    return parse_event(
        {
            "v": 1, "id": f"x-{n}", "ts": datetime(2026, 11, 2, 9, n, tzinfo=UTC).isoformat(),
            "platform": "sim", "group": "g-main", "type": "message",
            "actor": {"id": user, "name": user}, "msg_id": f"xm-{n}", "text": "打卡",
        }
    )


def test_new_members_get_distinct_ids_within_and_across_batches(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    for i in range(30):
        chat.say(f"u{i}", "打卡")
    with chat.db.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM members ORDER BY id"))]
        orphans = conn.execute(
            text("SELECT count(*) FROM messages m LEFT JOIN members p ON p.id = m.member_id WHERE p.id IS NULL")
        ).scalar()
    assert len(ids) == len(set(ids)) == 30
    assert orphans == 0
    assert chat.points("u7") == 10


def test_a_member_added_by_another_process_is_picked_up_not_duplicated(make_chat: Make, db_url: str) -> None:
    chat = make_chat({"checkin": {}})
    chat.say("u1", "你好")  # the engine has loaded its member cache
    other = create_engine(db_url)
    with other.begin() as conn:  # another worker meets u9 first
        conn.execute(
            text(
                "INSERT INTO members (community_id, platform, user_id, name, first_seen_at, last_seen_at, erased) "
                "VALUES ('test', 'sim', 'u9', 'u9', :t, :t, false)"
            ),
            {"t": datetime(2026, 11, 2, tzinfo=UTC)},
        )
    other.dispose()
    outcome = chat.send_event(_message(5, "u9"))  # type: ignore[arg-type]
    assert outcome.status == "handled"
    assert chat.scalar("SELECT count(*) FROM members WHERE user_id = 'u9'") == 1
    assert chat.points("u9") == 10


def test_postgresql_statistics_are_refreshed_as_the_tables_grow(make_chat: Make, db_url: str) -> None:
    chat = make_chat({"checkin": {}})
    chat.engine._analyze_at = 3  # the first refresh after 3 events (10,000 by default)
    for i in range(4):
        chat.say(f"u{i}", "打卡")
    analysed = chat.scalar(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'events' AND schemaname = current_schema() "
        "AND last_analyze IS NOT NULL"
    ) if not db_url.startswith("sqlite") else None
    if db_url.startswith("sqlite"):
        assert chat.engine._written == 0  # nothing to do on SQLite
    else:
        assert analysed == 1
        assert chat.engine._analyze_at >= 6  # next refresh when the count has doubled

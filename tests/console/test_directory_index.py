"""The member directory's search table (``member_directory``): built on first use, kept current, erased with the member.

Expected values are read with SQL of the test's own from the source tables
(members, profile and levels state, ledger, member_groups), never from the
directory code.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from qunyun.config.model import load_settings
from qunyun.console import directory
from qunyun.core.clock import FakeClock
from qunyun.core.events import parse_event
from qunyun.engine.engine import Engine
from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of
from tests.console.test_members import PRIVATE, _engine_of, _ids_on, _total_on


def _sql(site: Site, sql: str, **params: Any) -> list[Any]:
    engine = open_engine(site.db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _rows(site: Site) -> dict[int, dict[str, Any]]:
    rows = _sql(site, "SELECT member_id, view, search, viewer_len, tags, level, points, messages, epoch "
                      "FROM member_directory WHERE community_id = 'demo'")
    return {int(r[0]): {"view": r[1], "search": r[2], "viewer_len": r[3], "tags": r[4], "level": r[5],
                        "points": r[6], "messages": r[7], "epoch": r[8]} for r in rows}


def _meta(site: Site) -> Any:
    return _sql(site, "SELECT epoch, refreshed_rows, built_at, refreshed_at FROM member_directory_state "
                      "WHERE community_id = 'demo'")[0]


def _say(site: Site, uid: str, name: str, words: str, n: int, minutes: int = 0) -> None:
    """A message from the chat, handled by an engine of its own (another process, as in production)."""
    last = _sql(site, "SELECT max(ts) FROM events")[0][0]
    last = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
    when = (last if last.tzinfo else last.replace(tzinfo=UTC)) + timedelta(minutes=minutes + n)
    engine = Engine(open_engine(site.db_url), load_settings(str(site.config)), clock=FakeClock(when))
    outcome = engine.handle(parse_event({
        "v": 1, "id": f"dir-{n}", "ts": when.isoformat(), "platform": "sim", "group": "g-main", "type": "message",
        "actor": {"id": uid, "name": name}, "msg_id": f"dir-m{n}", "text": words, "content_type": "text"}))
    assert outcome.status == "handled", outcome
    engine.db.dispose()


# ---------------------------------------------------------------- building


def test_first_search_builds_one_row_per_member_with_the_source_values(demo_site: Site) -> None:
    page = demo_site.client("adam").get("/c/demo/members")
    assert page.status_code == 200
    rows = _rows(demo_site)
    members = {int(mid): uid for mid, uid in _sql(
        demo_site, "SELECT id, user_id FROM members WHERE community_id = 'demo' AND erased = :f", f=False)}
    assert set(rows) == set(members) and len(rows) > 100
    points = {int(mid): int(b) for mid, b in _sql(demo_site, """SELECT member_id, sum(balance) FROM ledger_accounts
        WHERE community_id = 'demo' AND currency = 'POINTS' AND member_id IS NOT NULL GROUP BY member_id""")}
    messages = {int(mid): int(n) for mid, n in _sql(
        demo_site, "SELECT member_id, sum(messages) FROM member_groups WHERE community_id = 'demo' GROUP BY member_id")}
    levels = {key[2:]: json.loads(v).get("level", 0) for key, v in _sql(
        demo_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'levels'")}
    for mid, uid in members.items():
        row = rows[mid]
        assert row["points"] == points.get(mid, 0), mid
        assert row["messages"] == messages.get(mid, 0), mid
        assert row["level"] == levels.get(uid, 0), mid
    assert any(r["points"] for r in rows.values()) and any(r["level"] for r in rows.values())
    # the profiles' tags, and a viewer's part of the text is a prefix holding no private field
    profiles = {key[2:]: json.loads(v) for key, v in _sql(
        demo_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'profile'")}
    by_uid = {uid: mid for mid, uid in members.items()}
    checked = 0
    for uid, prof in profiles.items():
        if uid not in by_uid:
            continue
        row = rows[by_uid[uid]]
        for tag in prof.get("tags", []):
            assert f"|{tag}|" in row["tags"]
        fields = prof.get("fields", {})
        public = " ".join(v.casefold() for k, v in fields.items() if k not in PRIVATE)
        for fid in PRIVATE & set(fields):
            value = fields[fid].casefold()
            if row["view"] == 1 and value not in public:
                assert value in row["search"]
                assert value not in row["search"][: row["viewer_len"]]
                checked += 1
    assert checked, "no private field to check"
    epoch, refreshed, built, _ = _meta(demo_site)
    assert refreshed == len(members) and built is not None
    assert epoch == _sql(demo_site, "SELECT epoch FROM communities WHERE id = 'demo'")[0][0]


def test_an_unchanged_epoch_costs_one_check_and_concurrent_requests_build_once(fresh_site: Site) -> None:
    app = fresh_site.app()
    state = app.state.console
    community = state.settings.communities["demo"]
    outcomes: list[str] = []

    def go() -> None:
        outcomes.append(directory.ensure(state.db, state.engine.db, community, state.clock).action)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["built", "current", "current"]
    assert directory.ensure(state.db, state.engine.db, community, state.clock).action == "current"
    # "full" builds again whatever the marks say
    again = directory.ensure(state.db, state.engine.db, community, state.clock, full=True)
    assert again.action == "built" and again.rows == len(_rows(fresh_site))


# ---------------------------------------------------------------- refreshing


def test_a_profile_change_shows_at_once_and_refreshes_only_that_member(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    adam.get("/c/demo/members")
    before = len(_rows(fresh_site))
    uid, mid = _sql(fresh_site, """SELECT m.user_id, m.id FROM members m JOIN playbook_state p
        ON p.community_id = 'demo' AND p.playbook = 'profile' AND p.key = 'm:' || m.user_id
        WHERE m.community_id = 'demo' ORDER BY m.id LIMIT 1""")[0]
    assert _total_on(adam.get("/c/demo/members", params={"city": "乌鲁木齐"}).text) == 0
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "fields": {"city": "乌鲁木齐"}}, actor="test")
    found = adam.get("/c/demo/members", params={"city": "乌鲁木齐"})
    assert _ids_on(found.text) == [int(mid)]
    assert _ids_on(adam.get("/c/demo/members", params={"q": "乌鲁木齐"}).text) == [int(mid)]
    _, refreshed, _, _ = _meta(fresh_site)
    assert 1 <= refreshed < before / 4  # incremental: not a full build
    # the viewer's directory follows the member's own sharing level
    vera = fresh_site.client("vera")
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "sharing": "admins"}, actor="test")
    assert f'data-member-id="{mid}"' not in vera.get("/c/demo/members", params={"city": "乌鲁木齐"}).text
    assert _total_on(vera.get("/c/demo/members", params={"city": "乌鲁木齐"}).text) == 0
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "sharing": "open"}, actor="test")
    assert _ids_on(vera.get("/c/demo/members", params={"city": "乌鲁木齐"}).text) == [int(mid)]


def test_new_messages_from_another_process_update_names_counts_and_new_members(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    adam.get("/c/demo/members")
    uid, mid, name = _sql(fresh_site, "SELECT user_id, id, name FROM members WHERE community_id = 'demo' "
                                      "AND erased = :f ORDER BY id DESC LIMIT 1", f=False)[0]
    count_before = _rows(fresh_site)[int(mid)]["messages"]
    _say(fresh_site, uid, "Zebulon Quux", "hello again", 1)
    _say(fresh_site, "u-newcomer", "Xanthippe Newcomer", "hi all", 2)
    rows = _rows(fresh_site)
    assert "zebulon" not in rows[int(mid)]["search"]  # nothing happens until the directory is asked
    page = adam.get("/c/demo/members", params={"q": "zebulon", "lang": "en"})
    assert _ids_on(page.text) == [int(mid)]
    assert _total_on(adam.get("/c/demo/members", params={"q": name}).text) == len([
        1 for (n,) in _sql(fresh_site, "SELECT name FROM members WHERE community_id = 'demo' AND erased = :f",
                           f=False) if name.casefold() in (n or "").casefold()])
    new_id = _sql(fresh_site, "SELECT id FROM members WHERE user_id = 'u-newcomer'")[0][0]
    assert _ids_on(adam.get("/c/demo/members", params={"q": "xanthippe"}).text) == [int(new_id)]
    rows = _rows(fresh_site)
    want = _sql(fresh_site, "SELECT sum(messages) FROM member_groups WHERE member_id = :m", m=mid)[0][0]
    assert rows[int(mid)]["messages"] == want and want > count_before
    # the latest speaker leads the default sort (last seen, newest first)
    assert _ids_on(adam.get("/c/demo/members").text)[0] == int(new_id)
    assert len(rows) == _sql(fresh_site, "SELECT count(*) FROM members WHERE community_id = 'demo' "
                                         "AND erased = :f", f=False)[0][0]


def test_a_settings_change_builds_the_directory_again(fresh_site: Site) -> None:
    import yaml

    vera = fresh_site.client("vera")
    hidden = _total_on(vera.get("/c/demo/members", params={"sort": "name"}).text)
    named_before = vera.get("/c/demo/members").text.count("data-member-id=")
    config = yaml.safe_load(fresh_site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo.setdefault("playbooks", {})
    demo["playbooks"]["profile"] = {**(demo["playbooks"].get("profile") or {}), "sharing": "open"}
    fresh_site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    page = fresh_site.client("vera").get("/c/demo/members")
    # every profile is open now: more rows, every one with its name and link
    assert _total_on(page.text) >= hidden
    assert page.text.count("data-member-id=") > named_before
    assert {r["view"] for r in _rows(fresh_site).values()} <= {0, 2}
    assert _meta(fresh_site)[1] == len(_rows(fresh_site))  # a full build


# ------------------------------------------------------------------ privacy


def test_erasing_a_member_deletes_the_row_in_the_same_transaction(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    adam.get("/c/demo/members")
    uid, mid, name = _sql(fresh_site, """SELECT m.user_id, m.id, m.name FROM members m
        JOIN playbook_state p ON p.community_id = 'demo' AND p.playbook = 'profile' AND p.key = 'm:' || m.user_id
        WHERE m.community_id = 'demo' AND length(m.name) >= 2 ORDER BY m.id LIMIT 1""")[0]
    assert int(mid) in _rows(fresh_site)
    failed = _engine_of(adam).erase_member("demo", "sim", uid)
    assert failed == []
    # no console request in between: the engine's transaction took the row
    assert int(mid) not in _rows(fresh_site)
    leaks = _sql(fresh_site, "SELECT member_id FROM member_directory WHERE search LIKE :n OR tags LIKE :n",
                 n=f"%{name.casefold()}%")
    assert [r for r in leaks if r[0] == mid] == []
    # and the next search does not bring it back
    assert adam.get("/c/demo/members", params={"q": uid}).status_code == 200
    assert int(mid) not in _rows(fresh_site)
    assert len(_rows(fresh_site)) == _sql(fresh_site, "SELECT count(*) FROM members WHERE community_id = 'demo' "
                                                      "AND erased = :f", f=False)[0][0]
    # the console's erase button goes the same way
    other = _sql(fresh_site, "SELECT id FROM members WHERE community_id = 'demo' AND erased = :f "
                             "ORDER BY id DESC LIMIT 1", f=False)[0][0]
    done = adam.post(f"/c/demo/members/{other}/erase", data={"csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert done.status_code == 303 and int(other) not in _rows(fresh_site)


def test_merging_two_members_rebuilds_the_merged_row(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    adam.get("/c/demo/members")
    (a_uid, a_id), (b_uid, b_id) = [(u, int(i)) for u, i in _sql(
        fresh_site, "SELECT user_id, id FROM members WHERE community_id = 'demo' AND erased = :f "
                    "ORDER BY id LIMIT 2", f=False)]
    points = {int(m): int(b) for m, b in _sql(fresh_site, "SELECT member_id, sum(balance) FROM ledger_accounts "
                                                          "WHERE currency = 'POINTS' AND member_id IN (:a, :b) "
                                                          "GROUP BY member_id", a=a_id, b=b_id)}
    result = _engine_of(adam).command("demo", "members", "link", {"into": f"sim:{a_uid}", "other": f"sim:{b_uid}"},
                                      actor="test")
    assert result["merged"] is True
    assert _sql(fresh_site, "SELECT count(*) FROM members WHERE id = :b", b=b_id)[0][0] == 0
    assert a_id not in _rows(fresh_site) and b_id not in _rows(fresh_site)
    page = adam.get("/c/demo/members", params={"sort": "points", "dir": "desc"})
    assert page.status_code == 200
    rows = _rows(fresh_site)
    assert a_id in rows and b_id not in rows
    assert rows[a_id]["points"] == points.get(a_id, 0) + points.get(b_id, 0)

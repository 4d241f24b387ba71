"""The moderation log page and its API, checked against the records and actions tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from qunyun.console.pages.moderation import KINDS
from qunyun.store.db import open_engine
from tests.console.conftest import Site, sql

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(1)</script>'


def _utc(site: Site, when: datetime) -> Any:
    """A UTC instant as the backend stores it (SQLite: naive text; PostgreSQL: timestamptz)."""
    return when.strftime("%Y-%m-%d %H:%M:%S") if site.backend == "sqlite" else when.replace(tzinfo=UTC)


def _kinds_sql() -> str:
    return " OR ".join(f"(playbook = '{p}' AND kind = '{k}')" for p, k in KINDS)


def _total(html: str) -> int:
    found = re.search(r"(?:Page|第) \d+(?: of |/)\d+ ?页? · (?:共 )?([\d,]+)", html)
    assert found, "no pager on the page"
    return int(found.group(1).replace(",", ""))


def _record_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-testid="moderation-row" data-record="(\d+)"', html)]


def test_log_shows_the_records_newest_first(demo_site: Site) -> None:
    client = demo_site.client("vera")
    page = client.get("/c/demo/moderation?lang=en")
    assert page.status_code == 200
    expected = sql(demo_site, f"SELECT id FROM records WHERE community_id = 'demo' AND ({_kinds_sql()}) "
                               "ORDER BY ts DESC, id DESC")
    assert len(expected) > 50, "the demo should moderate more than a page's worth"
    assert _total(page.text) == len(expected)
    assert _record_ids(page.text) == [r.id for r in expected[:50]]
    assert "Moderation log" in page.text
    # zh-CN
    zh = client.get("/c/demo/moderation?lang=zh-CN")
    assert "管理记录" in zh.text and _total(zh.text) == len(expected)


def test_sorting_and_paging(demo_site: Site) -> None:
    client = demo_site.client("vera")
    expected = sql(demo_site, f"SELECT id FROM records WHERE community_id = 'demo' AND ({_kinds_sql()}) "
                               "ORDER BY ts ASC, id ASC")
    first = client.get("/c/demo/moderation?sort=ts&dir=asc")
    assert _record_ids(first.text) == [r.id for r in expected[:50]]
    second = client.get("/c/demo/moderation?sort=ts&dir=asc&page=2")
    assert _record_ids(second.text) == [r.id for r in expected[50:100]]
    by_kind = client.get("/c/demo/moderation?sort=kind&dir=asc")
    ids_by_kind = sql(demo_site, f"SELECT id FROM records WHERE community_id = 'demo' AND ({_kinds_sql()}) "
                                  "ORDER BY kind ASC, id ASC LIMIT 50")
    assert _record_ids(by_kind.text) == [r.id for r in ids_by_kind]


def test_filters(demo_site: Site) -> None:
    client = demo_site.client("vera")
    strikes = sql(demo_site, "SELECT id, member, group_key FROM records WHERE community_id = 'demo' "
                              "AND playbook = 'hours' AND kind = 'strike' ORDER BY ts DESC, id DESC")
    assert strikes, "the demo has quiet-hours strikes"
    page = client.get("/c/demo/moderation?kind=hours.strike&lang=en")
    assert _total(page.text) == len(strikes)
    assert _record_ids(page.text) == [r.id for r in strikes[:50]]
    assert page.text.count("Quiet-hours strike") >= min(len(strikes), 50)
    # by member (user id)
    member = strikes[0].member
    mine = sql(demo_site, f"SELECT id FROM records WHERE community_id = 'demo' AND member = :m AND ({_kinds_sql()}) "
                           "ORDER BY ts DESC, id DESC", m=member)
    assert _record_ids(client.get(f"/c/demo/moderation?member={member}").text) == [r.id for r in mine]
    # by part of the name
    name = sql(demo_site, "SELECT name FROM members WHERE community_id = 'demo' AND user_id = :m", m=member)[0].name
    assert set(_record_ids(client.get("/c/demo/moderation", params={"member": name}).text)) >= {r.id for r in mine}
    # by group and date (local days)
    hits = sql(demo_site, "SELECT id, ts FROM records WHERE community_id = 'demo' AND group_key = 'g-main' "
                           f"AND ({_kinds_sql()}) ORDER BY ts DESC, id DESC")
    assert _total(client.get("/c/demo/moderation?group=g-main").text) == len(hits)
    day = "2026-11-10"
    on_day = sql(demo_site, f"SELECT id FROM records WHERE community_id = 'demo' AND ({_kinds_sql()}) "
                             "AND ts >= :a AND ts < :b ORDER BY ts DESC, id DESC",
                  a=_utc(demo_site, datetime(2026, 11, 9, 16)), b=_utc(demo_site, datetime(2026, 11, 10, 16)))
    shown = client.get(f"/c/demo/moderation?since={day}&until={day}")
    assert _record_ids(shown.text) == [r.id for r in on_day[:50]]
    empty = client.get("/c/demo/moderation?member=nobody-at-all&lang=en")
    assert 'data-testid="moderation-empty"' in empty.text


def test_rows_show_the_actions_taken(demo_site: Site) -> None:
    removed = sql(demo_site, "SELECT id, cause, member FROM records WHERE community_id = 'demo' "
                              "AND playbook = 'moderation' AND kind = 'hit' ORDER BY id")
    assert removed
    client = demo_site.client("vera")
    page = client.get("/c/demo/moderation?kind=moderation.hit&lang=en")
    for rec in removed:
        types = {r.type for r in sql(demo_site, "SELECT type FROM actions WHERE cause = :c AND playbook = 'moderation'",
                                      c=rec.cause)}
        row = re.search(rf'data-record="{rec.id}">(.*?)</tr>', page.text, re.S)
        assert row
        if "delete" in types:
            assert "delete message" in row.group(1)
        if "remove" in types:
            assert ">remove<" in row.group(1)


def test_other_community_and_signed_out(demo_site: Site) -> None:
    assert demo_site.client("otto").get("/c/demo/moderation").status_code == 404
    assert demo_site.client("otto").get("/api/v1/communities/demo/moderation").status_code == 404
    assert demo_site.client().get("/c/demo/moderation", follow_redirects=False).status_code == 303


def test_names_are_escaped(demo_site: Site) -> None:
    rec = sql(demo_site, "SELECT member FROM records WHERE community_id = 'demo' AND playbook = 'hours' "
                          "AND kind = 'strike' ORDER BY ts DESC LIMIT 1")[0]
    old = sql(demo_site, "SELECT name FROM members WHERE community_id = 'demo' AND user_id = :m", m=rec.member)[0].name
    engine = open_engine(demo_site.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :m"),
                         {"n": HOSTILE, "m": rec.member})
        page = demo_site.client("vera").get(f"/c/demo/moderation?member={rec.member}")
        assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        api = demo_site.client("vera").get(f"/api/v1/communities/demo/moderation?member={rec.member}").json()
        assert api["data"]["entries"][0]["name"] == HOSTILE
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :m"),
                         {"n": old, "m": rec.member})
        engine.dispose()


def test_api(demo_site: Site) -> None:
    client = demo_site.client("vera")
    strikes = sql(demo_site, "SELECT id FROM records WHERE community_id = 'demo' AND playbook = 'hours' "
                              "AND kind = 'strike' ORDER BY ts DESC, id DESC")
    answer = client.get("/api/v1/communities/demo/moderation?kind=hours.strike&per_page=5&page=2").json()
    assert answer["ok"] is True
    assert answer["data"]["total"] == len(strikes)
    assert [e["id"] for e in answer["data"]["entries"]] == [r.id for r in strikes[5:10]]
    assert all(e["kind"] == "strike" and e["playbook"] == "hours" for e in answer["data"]["entries"])
    bad = client.get("/api/v1/communities/demo/moderation?kind=nope")
    assert bad.status_code == 422 and bad.json()["ok"] is False and bad.json()["code"] == "invalid_request"
    assert client.get("/api/v1/communities/demo/moderation?per_page=0").status_code == 422
    assert client.get("/api/v1/communities/demo/moderation?since=not-a-day").status_code == 422

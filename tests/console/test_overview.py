"""The overview page, its fragments (health, charts) and GET /api/v1/communities/{c}/overview.

Numbers are checked against the database read here with SQL of the test's
own (rollups, not the aggregates the page reads) or the analytics module.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from qunyun.analytics import lifecycle as lc
from qunyun.analytics import metrics as mx
from qunyun.console.pages import overview as ov
from qunyun.store.db import open_engine
from tests.console.conftest import Site

HOSTILE = "<script>alert(1)</script>"
HOSTILE2 = '"><img src=x onerror=alert(1)>'


def _as_date(v: object) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def truth(site: Site, community: str = "demo") -> dict[str, object]:
    """The overview's headline numbers, computed independently from the rollups."""
    engine = open_engine(site.db_url)
    try:
        with engine.connect() as conn:
            as_of = _as_date(conn.execute(
                text("SELECT max(day) FROM rollups WHERE community_id = :c"), {"c": community}).scalar())

            def bind(d: date) -> object:
                return d.isoformat() if conn.dialect.name == "sqlite" else d

            def window(start: date, end: date) -> tuple[int, int]:
                row = conn.execute(text(
                    "SELECT count(DISTINCT CASE WHEN messages > 0 THEN member_id END), sum(messages) FROM rollups "
                    "WHERE community_id = :c AND day >= :s AND day <= :e"), {"c": community, "s": bind(start),
                                                                            "e": bind(end)}).one()
                return int(row[0] or 0), int(row[1] or 0)

            sp7, msg7 = window(as_of - timedelta(days=6), as_of)
            sp_prev, msg_prev = window(as_of - timedelta(days=13), as_of - timedelta(days=7))
            sp30, _ = window(as_of - timedelta(days=29), as_of)
            sc = mx.scope(conn, community)
            counter = mx.member_counter(conn, sc, as_of)  # the metrics' own path (scans the rollups)
            states = lc.group_states(conn, community, as_of)
            groups = conn.execute(text("SELECT count(*) FROM groups WHERE community_id = :c"),
                                  {"c": community}).scalar()
        return {"as_of": as_of, "speakers_7d": sp7, "messages_7d": msg7, "speakers_prev": sp_prev,
                "messages_prev": msg_prev, "speakers_30d": sp30, "members": counter.at(as_of),
                "members_prev": counter.at(as_of - timedelta(days=7)), "states": states, "groups": groups}
    finally:
        engine.dispose()


def stat(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="stat-{testid}"><div class="label">[^<]*</div><div class="value">([^<]*)</div>',
                      html)
    assert found, f"no stat {testid}"
    return found.group(1)


def test_overview_numbers_are_the_communitys(demo_site: Site) -> None:
    want = truth(demo_site)
    page = demo_site.client("vera").get("/c/demo/overview?lang=en")
    assert page.status_code == 200
    html = page.text
    assert f"Data up to {want['as_of']}" in html
    assert stat(html, "members") == f"{want['members']:,}"
    assert stat(html, "speakers-7d") == f"{want['speakers_7d']:,}"
    assert stat(html, "speakers-30d") == f"{want['speakers_30d']:,}"
    assert stat(html, "messages-7d") == f"{want['messages_7d']:,}"
    assert stat(html, "groups") == str(want["groups"])
    ratio = want["speakers_7d"] / want["members"]  # type: ignore[operator]
    assert stat(html, "active-ratio") == f"{ratio * 100:.1f}%"
    # the trend of messages against the 7 days before, as a percentage with its arrow
    change = (want["messages_7d"] - want["messages_prev"]) / want["messages_prev"]  # type: ignore[operator]
    arrow = "▲" if change > 0 else "▼"
    assert f"{arrow} {abs(change) * 100:.0f}%" in html.split('data-testid="stat-messages-7d"')[1].split("</div></div>")[0]
    # the charts load lazily, one fragment each
    for name in ov.CHARTS:
        assert f'hx-get="/c/demo/overview/chart/{name}?lang=en"' in html


def test_overview_api_matches_the_page(demo_site: Site) -> None:
    want = truth(demo_site)
    answer = demo_site.client("vera").get("/api/v1/communities/demo/overview")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    data = body["data"]
    assert data["as_of"] == want["as_of"].isoformat()  # type: ignore[attr-defined]
    assert data["last_7_days"]["members"] == want["members"]
    assert data["last_7_days"]["speakers"] == want["speakers_7d"]
    assert data["last_7_days"]["messages"] == want["messages_7d"]
    assert data["previous_7_days"]["speakers"] == want["speakers_prev"]
    assert data["previous_7_days"]["members"] == want["members_prev"]
    assert data["speakers_30_days"] == want["speakers_30d"]
    states: dict[str, int] = dict.fromkeys(lc.STATES, 0)
    for s in want["states"]:  # type: ignore[attr-defined]
        states[s.state] += 1
    assert data["states"] == states
    assert data["survival"]["base_alive_at_7"] == pytest.approx(0.6)
    assert data["survival"]["base_alive_at_30"] == pytest.approx(0.3)
    assert all(set(a["text"]) == {"en", "zh-CN"} for a in data["alerts"])


def test_health_fragment_counts_groups_by_state(demo_site: Site) -> None:
    want = truth(demo_site)
    client = demo_site.client("vera")
    html = client.get("/c/demo/overview/health?lang=en").text
    for state in lc.STATES:
        n = sum(1 for s in want["states"] if s.state == state)  # type: ignore[attr-defined]
        assert f'data-testid="state-{state}">{state} {n}</span>' in html
    assert 'data-testid="survival-7"' in html
    # once computed, the overview renders the health section inline instead of loading it
    page = client.get("/c/demo/overview?lang=en").text
    assert 'data-testid="overview-health"' in page and "overview-health-loading" not in page


def test_both_languages(demo_site: Site) -> None:
    client = demo_site.client("vera")
    zh = client.get("/c/demo/overview?lang=zh-CN").text
    en = client.get("/c/demo/overview?lang=en").text
    assert '<html lang="zh-CN">' in zh and "发言人数（7 天）" in zh and "数据截至" in zh
    assert '<html lang="en">' in en and "Speakers (7 days)" in en and "发言人数（7 天）" not in en
    assert "存活率与行业基准" in client.get("/c/demo/overview/health?lang=zh-CN").text


@pytest.mark.parametrize("name", ov.CHARTS)
def test_each_chart_is_inline_svg(demo_site: Site, name: str) -> None:
    answer = demo_site.client("vera").get(f"/c/demo/overview/chart/{name}?lang=en")
    assert answer.status_code == 200
    assert f'data-testid="chart-svg-{name}"' in answer.text and "<svg" in answer.text
    assert "<script" not in answer.text


def test_unknown_chart_and_other_community(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    assert vera.get("/c/demo/overview/chart/nope").status_code == 404
    otto = demo_site.client("otto")
    for path in ("/c/demo/overview", "/c/demo/overview/health", "/c/demo/overview/chart/activity"):
        assert otto.get(path).status_code == 404
    api = otto.get("/api/v1/communities/demo/overview")
    assert api.status_code == 404 and api.json()["ok"] is False and api.json()["code"] == "not_found"
    # otto's own community has no activity yet: the page says so, the API answers with nothing
    own = otto.get("/c/other/overview?lang=en")
    assert own.status_code == 200 and 'data-testid="overview-empty"' in own.text
    assert "No activity yet" in otto.get("/c/other/overview/chart/top?lang=en").text
    data = otto.get("/api/v1/communities/other/overview").json()["data"]
    assert data["as_of"] is None and data["last_7_days"] is None and data["alerts"] == []


def test_signed_out_is_sent_to_sign_in(demo_site: Site) -> None:
    answer = demo_site.client().get("/c/demo/overview", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert demo_site.client().get("/api/v1/communities/demo/overview").status_code == 401


# ---------------------------------------------------------------- alerts


def _head(idle: int = 0) -> ov.Headline:
    return ov.Headline("c", date(2026, 3, 1), date(2025, 1, 1), 5, idle_days=idle)


def _life(key: str, state: str, members: int = 10, last: date | None = date(2026, 2, 20)) -> lc.GroupLife:
    return lc.GroupLife(key, f"name {key}", 90, state, last, members)  # type: ignore[arg-type]


def _drift(**kw: object) -> ov.Drift:
    base: dict[str, object] = {"top10_now": 0.5, "top10_before": 0.5, "speakers_now": 100, "speakers_before": 100,
                               "members_now": 200, "members_before": 200, "activation_now": 0.6,
                               "activation_before": 0.6, "joined_now": 30, "joined_before": 30}
    base.update(kw)
    return ov.Drift(**base)  # type: ignore[arg-type]


def kinds(alerts: list[ov.Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_alerts_dying_and_young_groups() -> None:
    states = [_life("a", "alive"), _life("s", "silent"), _life("d", "declining"), _life("x", "dead")]
    risks = [lc.Risk("y", 12, 0.8, ["low_active_ratio"], None),  # type: ignore[arg-type]
             lc.Risk("a", 40, 0.3, [], None)]  # type: ignore[arg-type]
    found = ov.alerts(_head(), [*states, _life("y", "alive")], risks, None, None)
    assert kinds(found) == ["group_silent", "group_declining", "group_risk"]
    silent = found[0]
    assert silent.group == "s" and silent.level == "bad" and silent.values["days"] == 9
    assert "too few members spoke in the first week" in ov.alert_text(found[2], "en")
    assert "第一周开口说话的人太少" in ov.alert_text(found[2], "zh-CN")
    assert kinds(ov.alerts(_head(idle=5), [], [], None, None)) == ["quiet"]
    assert kinds(ov.alerts(_head(idle=1), [], [], None, None)) == []


def test_alerts_cap_group_lists() -> None:
    many = [_life(f"g{i:03d}", "silent") for i in range(ov.MAX_GROUP_ALERTS + 4)]
    found = ov.alerts(_head(), many, [], None, None)
    assert kinds(found).count("group_silent") == ov.MAX_GROUP_ALERTS
    assert found[-1].kind == "more_groups" and found[-1].values["count"] == 4


def test_drift_rule_thresholds() -> None:
    assert kinds(ov.alerts(_head(), [], [], _drift(), None)) == []
    rising = _drift(top10_now=0.56, top10_before=0.50)
    assert kinds(ov.alerts(_head(), [], [], rising, None)) == ["concentration"]
    assert kinds(ov.alerts(_head(), [], [], _drift(top10_now=0.54), None)) == []
    # too few speakers to say anything
    assert kinds(ov.alerts(_head(), [], [], _drift(top10_now=0.7, speakers_before=10), None)) == []
    # lurkers: 1 - speakers/members went from 50% to 60%
    quiet = _drift(speakers_now=80)
    assert quiet.lurkers_now == pytest.approx(0.6) and quiet.lurkers_before == pytest.approx(0.5)
    assert kinds(ov.alerts(_head(), [], [], quiet, None)) == ["lurkers"]
    shy = _drift(activation_now=0.45)
    assert kinds(ov.alerts(_head(), [], [], shy, None)) == ["activation"]
    assert kinds(ov.alerts(_head(), [], [], _drift(activation_now=0.45, joined_now=5), None)) == []
    text = ov.alert_text(ov.alerts(_head(), [], [], rising, None)[0], "en")
    assert "56%" in text and "50%" in text


def test_survival_against_base_rates() -> None:
    low = lc.Survival(list(range(31)), [1.0] * 31, 0.5, 0.2, 12)
    assert kinds(ov.alerts(_head(), [], [], None, low)) == ["survival_7", "survival_30"]
    assert kinds(ov.alerts(_head(), [], [], None, lc.Survival([], [], 0.5, 0.2, 5))) == []
    assert kinds(ov.alerts(_head(), [], [], None, lc.Survival([], [], 0.7, 0.4, 12))) == []


# --------------------------------------------------- hostile names, silent group


def add_silent_group(site: Site, name: str) -> str:
    """A group whose last message was 10 days before the community's last day (silent), named ``name``."""
    engine = open_engine(site.db_url)
    try:
        with engine.begin() as conn:
            as_of = _as_date(conn.execute(text("SELECT max(day) FROM group_days WHERE community_id = 'demo'")).scalar())
            created = conn.execute(text("SELECT min(created_at) FROM groups WHERE community_id = 'demo'")).scalar()
            conn.execute(text("INSERT INTO groups (community_id, platform, key, name, capacity, created_at) "
                              "VALUES ('demo', 'sim', 'g-quiet', :n, 500, :c)"), {"n": name, "c": created})
            gid = conn.execute(text("SELECT id FROM groups WHERE key = 'g-quiet'")).scalar()
            for back in (20, 15, 10):
                d = as_of - timedelta(days=back)
                conn.execute(text("INSERT INTO group_days (group_id, day, community_id, messages, speakers, joins, "
                                  "leaves, checkins) VALUES (:g, :d, 'demo', 5, 2, 0, 0, 0)"),
                             {"g": gid, "d": d.isoformat() if conn.dialect.name == "sqlite" else d})
    finally:
        engine.dispose()
    return "g-quiet"


def rename_top_member(site: Site, name: str) -> str:
    engine = open_engine(site.db_url)
    try:
        with engine.begin() as conn:
            mid, uid = conn.execute(text(
                "SELECT m.id, m.user_id FROM member_groups mg JOIN members m ON m.id = mg.member_id "
                "WHERE mg.community_id = 'demo' GROUP BY m.id, m.user_id ORDER BY sum(mg.messages) DESC, m.id LIMIT 1"
            )).one()
            conn.execute(text("UPDATE members SET name = :n WHERE id = :i"), {"n": name, "i": mid})
    finally:
        engine.dispose()
    return str(uid)


def test_silent_group_alert_and_hostile_names_are_escaped(fresh_site: Site) -> None:
    key = add_silent_group(fresh_site, HOSTILE)
    rename_top_member(fresh_site, HOSTILE2)
    client = fresh_site.client("vera")
    health = client.get("/c/demo/overview/health?lang=en").text
    assert 'data-kind="group_silent"' in health
    assert f'href="/c/demo/groups/{key}"' in health
    assert HOSTILE not in health and "&lt;script&gt;alert(1)&lt;/script&gt;" in health
    assert "no message for 10 days" in health
    top = client.get("/c/demo/overview/chart/top?lang=en").text
    assert "<img src=x" not in top and "&lt;img src=x onerror=alert(1)&gt;" in top
    data = client.get("/api/v1/communities/demo/overview").json()["data"]
    silent = [a for a in data["alerts"] if a["kind"] == "group_silent"]
    assert silent and silent[0]["group"] == key and silent[0]["values"]["group"] == HOSTILE
    assert data["states"]["silent"] == 1

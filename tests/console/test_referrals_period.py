"""The referrals board opens on data: on a community whose referrals ended weeks ago (a replay, an
import), the board of the current day, week or month falls back to the latest period with referrals
and says so; inside a period with referrals it opens on it and says nothing; a day asked for
(``?day=``) is shown as asked, even empty. Both databases."""

from __future__ import annotations

import html
import json
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from qunyun.console.app import create_app
from qunyun.core.clock import FakeClock
from qunyun.playbooks.qa import iso_week
from tests.console.conftest import Site, login, sql

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the demo community's time zone
SAID = {
    "day": "No referrals today; showing {label}, the latest day with referrals",
    "week": "No referrals this week; showing {label}, the latest week with referrals",
    "month": "No referrals this month; showing {label}, the latest month with referrals",
}
SAID_ZH = {
    "day": "今日暂无邀请，显示有邀请的最近一天 {label}",
    "week": "本周暂无邀请，显示有邀请的最近一周 {label}",
    "month": "本月暂无邀请，显示有邀请的最近一个月 {label}",
}


def _client_at(site: Site, day: date, user: str = "vera") -> TestClient:
    """A console whose clock stands at noon (Shanghai) of ``day``, signed in as ``user``."""
    when = datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)
    client = TestClient(create_app(site.config, site.db_url, clock=FakeClock(when)), base_url="http://127.0.0.1")
    login(client, user)
    return client


def _referral_days(site: Site) -> list[tuple[str, date]]:
    """(inviter, local day of the join) of every attributed join, read from the playbook's state."""
    out = []
    for key, value in sql(site, "SELECT key, value FROM playbook_state "
                                "WHERE community_id = 'demo' AND playbook = 'referrals'"):
        st = value if isinstance(value, dict) else json.loads(value)
        if key.startswith("m:") and isinstance(st, dict) and isinstance(st.get("by"), str):
            out.append((st["by"], date.fromisoformat(st["day"])))
    assert out, "the demo has no referrals: nothing to fall back to"
    return out


def _label(day: date, period: str) -> str:
    return {"day": day.isoformat(), "week": iso_week(day), "month": day.isoformat()[:7]}[period]


def _inviters_in(site: Site, label: str, period: str) -> int:
    """How many inviters the board of ``label`` has (one row each), counted here from every join."""
    return len({by for by, day in _referral_days(site) if _label(day, period) == label})


def _shown_label(page: str) -> str:
    found = re.search(r"<h2>[^<]*· ([^<]+)</h2>", page)
    assert found, "no board heading on the page"
    return found.group(1).strip()


def _fallback(page: str) -> str | None:
    found = re.search(r'data-testid="referrals-fallback">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def _day_box(page: str) -> str:
    found = re.search(r'name="day" value="([^"]*)"', page)
    assert found, "no day box on the page"
    return found.group(1)


def test_the_board_falls_back_to_the_latest_period_with_referrals(demo_site: Site) -> None:
    latest = max(day for _, day in _referral_days(demo_site))
    later = latest + timedelta(days=75)
    client = _client_at(demo_site, later)
    for period in ("day", "week", "month"):
        expected = _label(latest, period)
        assert expected != _label(later, period)  # the period by the clock is empty
        page = client.get(f"/c/demo/referrals?period={period}&lang=en")
        assert page.status_code == 200
        assert _shown_label(page.text) == expected
        assert page.text.count('data-testid="board-row"') == _inviters_in(demo_site, expected, period) > 0
        assert 'data-testid="board-empty"' not in page.text
        assert _fallback(page.text) == SAID[period].format(label=expected)
        assert _day_box(page.text) == latest.isoformat()
        zh = client.get(f"/c/demo/referrals?period={period}&lang=zh-CN").text
        assert _fallback(zh) == SAID_ZH[period].format(label=expected)
    # the default period is the week
    assert _shown_label(client.get("/c/demo/referrals?lang=en").text) == iso_week(latest)


def test_the_board_opens_on_the_current_period_when_it_has_referrals(demo_site: Site) -> None:
    latest = max(day for _, day in _referral_days(demo_site))
    client = _client_at(demo_site, latest)
    for period in ("day", "week", "month"):
        page = client.get(f"/c/demo/referrals?period={period}&lang=en").text
        assert _shown_label(page) == _label(latest, period) and _fallback(page) is None
        assert page.count('data-testid="board-row"') == _inviters_in(demo_site, _label(latest, period), period)
        assert ">today<" in page or ">this week<" in page or ">this month<" in page  # the current period's names


def test_the_board_shows_the_day_asked_for_even_empty(demo_site: Site) -> None:
    days = sorted(day for _, day in _referral_days(demo_site))
    later = days[-1] + timedelta(days=75)
    client = _client_at(demo_site, later)
    # an empty period asked for: shown as asked, nothing said
    page = client.get(f"/c/demo/referrals?period=week&day={later.isoformat()}&lang=en").text
    assert _shown_label(page) == iso_week(later) and _fallback(page) is None
    assert 'data-testid="board-empty"' in page and 'data-testid="board-row"' not in page
    # an earlier period with referrals (not the latest): that one, and the links keep the day
    first = days[0]
    page = client.get(f"/c/demo/referrals?period=day&day={first.isoformat()}&lang=en").text
    assert _shown_label(page) == first.isoformat() and _fallback(page) is None
    assert page.count('data-testid="board-row"') == _inviters_in(demo_site, first.isoformat(), "day") > 0
    assert _day_box(page) == first.isoformat()
    assert f"period=week&amp;day={first.isoformat()}" in page and ">this week<" not in page
    for bad in ("2026-02-30", "2026/02/01", "20260201", "today"):
        assert client.get(f"/c/demo/referrals?day={bad}").status_code == 422


def test_the_api_board_stays_on_the_current_period(demo_site: Site) -> None:
    from qunyun.console.accounts import Accounts
    from qunyun.store.db import open_engine

    latest = max(day for _, day in _referral_days(demo_site))
    later = latest + timedelta(days=75)
    engine = open_engine(demo_site.db_url)
    token = Accounts(engine, demo_site.clock).create_token("vera", "referrals-period", ["read"])
    engine.dispose()
    client = _client_at(demo_site, later)
    answer = client.get("/api/v1/communities/demo/referrals?period=week", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    board: dict[str, Any] = answer.json()["data"]["board"]
    assert board["label"] == iso_week(later) and board["rows"] == []
    assert board["latest"] == latest.isoformat()

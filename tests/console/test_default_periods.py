"""Pages that choose their period from the clock open on data: on a community whose data ended weeks
ago (a replay, an import), the digests' week and the fund's month fall back to the latest period with
data and say so; inside a period with data they open on it and say nothing; a period asked for is shown
as asked, even empty. Both databases."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from qunyun.console.app import create_app
from qunyun.core.clock import FakeClock
from qunyun.playbooks.qa import iso_week
from tests.console.conftest import Site, login, sql

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the demo community's time zone


def _client_at(site: Site, when: datetime, user: str = "vera") -> TestClient:
    """A console whose clock stands at ``when``, signed in as ``user``."""
    client = TestClient(create_app(site.config, site.db_url, clock=FakeClock(when)), base_url="http://127.0.0.1")
    login(client, user)
    return client


def _noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)


def _as_day(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _as_local(value: Any) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(SHANGHAI)


# ------------------------------------------------------------------ digests


def _last_message_day(site: Site) -> date:
    rows = sql(site, "SELECT day FROM group_days WHERE community_id = 'demo' AND messages > 0")
    assert rows
    return max(_as_day(r[0]) for r in rows)


def _latest_data_week(site: Site) -> str:
    """The latest week with messages or a digest, worked out here from every row."""
    weeks = {iso_week(_last_message_day(site))}
    for (key,) in sql(site, "SELECT key FROM playbook_state WHERE community_id = 'demo' AND playbook = 'digest'"):
        label = key.split(":", 1)[1]
        weeks.add(label if "W" in label else iso_week(date.fromisoformat(label)))
    return max(weeks)


def _preview_box(page: str) -> str:
    found = re.search(r'name="period" value="([^"]*)"[^>]*data-testid="digests-period"', page)
    assert found, "no preview box"
    return found.group(1)


def test_digests_fall_back_to_the_latest_week_with_data(demo_site: Site) -> None:
    latest = _latest_data_week(demo_site)
    later = _last_message_day(demo_site) + timedelta(days=60)
    client = _client_at(demo_site, _noon(later))
    assert iso_week(later - timedelta(days=7)) != latest  # last week by the clock is empty
    page = client.get("/c/demo/digests?lang=en")
    assert page.status_code == 200
    assert _preview_box(page.text) == latest
    line = re.search(r'data-testid="digests-fallback">([^<]*)<', page.text)
    assert line and html.unescape(line.group(1)) == (
        f"No data last week; the preview box holds {latest}, the latest week with data")
    zh = client.get("/c/demo/digests?lang=zh-CN").text
    assert f"上周暂无数据，预览框中填入的是有数据的最近一周 {latest}" in zh


def test_digests_open_on_last_week_when_it_has_data(demo_site: Site) -> None:
    published = sorted(k.split(":", 1)[1] for (k,) in sql(
        demo_site, "SELECT key FROM playbook_state WHERE community_id = 'demo' AND playbook = 'digest' "
                   "AND key LIKE 'published:%-W%'"))
    assert published
    # the clock in the week after a published one: that week is "last week"
    monday = date.fromisocalendar(int(published[0][:4]), int(published[0][6:]), 1)
    page = _client_at(demo_site, _noon(monday + timedelta(days=9))).get("/c/demo/digests?lang=en").text
    assert _preview_box(page) == published[0] and 'data-testid="digests-fallback"' not in page
    # a last week with messages and no digest yet counts too
    last = _last_message_day(demo_site)
    page = _client_at(demo_site, _noon(last + timedelta(days=7))).get("/c/demo/digests?lang=en").text
    assert _preview_box(page) == iso_week(last) and 'data-testid="digests-fallback"' not in page


def test_digests_show_the_week_asked_for_even_empty(demo_site: Site) -> None:
    later = _last_message_day(demo_site) + timedelta(days=60)
    client = _client_at(demo_site, _noon(later))
    page = client.get("/c/demo/digests?week=2027-W30&lang=en").text
    assert _preview_box(page) == "2027-W30" and 'data-testid="digests-fallback"' not in page
    assert client.get("/c/demo/digests?week=2027-30").status_code == 422


# ------------------------------------------------------------------ fund

FUND_ACCOUNTS = ("community:fund:CNY", "community:dues:CNY", "community:suspense:CNY")


def _posting_days(site: Site) -> list[date]:
    rows = sql(site, "SELECT t.ts FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id "
                      "JOIN ledger_transactions t ON t.id = p.transaction_id "
                      "WHERE a.community_id = 'demo' AND a.code IN (:f, :d, :s)",
                f=FUND_ACCOUNTS[0], d=FUND_ACCOUNTS[1], s=FUND_ACCOUNTS[2])
    assert rows
    return sorted(_as_local(r[0]).date() for r in rows)


def _month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _statement_span(page: str) -> tuple[str, str]:
    found = re.search(r'<span class="muted">(\d{4}-\d{2}-\d{2}) – (\d{4}-\d{2}-\d{2})</span>', page)
    assert found, "no statement period on the page"
    return found.group(1), found.group(2)


def _fallback(page: str) -> str | None:
    found = re.search(r'data-testid="fund-fallback">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def test_fund_falls_back_to_the_latest_month_with_postings(demo_site: Site) -> None:
    latest = _posting_days(demo_site)[-1]
    month = latest.isoformat()[:7]
    client = _client_at(demo_site, _noon(_month_end(latest) + timedelta(days=75)))
    said = f"No postings this month; showing {month}, the latest month with postings"
    overview = client.get("/c/demo/fund?lang=en").text
    assert _statement_span(overview) == (f"{month}-01", _month_end(latest).isoformat())
    assert _fallback(overview) == said
    assert "本月暂无账目，显示有账目的最近一个月 " + month in client.get("/c/demo/fund?lang=zh-CN").text
    statement = client.get("/c/demo/fund/statement?lang=en").text
    assert _statement_span(statement) == (f"{month}-01", _month_end(latest).isoformat())
    assert _fallback(statement) == said and 'data-testid="fund-movement-row"' in statement
    # a week's statement ends on the latest posting's day, so that it shows it
    week = client.get("/c/demo/fund/statement?period=week&lang=en").text
    assert _statement_span(week) == ((latest - timedelta(days=latest.weekday())).isoformat(), latest.isoformat())
    assert _fallback(week) == said and 'data-testid="fund-movement-row"' in week
    reconcile = client.get("/c/demo/fund/reconcile?lang=en").text
    assert f'name="month" value="{month}"' in reconcile and _fallback(reconcile) == said
    assert 'data-testid="fund-reconcile-row"' in reconcile


def test_fund_opens_on_this_month_when_it_has_postings(demo_site: Site) -> None:
    latest = _posting_days(demo_site)[-1]
    client = _client_at(demo_site, _noon(latest))
    overview = client.get("/c/demo/fund?lang=en").text
    assert _statement_span(overview) == (latest.replace(day=1).isoformat(), latest.isoformat())
    assert _fallback(overview) is None
    assert _fallback(client.get("/c/demo/fund/statement?lang=en").text) is None
    reconcile = client.get("/c/demo/fund/reconcile?lang=en").text
    assert f'name="month" value="{latest.isoformat()[:7]}"' in reconcile and _fallback(reconcile) is None


def test_fund_shows_the_period_asked_for_even_empty(demo_site: Site) -> None:
    latest = _posting_days(demo_site)[-1]
    later = _month_end(latest) + timedelta(days=75)
    client = _client_at(demo_site, _noon(later))
    statement = client.get(f"/c/demo/fund/statement?to={later.isoformat()}&lang=en").text
    assert _statement_span(statement) == (later.replace(day=1).isoformat(), later.isoformat())
    assert _fallback(statement) is None and 'data-testid="fund-movement-row"' not in statement
    asked = later.isoformat()[:7]
    reconcile = client.get(f"/c/demo/fund/reconcile?month={asked}&lang=en").text
    assert f'name="month" value="{asked}"' in reconcile and _fallback(reconcile) is None
    # no money at all in the other community: today, and nothing to say
    otto = _client_at(demo_site, _noon(later), "otto")
    other = otto.get("/c/other/fund?lang=en").text
    assert _statement_span(other)[1] == later.isoformat() and _fallback(other) is None

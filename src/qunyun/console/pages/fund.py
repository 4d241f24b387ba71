"""Console page: the fund (群基金) — accounts, statements, weekly awards, dues
reconciliation and money held in suspense.

Everything here reads the double-entry ledger (``ledger_accounts``,
``ledger_transactions``, ``ledger_postings``) and the fund's playbook state
with bounded SQL; money moves only through the ``fund`` (and ``challenge``)
playbook commands, so the engine's rules apply and every movement is audited.
The reading functions are shared with the API (``qunyun.console.api.money``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy import Connection, Text, case, func, select, type_coerce

from qunyun.config.model import CommunitySettings
from qunyun.console.web import Admin, Page, Viewer, refused
from qunyun.core.errors import CommandError
from qunyun.playbooks.money import dues_account, fund_account, suspense_account
from qunyun.store import models as m

router = APIRouter()

PERIODS = ("week", "month", "season")
KINDS = ("dues", "admin_dues", "donation", "topup")
#: the largest amount a form accepts, in minor units (10 billion yuan)
MAX_AMOUNT = 10**12
_NUMBER = re.compile(r"^\+?\d+(\.\d+)?$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^\d{4}-W\d{2}$")


# ------------------------------------------------------------------ amounts


class AmountError(ValueError):
    """A typed amount the console refuses; ``key`` is the label that explains it."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def parse_yuan(text: str | None, *, field: str = "amount") -> int:
    """An amount typed in major units (``12``, ``12.3``, ``12.34``, ``¥12.34``) → exact minor units.

    Decimal arithmetic, never floats. Refused: empty, not a number, more than
    two decimals, zero or negative, and more than :data:`MAX_AMOUNT`.
    """
    raw = unicodedata.normalize("NFKC", text or "").strip()
    raw = raw.removeprefix("¥").removesuffix("元").strip()
    if not raw:
        raise AmountError("fund.err.amount_missing", field=field)
    if raw.startswith(("-", "−")):
        raise AmountError("fund.err.amount_negative", field=field, value=raw)
    if not _NUMBER.match(raw) or len(raw) > 24:
        raise AmountError("fund.err.amount_invalid", field=field, value=raw)
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern already checked it
        raise AmountError("fund.err.amount_invalid", field=field, value=raw) from None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -2:
        raise AmountError("fund.err.amount_decimals", field=field, value=raw)
    minor = value * 100
    if minor <= 0:
        raise AmountError("fund.err.amount_zero", field=field, value=raw)
    if minor > MAX_AMOUNT:
        raise AmountError("fund.err.amount_large", field=field, value=raw)
    return int(minor)


def amount_message(page: Page, exc: AmountError) -> str:
    return page.t(exc.key, field=page.t(f"fund.field.{exc.values.get('field', 'amount')}"), value=exc.values.get("value", ""))


# ------------------------------------------------------------------ reading


def fund_config(community: CommunitySettings) -> Any | None:
    """The fund's configuration (the first group that runs it), or None if it runs nowhere."""
    for group in community.groups.values():
        cfg = group.playbooks.get("fund")
        if cfg is not None:
            return cfg
    return None


def currency_of(community: CommunitySettings) -> str:
    cfg = fund_config(community)
    return str(cfg.currency) if cfg is not None else "CNY"


def state_value(conn: Connection, community: str, playbook: str, key: str) -> Any:
    st = m.table(m.PlaybookState)
    return conn.execute(
        select(st.c.value).where(st.c.community_id == community, st.c.playbook == playbook, st.c.key == key)
    ).scalar()


def member_names(conn: Connection, community: str, uids: Iterable[str]) -> dict[str, str]:
    """user id → display name, for the few ids a page shows."""
    wanted = sorted({u for u in uids if u})
    if not wanted:
        return {}
    mem = m.table(m.Member)
    found: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        rows = conn.execute(
            select(mem.c.user_id, mem.c.name).where(mem.c.community_id == community,
                                                     mem.c.user_id.in_(wanted[i:i + 500]))
        )
        for uid, name in rows:
            found[uid] = name or uid
    return found


def member_exists(conn: Connection, community: str, uid: str) -> bool:
    mem = m.table(m.Member)
    return conn.execute(
        select(mem.c.id).where(mem.c.community_id == community, mem.c.user_id == uid,
                               mem.c.erased.is_(False)).limit(1)
    ).first() is not None


def balances(conn: Connection, community: str, codes: Iterable[str]) -> dict[str, int]:
    acc = m.table(m.Account)
    wanted = list(codes)
    got = {code: int(bal) for code, bal in conn.execute(
        select(acc.c.code, acc.c.balance).where(acc.c.community_id == community, acc.c.code.in_(wanted)))}
    return {code: got.get(code, 0) for code in wanted}


ACCOUNT_SORTS = ("code", "kind", "name", "balance")


def accounts_page(conn: Connection, community: str, *, offset: int, limit: int, sort: str | None = "balance",
                  desc: bool = True, search: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The community's money accounts (points excluded), one page, sorted and counted in SQL."""
    acc = m.table(m.Account)
    mem = m.table(m.Member)
    where = [acc.c.community_id == community, acc.c.currency != "POINTS"]
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(acc.c.code.ilike(pattern, escape="\\") | mem.c.name.ilike(pattern, escape="\\")
                     | mem.c.user_id.ilike(pattern, escape="\\"))
    joined = acc.outerjoin(mem, mem.c.id == acc.c.member_id)
    total = int(conn.execute(select(func.count()).select_from(joined).where(*where)).scalar() or 0)
    column = {"code": acc.c.code, "kind": acc.c.kind, "name": mem.c.name, "balance": acc.c.balance}.get(
        sort or "balance", acc.c.balance)
    order = [column.desc() if desc else column.asc(), acc.c.code.asc()]
    q = (select(acc.c.code, acc.c.kind, acc.c.currency, acc.c.balance, mem.c.user_id, mem.c.name, mem.c.erased)
         .select_from(joined).where(*where).order_by(*order).offset(offset).limit(limit))
    rows = [{"code": r.code, "kind": r.kind, "currency": r.currency, "balance": int(r.balance),
             "member": r.user_id, "name": r.name, "erased": bool(r.erased) if r.erased is not None else False}
            for r in conn.execute(q)]
    return total, rows


def season_of(conn: Connection, community: CommunitySettings) -> dict[str, Any] | None:
    season = state_value(conn, community.id, "fund", "season")
    if isinstance(season, dict) and season.get("start"):
        return season
    cfg = fund_config(community)
    if cfg is not None and cfg.season_start is not None:
        return {"start": cfg.season_start.isoformat(), "weeks": cfg.season_weeks}
    return None


def period_span(period: str, last: date, season_start: date | None) -> tuple[date, date]:
    """The local days of a statement ending on ``last``: its week (from Monday), month, or season."""
    if period == "week":
        return last - timedelta(days=last.weekday()), last
    if period == "month":
        return last.replace(day=1), last
    return (season_start or last), last


def _utc(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass
class Statement:
    period: str
    first: date
    last: date
    currency: str
    #: per account: opening, in, out, closing
    accounts: list[dict[str, Any]]


def statement(conn: Connection, community: CommunitySettings, period: str, last: date) -> Statement:
    """Opening, in, out and closing of the fund, the admin dues and the suspense for the local
    days of ``period`` ending on ``last`` — summed in SQL from the postings."""
    cur = currency_of(community)
    season = season_of(conn, community)
    start = date.fromisoformat(season["start"]) if season else None
    first, last = period_span(period, last, start)
    codes = [fund_account(cur), dues_account(cur), suspense_account(cur)]
    acc, tx, p = m.table(m.Account), m.table(m.LedgerTransaction), m.table(m.Posting)
    begin, end = _utc(first, community.tz), _utc(last + timedelta(days=1), community.tz)
    inside = (tx.c.ts >= begin) & (tx.c.ts < end)
    q = (
        select(
            acc.c.code,
            func.coalesce(func.sum(case((tx.c.ts < begin, p.c.amount), else_=0)), 0),
            func.coalesce(func.sum(case((inside & (p.c.amount > 0), p.c.amount), else_=0)), 0),
            func.coalesce(func.sum(case((inside & (p.c.amount < 0), -p.c.amount), else_=0)), 0),
        )
        .select_from(p.join(acc, acc.c.id == p.c.account_id).join(tx, tx.c.id == p.c.transaction_id))
        .where(acc.c.community_id == community.id, acc.c.code.in_(codes), tx.c.ts < end)
        .group_by(acc.c.code)
    )
    sums = {code: (int(o), int(i), int(out)) for code, o, i, out in conn.execute(q)}
    rows = []
    for code in codes:
        opening, incoming, outgoing = sums.get(code, (0, 0, 0))
        rows.append({"account": code, "opening": opening, "in": incoming, "out": outgoing,
                     "closing": opening + incoming - outgoing})
    return Statement(period, first, last, cur, rows)


MOVE_SORTS = ("ts", "amount")


def movements_page(conn: Connection, community: CommunitySettings, code: str, first: date, last: date, *,
                   offset: int, limit: int, sort: str | None = "ts", desc: bool = False,
                   ) -> tuple[int, list[dict[str, Any]]]:
    """The postings to account ``code`` over the local days ``first``..``last``, one page."""
    acc, tx, p = m.table(m.Account), m.table(m.LedgerTransaction), m.table(m.Posting)
    begin, end = _utc(first, community.tz), _utc(last + timedelta(days=1), community.tz)
    where = [acc.c.community_id == community.id, acc.c.code == code, tx.c.ts >= begin, tx.c.ts < end]
    joined = p.join(acc, acc.c.id == p.c.account_id).join(tx, tx.c.id == p.c.transaction_id)
    total = int(conn.execute(select(func.count()).select_from(joined).where(*where)).scalar() or 0)
    column = p.c.amount if sort == "amount" else tx.c.ts
    q = (select(tx.c.id, tx.c.ts, tx.c.reason, tx.c.playbook, p.c.amount).select_from(joined).where(*where)
         .order_by(column.desc() if desc else column.asc(), p.c.id.desc() if desc else p.c.id.asc())
         .offset(offset).limit(limit))
    rows = []
    for r in conn.execute(q):
        ts = r.ts if r.ts.tzinfo is not None else r.ts.replace(tzinfo=UTC)
        rows.append({"transaction": r.id, "ts": ts, "reason": r.reason, "playbook": r.playbook,
                     "amount": int(r.amount)})
    return total, rows


def balance_series(conn: Connection, community: CommunitySettings, code: str) -> list[tuple[date, int]]:
    """The account's closing balance per local day on which it moved (streamed, one value a day)."""
    acc, tx, p = m.table(m.Account), m.table(m.LedgerTransaction), m.table(m.Posting)
    q = (select(tx.c.ts, p.c.amount)
         .select_from(p.join(acc, acc.c.id == p.c.account_id).join(tx, tx.c.id == p.c.transaction_id))
         .where(acc.c.community_id == community.id, acc.c.code == code)
         .order_by(tx.c.ts, p.c.id))
    series: list[tuple[date, int]] = []
    running = 0
    for ts, amount in conn.execution_options(yield_per=2000).execute(q):
        when = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
        day = when.astimezone(community.tz).date()
        running += int(amount)
        if series and series[-1][0] == day:
            series[-1] = (day, running)
        else:
            series.append((day, running))
    return series


def awards_page(conn: Connection, community: str, *, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """The weekly award records (``award:<week>``), newest first, one page."""
    st = m.table(m.PlaybookState)
    where = [st.c.community_id == community, st.c.playbook == "fund", st.c.key.like("award:%")]
    total = int(conn.execute(select(func.count()).select_from(st).where(*where)).scalar() or 0)
    rows = []
    for key, value in conn.execute(
        select(st.c.key, st.c.value).where(*where).order_by(st.c.key.desc()).offset(offset).limit(limit)
    ):
        record = value if isinstance(value, dict) else {}
        lines = [dict(ln) for ln in record.get("lines") or () if isinstance(ln, dict)]
        rows.append({
            "week": key[len("award:"):],
            "status": str(record.get("status") or "empty"),
            "pool": int(record.get("pool") or 0),
            "weeks_left": int(record.get("weeks") or 0),
            "total": sum(int(ln.get("amount") or 0) for ln in lines),
            "paid_total": sum(int(v) for v in (record.get("paid") or {}).values()),
            "lines": lines,
            "ts": record.get("ts"),
        })
    names = member_names(conn, community, (ln.get("uid") for r in rows for ln in r["lines"]))
    for r in rows:
        for ln in r["lines"]:
            ln["name"] = names.get(ln.get("uid") or "", ln.get("uid") or "")
    return total, rows


def suspense_items(conn: Connection, community: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """Unmatched payments held in suspense, the fund's and the challenges' (``m:<uid>`` with ``unmatched``)."""
    st = m.table(m.PlaybookState)
    q = (select(st.c.playbook, st.c.key, st.c.value)
         .where(st.c.community_id == community, st.c.playbook.in_(("fund", "challenge")), st.c.key.like("m:%"),
                # the value is JSON text: compare it as text (not through the JSON type's bind)
                type_coerce(st.c.value, Text).like('%"unmatched"%'))
         .order_by(st.c.key).limit(limit))
    items = []
    for playbook, key, value in conn.execute(q):
        for entry in (value or {}).get("unmatched") or ():
            items.append({"member": key[2:], "via": playbook, "amount": int(entry.get("amount") or 0),
                          "currency": entry.get("currency"), "memo": entry.get("memo") or "",
                          "ts": entry.get("ts"), "challenge": entry.get("challenge")})
    names = member_names(conn, community, (i["member"] for i in items))
    for i in items:
        i["name"] = names.get(i["member"], i["member"])
    return items


# ------------------------------------------------------------------ the chart


def line_chart(points: list[tuple[date, int]], *, title: str, currency: str, lang: str) -> Markup:
    """A small SVG line chart of balances (our own drawing; every text in it is escaped)."""
    from qunyun.playbooks.money import fmt_money

    width, height, left, right, top, bottom = 720, 220, 90, 16, 28, 30
    title_text = escape(title)
    if len(points) < 2:
        return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 60" role="img" '
                      f'aria-label="{title_text}"><text x="10" y="35" font-size="13">{title_text}</text></svg>')
    first, last = points[0][0], points[-1][0]
    span = max(1, (last - first).days)
    low = min(0, min(v for _, v in points))
    high = max(v for _, v in points) or 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(day: date) -> float:
        return left + plot_w * (day - first).days / span

    def y(value: int) -> float:
        return top + plot_h * (1 - (value - low) / ((high - low) or 1))

    # a step line: the balance holds until the next day it moves
    coords: list[str] = []
    for i, (day, value) in enumerate(points):
        if i:
            coords.append(f"{x(day):.1f},{y(points[i - 1][1]):.1f}")
        coords.append(f"{x(day):.1f},{y(value):.1f}")
    money_high = escape(fmt_money(high, currency, lang))
    money_low = escape(fmt_money(low, currency, lang))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{title_text}" data-testid="fund-balance-chart">'
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{title_text}</text>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#c9d1db"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#c9d1db"/>'
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{money_high}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">{money_low}</text>'
        f'<text x="{left}" y="{height - 8}" font-size="11">{escape(first.isoformat())}</text>'
        f'<text x="{width - right}" y="{height - 8}" font-size="11" text-anchor="end">'
        f'{escape(last.isoformat())}</text>'
        f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{" ".join(coords)}"/>'
        "</svg>"
    )


def balance_chart(page: Page, code: str) -> Markup:
    state = page.state
    key = ("fund-balance", page.community.id, code, state.epoch(page.community.id), page.lang)
    chart = state.memo.get(key)
    if chart is None:
        with page.read() as conn:
            points = balance_series(conn, page.community, code)
        chart = line_chart(points, title=page.t("fund.chart.balance"), currency=currency_of(page.community),
                           lang=page.lang)
        state.memo[key] = chart
    return chart


# ------------------------------------------------------------------ pages


def today(page: Page) -> date:
    return page.state.clock.now().astimezone(page.community.tz).date()


def _month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _fund_postings(community: CommunitySettings) -> tuple[Any, Any, Any]:
    """The postings to the fund, the admin dues and the suspense joined to their transactions, the
    condition that picks them and the transactions' table (reached through the accounts' index: the
    points ledger is never read)."""
    cur = currency_of(community)
    acc, tx, p = m.table(m.Account), m.table(m.LedgerTransaction), m.table(m.Posting)
    joined = p.join(acc, acc.c.id == p.c.account_id).join(tx, tx.c.id == p.c.transaction_id)
    where = (acc.c.community_id == community.id) & acc.c.code.in_(
        [fund_account(cur), dues_account(cur), suspense_account(cur)])
    return joined, where, tx


def has_postings(conn: Connection, community: CommunitySettings, first: date, last: date) -> bool:
    """Whether the fund's accounts moved on the local days ``first``..``last``."""
    joined, where, tx = _fund_postings(community)
    begin, end = _utc(first, community.tz), _utc(last + timedelta(days=1), community.tz)
    return conn.execute(
        select(tx.c.id).select_from(joined).where(where, tx.c.ts >= begin, tx.c.ts < end).limit(1)
    ).first() is not None


def latest_posting_day(conn: Connection, community: CommunitySettings) -> date | None:
    """The local day of the fund accounts' latest posting, or None when they never moved."""
    joined, where, tx = _fund_postings(community)
    ts: datetime | None = conn.execute(select(func.max(tx.c.ts)).select_from(joined).where(where)).scalar()
    if ts is None:
        return None
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).astimezone(community.tz).date()


def fallback_day(page: Page) -> date | None:
    """None when the fund ledger has postings this month (or never had any); else the local day of
    its latest posting — a replayed or imported community whose data ended weeks ago opens on it."""
    now = today(page)
    with page.read() as conn:
        if has_postings(conn, page.community, now.replace(day=1), _month_end(now)):
            return None
        return latest_posting_day(conn, page.community)


def _day_param(page: Page, name: str) -> date | None:
    """The day asked for in ``?{name}=``, or None (not given, not a day)."""
    raw = page.request.query_params.get(name)
    if raw:
        try:
            chosen = date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if date(1970, 1, 2) <= chosen <= date(9999, 12, 30):  # room for a week before and a day after
                return chosen
    return None


def period_end(page: Page, period: str) -> tuple[date, str | None]:
    """(the statement's last day, the month it fell back to or None): ``?to=`` as asked; else today,
    or — when this month has no postings — the end of the latest month that has (its latest posting's
    day for a week or a season, so that they show it)."""
    asked = _day_param(page, "to")
    if asked is not None:
        return asked, None
    latest = fallback_day(page)
    if latest is None:
        return today(page), None
    return (_month_end(latest) if period == "month" else latest), latest.isoformat()[:7]


def _period_param(page: Page) -> str:
    period = page.request.query_params.get("period", "month")
    return period if period in PERIODS else "month"


def _overview(page: Page, *, error: str | None = None, status: int = 200,
              form: dict[str, str] | None = None) -> Response:
    cur = currency_of(page.community)
    period = _period_param(page)
    last, fell_back = period_end(page, period)
    with page.read() as conn:
        st = statement(conn, page.community, period, last)
        held = balances(conn, page.community.id, [fund_account(cur), dues_account(cur), suspense_account(cur)])
        _, recent = awards_page(conn, page.community.id, offset=0, limit=6)
        pending = [a for a in recent if a["status"] == "pending"]
        suspense = suspense_items(conn, page.community.id)
    return page.render(
        "fund/overview.html", status=status, tab="overview", currency=cur, st=st, held=held,
        fund_code=fund_account(cur), dues_code=dues_account(cur), suspense_code=suspense_account(cur),
        awards=recent, pending=pending, suspense=suspense, periods=PERIODS, period=period,
        chart=balance_chart(page, fund_account(cur)), enabled=fund_config(page.community) is not None,
        kinds=KINDS, error=error, form=form or {}, fell_back=fell_back,
    )


@router.get("/c/{community}/fund")
def overview(page: Viewer) -> Response:
    return _overview(page)


@router.get("/c/{community}/fund/accounts")
def accounts(page: Viewer) -> Response:
    search = (page.request.query_params.get("q") or "").strip()[:100] or None
    with page.read() as conn:
        total, _ = accounts_page(conn, page.community.id, offset=0, limit=1, search=search)
        paging = page.paging(total, sorts=ACCOUNT_SORTS, default="balance")
        _, rows = accounts_page(conn, page.community.id, offset=paging.offset, limit=paging.per_page,
                                sort=paging.sort, desc=paging.desc, search=search)
    return page.render("fund/accounts.html", tab="accounts", rows=rows, paging=paging, search=search or "")


@router.get("/c/{community}/fund/statement")
def statement_page(page: Viewer) -> Response:
    period = _period_param(page)
    last, fell_back = period_end(page, period)
    cur = currency_of(page.community)
    code = page.request.query_params.get("account") or fund_account(cur)
    if code not in (fund_account(cur), dues_account(cur), suspense_account(cur)):
        code = fund_account(cur)
    with page.read() as conn:
        st = statement(conn, page.community, period, last)
        total, _ = movements_page(conn, page.community, code, st.first, st.last, offset=0, limit=1)
        paging = page.paging(total, sorts=MOVE_SORTS, default="ts")
        _, moves = movements_page(conn, page.community, code, st.first, st.last, offset=paging.offset,
                                  limit=paging.per_page, sort=paging.sort, desc=paging.desc)
    return page.render("fund/statement.html", tab="statement", st=st, moves=moves, paging=paging, account=code,
                       currency=cur, periods=PERIODS, period=period, fell_back=fell_back,
                       codes=[fund_account(cur), dues_account(cur), suspense_account(cur)])


@router.get("/c/{community}/fund/awards")
def awards(page: Viewer) -> Response:
    with page.read() as conn:
        total, _ = awards_page(conn, page.community.id, offset=0, limit=0)
        paging = page.paging(total, per_page=20)
        _, rows = awards_page(conn, page.community.id, offset=paging.offset, limit=paging.per_page)
    return page.render("fund/awards.html", tab="awards", rows=rows, paging=paging,
                       currency=currency_of(page.community))


RECONCILE_SORTS = ("name", "expected", "paid", "owes", "ahead")


@router.get("/c/{community}/fund/reconcile")
def reconcile(page: Viewer) -> Response:
    month = page.request.query_params.get("month") or ""
    fell_back = None
    if not _MONTH.match(month):
        latest = fallback_day(page)
        month = (latest or today(page)).isoformat()[:7]
        fell_back = month if latest is not None else None
    result: dict[str, Any] | None = None
    problem = None
    if fund_config(page.community) is not None:
        key = ("fund-reconcile", page.community.id, month, page.state.epoch(page.community.id))
        result = page.state.memo.get(key)
        if result is None:
            try:
                result = page.state.engine.query(page.community.id, "fund", "reconcile", {"month": month})
            except CommandError as exc:
                problem = refused(exc, page.lang)
            else:
                page.state.memo[key] = result
    rows = list((result or {}).get("members") or [])
    paging = page.paging(len(rows), sorts=RECONCILE_SORTS, default="owes")
    column = paging.sort or "owes"
    rows.sort(key=lambda r: (r.get(column) or 0, r.get("member")) if column != "name"
              else (str(r.get("name") or ""), r.get("member")), reverse=paging.desc)
    shown = rows[paging.offset:paging.offset + paging.per_page]
    return page.render("fund/reconcile.html", tab="reconcile", month=month, result=result, rows=shown,
                       paging=paging, currency=currency_of(page.community), error=problem, fell_back=fell_back)


# ------------------------------------------------------------------ actions


def member_field(page: Page, raw: str) -> str:
    member = unicodedata.normalize("NFKC", raw or "").strip().lstrip("@")
    if not member:
        raise AmountError("fund.err.member_missing")
    with page.read() as conn:
        if not member_exists(conn, page.community.id, member):
            raise AmountError("fund.err.member_unknown", value=member)
    return member


def form_error(page: Page, exc: AmountError) -> str:
    if exc.key.startswith("fund.err.member"):
        return page.t(exc.key, value=exc.values.get("value", ""))
    return amount_message(page, exc)


@router.post("/c/{community}/fund/payments")
def record_payment(
    page: Admin,
    member: Annotated[str, Form(max_length=256)] = "",
    amount: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=32)] = "dues",
) -> Response:
    form = {"member": member, "amount": amount, "kind": kind}
    try:
        uid = member_field(page, member)
        minor = parse_yuan(amount)
    except AmountError as exc:
        return _overview(page, error=form_error(page, exc), status=400, form=form)
    if kind not in KINDS:
        return _overview(page, error=page.t("fund.err.kind", value=kind), status=400, form=form)
    try:
        page.command("fund", "record", {"member": uid, "amount": minor, "kind": kind})
    except CommandError as exc:
        return _overview(page, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409, form=form)
    return page.redirect("fund", msg="msg.done")


def _act(page: Page, playbook: str, name: str, args: dict[str, Any]) -> Response:
    """Give the command; back to the fund page when done, the reason on it when refused."""
    try:
        page.command(playbook, name, args)
    except CommandError as exc:
        return _overview(page, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409)
    return page.redirect("fund", msg="msg.done")


@router.post("/c/{community}/fund/awards/approve")
def approve_awards(page: Admin, week: Annotated[str, Form(max_length=16)] = "") -> Response:
    args: dict[str, Any] = {}
    if week:
        if not _WEEK.match(week):
            return _overview(page, error=page.t("fund.err.week", value=week), status=400)
        args["week"] = week
    return _act(page, "fund", "approve_awards", args)


@router.post("/c/{community}/fund/suspense/match")
def match_suspense(
    page: Admin,
    member: Annotated[str, Form(max_length=256)] = "",
    kind: Annotated[str, Form(max_length=32)] = "dues",
    amount: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    args: dict[str, Any] = {"member": member.strip(), "kind": kind}
    if kind not in KINDS:
        return _overview(page, error=page.t("fund.err.kind", value=kind), status=400)
    try:
        if amount.strip():
            args["amount"] = parse_yuan(amount)
    except AmountError as exc:
        return _overview(page, error=amount_message(page, exc), status=400)
    return _act(page, "fund", "match", args)


@router.post("/c/{community}/fund/suspense/refund")
def refund_suspense(
    page: Admin,
    member: Annotated[str, Form(max_length=256)] = "",
    via: Annotated[str, Form(max_length=16)] = "fund",
    amount: Annotated[str, Form(max_length=64)] = "",
    currency: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    args: dict[str, Any] = {"member": member.strip()}
    if currency.strip():
        args["currency"] = currency.strip()
    try:
        if amount.strip():
            args["amount"] = parse_yuan(amount)
    except AmountError as exc:
        return _overview(page, error=amount_message(page, exc), status=400)
    return _act(page, "challenge" if via == "challenge" else "fund", "refund", args)

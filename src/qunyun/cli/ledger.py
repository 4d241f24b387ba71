"""``qunyun ledger``: the accounts with their balances, and statements for a period.

Read-only: it reads the ledger tables (accounts, transactions, postings) and
changes nothing. Money moves only through playbook commands (``fund record``,
``fund payout``…), so that every movement has its reason and its audit record.

Amounts are integer minor units in the database; the table shows them as
``12.34`` (points as whole numbers) and ``--json`` gives the integers. A
statement's days are local days in the community's time zone when
``--config`` is given, else UTC; both ends are included.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, func, select

from qunyun.cli.admin import database_url, open_existing
from qunyun.cli.app import app
from qunyun.cli.common import pick_community
from qunyun.cli.i18n import cli_lang
from qunyun.config.model import load_settings
from qunyun.core.clock import SystemClock
from qunyun.core.errors import QunyunError
from qunyun.store import models as m

_LABELS: dict[str, str] = {
    "Accounts": "账户",
    "Statement {start} to {end}": "账单 {start} 至 {end}",
    "Movements of {account}": "{account} 的流水",
    "community": "社群",
    "account": "账户",
    "kind": "类型",
    "member": "成员",
    "currency": "币种",
    "balance": "余额",
    "opening": "期初",
    "in": "收入",
    "out": "支出",
    "closing": "期末",
    "time": "时间",
    "reason": "事由",
    "playbook": "玩法",
    "amount": "金额",
    "no accounts": "没有账户",
    "no accounts match {account}": "没有与 {account} 匹配的账户",
    # an account's kind ("community" and "member" are above)
    "system": "系统",
}


class Period(enum.StrEnum):
    week = "week"
    month = "month"
    year = "year"
    all = "all"


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def amount_text(amount: int, currency: str) -> str:
    """Minor units as ``12.34`` (integer arithmetic); points stay whole numbers."""
    if currency == "POINTS":
        return str(amount)
    sign = "-" if amount < 0 else ""
    a = abs(amount)
    return f"{sign}{a // 100}.{a % 100:02d}"


def _matches(code: str, patterns: list[str]) -> bool:
    """``code`` equals a pattern, or starts with one that ends in ``:`` or ``*``."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if code.startswith(pattern[:-1]):
                return True
        elif code == pattern or (pattern.endswith(":") and code.startswith(pattern)):
            return True
    return False


def account_rows(conn: Connection, community: str | None, patterns: list[str]) -> list[dict[str, Any]]:
    """Every account (of ``community``; matching ``patterns`` if any) with its balance and member."""
    acc = m.table(m.Account)
    mem = m.table(m.Member)
    q = (
        select(acc.c.id, acc.c.community_id, acc.c.code, acc.c.kind, acc.c.currency, acc.c.balance,
               mem.c.user_id, mem.c.name, mem.c.erased)
        .select_from(acc.outerjoin(mem, mem.c.id == acc.c.member_id))
        .order_by(acc.c.community_id, acc.c.code)
    )
    if community is not None:
        q = q.where(acc.c.community_id == community)
    rows = []
    for r in conn.execute(q).mappings():
        if patterns and not _matches(r["code"], patterns):
            continue
        rows.append({
            "id": int(r["id"]),
            "community": r["community_id"],
            "code": r["code"],
            "kind": r["kind"],
            "currency": r["currency"],
            "balance": int(r["balance"]),
            "member": None if r["user_id"] is None else {
                "user_id": r["user_id"], "name": r["name"], "erased": bool(r["erased"]),
            },
        })
    return rows


def period_bounds(period: Period, today: date, start: date | None, end: date | None) -> tuple[date | None, date]:
    """The first and last local day of the statement (``None``: since the beginning)."""
    last = end or today
    if start is not None:
        return start, last
    if period is Period.week:
        return last - timedelta(days=last.weekday()), last
    if period is Period.month:
        return last.replace(day=1), last
    if period is Period.year:
        return last.replace(month=1, day=1), last
    return None, last


def statement(conn: Connection, accounts: list[dict[str, Any]], first: date | None, last: date,
              zone: tzinfo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Opening, in, out and closing per account for the local days ``first``..``last``,
    and the movements of the period (oldest first)."""
    tx = m.table(m.LedgerTransaction)
    p = m.table(m.Posting)
    begin = None if first is None else datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    finish = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    ids = [a["id"] for a in accounts]
    opening: dict[int, int] = defaultdict(int)
    incoming: dict[int, int] = defaultdict(int)
    outgoing: dict[int, int] = defaultdict(int)
    moves: list[dict[str, Any]] = []
    if ids:
        if begin is not None:
            q = (
                select(p.c.account_id, func.sum(p.c.amount))
                .select_from(p.join(tx, tx.c.id == p.c.transaction_id))
                .where(p.c.account_id.in_(ids), tx.c.ts < begin)
                .group_by(p.c.account_id)
            )
            for aid, total in conn.execute(q):
                opening[int(aid)] = int(total or 0)
        q2 = (
            select(p.c.account_id, p.c.amount, tx.c.id, tx.c.ts, tx.c.reason, tx.c.playbook)
            .select_from(p.join(tx, tx.c.id == p.c.transaction_id))
            .where(p.c.account_id.in_(ids), tx.c.ts < finish)
            .order_by(tx.c.ts, p.c.id)
        )
        if begin is not None:
            q2 = q2.where(tx.c.ts >= begin)
        codes = {a["id"]: a["code"] for a in accounts}
        for aid, amount, tid, ts, reason, playbook in conn.execute(q2):
            aid, amount = int(aid), int(amount)
            if amount > 0:
                incoming[aid] += amount
            else:
                outgoing[aid] -= amount
            when = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            moves.append({"account": codes[aid], "transaction": tid, "ts": when.isoformat(), "amount": amount,
                          "reason": reason, "playbook": playbook})
    rows = []
    for a in accounts:
        aid = a["id"]
        rows.append({
            "community": a["community"], "account": a["code"], "currency": a["currency"],
            "opening": opening[aid], "in": incoming[aid], "out": outgoing[aid],
            "closing": opening[aid] + incoming[aid] - outgoing[aid],
        })
    return rows, moves


@app.command("ledger")
def ledger_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The deployment configuration: its database and the community's time zone."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: the config's deployment.database or $QUNYUN_DATABASE_URL)."),
    ] = None,
    community: Annotated[
        str | None, typer.Option("--community", help="Only this community (needed when the config has several).")
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="An account code, or a prefix ending in ':' or '*' "
                     "(community:fund:*). Repeatable."),
    ] = None,
    show_statement: Annotated[
        bool, typer.Option("--statement", help="In, out and balance for a period instead of the balances.")
    ] = False,
    period: Annotated[
        Period, typer.Option("--period", help="Statement period ending today (or --to): week, month, year, all.")
    ] = Period.month,
    start: Annotated[
        str | None, typer.Option("--from", help="Statement's first day, YYYY-MM-DD (overrides --period).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Statement's last day, YYYY-MM-DD (default: today).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (integer minor units) instead of tables.")] = False,
) -> None:
    """The ledger's accounts with their balances, or a statement (in, out, balance) for a period.

    A statement covers the community fund (community:fund:*) unless --account says otherwise; with a
    single account it also lists that account's movements.

    Example: qunyun ledger --config qunyun.yaml --statement --period month
    """
    zone: tzinfo = UTC
    chosen = community
    if config is not None:
        settings = load_settings(str(config))
        picked = pick_community(settings, community)
        chosen = picked.id
        zone = picked.tz
    patterns = list(account or [])
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError as exc:
        raise QunyunError(f"--from/--to: {exc}", hint="dates are YYYY-MM-DD") from None
    if first is not None and last is not None and first > last:
        raise QunyunError(f"--from {first} is after --to {last}", hint="swap them")
    engine = open_existing(database_url(db, config))
    try:
        with engine.connect() as conn:
            if show_statement:
                accounts = account_rows(conn, chosen, patterns or ["community:fund:*"])
                today = SystemClock().now().astimezone(zone).date()
                day1, day2 = period_bounds(period, today, first, last)
                rows, moves = statement(conn, accounts, day1, day2, zone)
            else:
                accounts = account_rows(conn, chosen, patterns)
    finally:
        engine.dispose()
    out = Console()
    if not show_statement:
        if as_json:
            out.print_json(json.dumps([{k: v for k, v in a.items() if k != "id"} for a in accounts],
                                      ensure_ascii=False))
            return
        if not accounts:
            out.print(_t("no accounts match {account}", account=", ".join(patterns)) if patterns else _t("no accounts"))
            return
        table = Table(title=_t("Accounts"))
        for col in ("community", "account", "kind", "member", "currency", "balance"):
            table.add_column(_t(col), justify="right" if col == "balance" else "left", overflow="fold")
        for a in accounts:
            who = (a["member"]["name"] or a["member"]["user_id"]) if a["member"] else ""
            table.add_row(escape(a["community"]), escape(a["code"]), _t(a["kind"]), escape(who or ""), a["currency"],
                          amount_text(a["balance"], a["currency"]))
        out.print(table)
        return
    span = {"from": day1.isoformat() if day1 else None, "to": day2.isoformat()}
    if as_json:
        out.print_json(json.dumps({**span, "accounts": rows, "movements": moves}, ensure_ascii=False))
        return
    if not rows:
        out.print(_t("no accounts match {account}", account=", ".join(patterns or ["community:fund:*"])))
        return
    table = Table(title=_t("Statement {start} to {end}", start=span["from"] or "…", end=span["to"]))
    for col in ("account", "currency", "opening", "in", "out", "closing"):
        table.add_column(_t(col), justify="left" if col in ("account", "currency") else "right", overflow="fold")
    for r in rows:
        cur = r["currency"]
        table.add_row(escape(r["account"]), cur, amount_text(r["opening"], cur), amount_text(r["in"], cur),
                      amount_text(r["out"], cur), amount_text(r["closing"], cur))
    out.print(table)
    if len(rows) == 1 and moves:
        cur = rows[0]["currency"]
        lines = Table(title=_t("Movements of {account}", account=escape(rows[0]["account"])))
        for col in ("time", "reason", "playbook", "amount"):
            lines.add_column(_t(col), justify="right" if col == "amount" else "left", overflow="fold")
        for mv in moves:
            when = datetime.fromisoformat(mv["ts"]).astimezone(zone).strftime("%Y-%m-%d %H:%M")
            lines.add_row(when, escape(mv["reason"]), mv["playbook"], amount_text(mv["amount"], cur))
        out.print(lines)

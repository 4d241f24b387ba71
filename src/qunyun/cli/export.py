"""``qunyun export``: members, actions, the ledger or groups as JSON or CSV.

JSON is written with ``ensure_ascii=False`` (Chinese stays readable); CSV is
UTF-8 with a header row and ``\\n`` line ends, without a byte-order mark
unless ``--bom`` is given (Excel on Windows needs it to detect UTF-8).
Amounts are integer minor units, never floats; times are ISO 8601 in UTC.
Rows are streamed, so large databases export in constant memory (apart from
the per-member group lists and balances of ``members``).
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from sqlalchemy import Connection, Engine, func, select

from qunyun.cli.admin import ConfigDbOption, DbOption, database_url, open_existing
from qunyun.cli.app import app
from qunyun.cli.i18n import tr
from qunyun.core.errors import QunyunError
from qunyun.store import models as m


class Kind(enum.StrEnum):
    members = "members"
    actions = "actions"
    ledger = "ledger"
    groups = "groups"


class Format(enum.StrEnum):
    json = "json"
    csv = "csv"


Row = dict[str, Any]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -------------------------------------------------------------------- queries


def members_rows(conn: Connection, community: str | None) -> Iterator[Row]:
    """One row per (non-erased) member: identity, seen times, active groups, points."""
    mem = m.table(m.Member)
    ms = m.table(m.Membership)
    grp = m.table(m.Group)
    acc = m.table(m.Account)

    groups: dict[int, list[str]] = defaultdict(list)
    q = (
        select(ms.c.member_id, grp.c.key)
        .select_from(ms.join(grp, grp.c.id == ms.c.group_id))
        .where(ms.c.status == "active")
        .order_by(ms.c.member_id, grp.c.key)
    )
    if community is not None:
        q = q.where(grp.c.community_id == community)
    for member_id, key in conn.execute(q):
        groups[member_id].append(key)

    points: dict[int, int] = {}
    q = (
        select(acc.c.member_id, func.sum(acc.c.balance))
        .where(acc.c.member_id.is_not(None), acc.c.currency == "POINTS")
        .group_by(acc.c.member_id)
    )
    if community is not None:
        q = q.where(acc.c.community_id == community)
    for member_id, total in conn.execute(q):
        points[member_id] = int(total or 0)

    q = (
        select(mem)
        .where(mem.c.erased.is_(False))
        .order_by(mem.c.community_id, mem.c.platform, mem.c.user_id)
    )
    if community is not None:
        q = q.where(mem.c.community_id == community)
    for row in conn.execute(q.execution_options(yield_per=1000)).mappings():
        yield {
            "community": row["community_id"],
            "platform": row["platform"],
            "user_id": row["user_id"],
            "name": row["name"],
            "title": row["title"],
            "first_seen_at": _ts(row["first_seen_at"]),
            "last_seen_at": _ts(row["last_seen_at"]),
            "groups": groups.get(row["id"], []),
            "points": points.get(row["id"], 0),
        }


def actions_rows(conn: Connection, community: str | None) -> Iterator[Row]:
    """The outbox in order, with each action's delivery status."""
    t = m.table(m.ActionRow)
    q = select(t).order_by(t.c.seq)
    if community is not None:
        q = q.where(t.c.community_id == community)
    for row in conn.execute(q.execution_options(yield_per=1000)).mappings():
        yield {
            "seq": int(row["seq"]),
            "id": row["id"],
            "ts": _ts(row["ts"]),
            "community": row["community_id"],
            "platform": row["platform"],
            "group": row["group_key"],
            "type": row["type"],
            "playbook": row["playbook"],
            "cause": row["cause"],
            "status": row["status"],
            "attempts": int(row["attempts"] or 0),
            "delivered_at": _ts(row["delivered_at"]),
            "downgraded_from": row["downgraded_from"],
            "last_error": row["last_error"],
            "action": row["payload"],
        }


def accounts_rows(conn: Connection, community: str | None) -> Iterator[Row]:
    acc = m.table(m.Account)
    mem = m.table(m.Member)
    q = (
        select(acc, mem.c.platform, mem.c.user_id)
        .select_from(acc.outerjoin(mem, mem.c.id == acc.c.member_id))
        .order_by(acc.c.community_id, acc.c.code)
    )
    if community is not None:
        q = q.where(acc.c.community_id == community)
    for row in conn.execute(q).mappings():
        yield {
            "community": row["community_id"],
            "code": row["code"],
            "kind": row["kind"],
            "currency": row["currency"],
            "member": None
            if row["user_id"] is None
            else {"platform": row["platform"], "user_id": row["user_id"]},
            "balance": int(row["balance"]),
        }


def postings_rows(conn: Connection, community: str | None) -> Iterator[Row]:
    """One row per posting, in transaction order."""
    tx = m.table(m.LedgerTransaction)
    p = m.table(m.Posting)
    acc = m.table(m.Account)
    q = (
        select(
            tx.c.id,
            tx.c.ts,
            tx.c.community_id,
            tx.c.currency,
            tx.c.reason,
            tx.c.playbook,
            tx.c.cause,
            acc.c.code,
            p.c.amount,
        )
        .select_from(
            p.join(tx, tx.c.id == p.c.transaction_id).join(acc, acc.c.id == p.c.account_id)
        )
        .order_by(tx.c.ts, tx.c.id, p.c.id)
    )
    if community is not None:
        q = q.where(tx.c.community_id == community)
    for row in conn.execute(q.execution_options(yield_per=1000)):
        yield {
            "txn_id": row[0],
            "ts": _ts(row[1]),
            "community": row[2],
            "currency": row[3],
            "reason": row[4],
            "playbook": row[5],
            "cause": row[6],
            "account": row[7],
            "amount": int(row[8]),
        }


def transactions(conn: Connection, community: str | None) -> Iterator[Row]:
    """Ledger transactions, each with its postings."""
    current: Row | None = None
    for posting in postings_rows(conn, community):
        if current is None or current["id"] != posting["txn_id"]:
            if current is not None:
                yield current
            current = {
                "id": posting["txn_id"],
                "ts": posting["ts"],
                "community": posting["community"],
                "currency": posting["currency"],
                "reason": posting["reason"],
                "playbook": posting["playbook"],
                "cause": posting["cause"],
                "postings": [],
            }
        current["postings"].append({"account": posting["account"], "amount": posting["amount"]})
    if current is not None:
        yield current


def groups_rows(conn: Connection, community: str | None) -> Iterator[Row]:
    """One row per group with its active member count and last event time."""
    grp = m.table(m.Group)
    ms = m.table(m.Membership)
    active = (
        select(ms.c.group_id, func.count().label("n"))
        .where(ms.c.status == "active")
        .group_by(ms.c.group_id)
        .subquery()
    )
    q = (
        select(grp, func.coalesce(active.c.n, 0).label("members_active"))
        .select_from(grp.outerjoin(active, active.c.group_id == grp.c.id))
        .order_by(grp.c.community_id, grp.c.platform, grp.c.key)
    )
    if community is not None:
        q = q.where(grp.c.community_id == community)
    for row in conn.execute(q).mappings():
        yield {
            "community": row["community_id"],
            "platform": row["platform"],
            "key": row["key"],
            "name": row["name"],
            "room": row["room"],
            "capacity": row["capacity"],
            "members_active": int(row["members_active"]),
            "created_at": _ts(row["created_at"]),
            "last_event_at": _ts(row["last_event_at"]),
        }


CSV_COLUMNS: dict[Kind, list[str]] = {
    Kind.members: [
        "community",
        "platform",
        "user_id",
        "name",
        "title",
        "first_seen_at",
        "last_seen_at",
        "groups",
        "points",
    ],
    Kind.actions: [
        "seq",
        "id",
        "ts",
        "community",
        "platform",
        "group",
        "type",
        "playbook",
        "cause",
        "status",
        "attempts",
        "delivered_at",
        "downgraded_from",
        "last_error",
        "text",
        "action",
    ],
    Kind.ledger: [
        "txn_id",
        "ts",
        "community",
        "currency",
        "reason",
        "playbook",
        "cause",
        "account",
        "amount",
    ],
    Kind.groups: [
        "community",
        "platform",
        "key",
        "name",
        "room",
        "capacity",
        "members_active",
        "created_at",
        "last_event_at",
    ],
}


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _csv_rows(kind: Kind, conn: Connection, community: str | None) -> Iterator[Row]:
    if kind is Kind.members:
        for row in members_rows(conn, community):
            yield {**row, "groups": " ".join(row["groups"])}
    elif kind is Kind.actions:
        for row in actions_rows(conn, community):
            yield {**row, "text": (row["action"] or {}).get("text")}
    elif kind is Kind.ledger:
        yield from postings_rows(conn, community)
    else:
        yield from groups_rows(conn, community)


JSON_ROWS: dict[Kind, Callable[[Connection, str | None], Iterator[Row]]] = {
    Kind.members: members_rows,
    Kind.actions: actions_rows,
    Kind.groups: groups_rows,
}


# --------------------------------------------------------------------- output


def _dumps(value: Any, indent: int = 2) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _write_json_array(out: TextIO, rows: Iterator[Row], indent: str = "") -> int:
    """``[row, row, …]`` written as it streams; returns the count."""
    count = 0
    out.write("[")
    for row in rows:
        body = _dumps(row).replace("\n", "\n  " + indent)
        out.write(("," if count else "") + "\n  " + indent + body)
        count += 1
    out.write(("\n" + indent if count else "") + "]")
    return count


def write_export(
    kind: Kind, fmt: Format, engine: Engine, out: TextIO, community: str | None
) -> int:
    """Write one export to ``out``; returns the number of rows (postings for ledger CSV)."""
    with engine.connect() as conn:
        if fmt is Format.csv:
            writer = csv.DictWriter(
                out, fieldnames=CSV_COLUMNS[kind], lineterminator="\n", extrasaction="ignore"
            )
            writer.writeheader()
            count = 0
            for row in _csv_rows(kind, conn, community):
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
                count += 1
            return count
        if kind is Kind.ledger:
            out.write('{\n  "accounts": ')
            count = _write_json_array(out, accounts_rows(conn, community), "  ")
            out.write(',\n  "transactions": ')
            count += _write_json_array(out, transactions(conn, community), "  ")
            out.write("\n}\n")
            return count
        count = _write_json_array(out, JSON_ROWS[kind](conn, community))
        out.write("\n")
        return count


@contextmanager
def _output(path: Path | None, bom: bool) -> Iterator[TextIO]:
    """A UTF-8 text stream: the file (written atomically) or standard output."""
    if path is None:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # pragma: no cover - an unusual stdout
            if bom:
                sys.stdout.write("\ufeff")
            yield sys.stdout
            sys.stdout.flush()
            return
        stream = io.TextIOWrapper(buffer, encoding="utf-8-sig" if bom else "utf-8", newline="")
        try:
            yield stream
        finally:
            stream.flush()
            stream.detach()
        return
    if path.is_dir():
        raise QunyunError(
            f"--out {path} is a directory", hint="give a file name, e.g. --out members.csv"
        )
    if not path.parent.exists():
        raise QunyunError(
            f"--out {path}: the directory {path.parent} does not exist", hint="create it first"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as stream:
            yield stream
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@app.command("export")
def export_command(
    kind: Annotated[
        Kind, typer.Argument(help="What to export: members, actions, ledger or groups.")
    ],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="json (an array; ledger: an object) or csv.")
    ] = Format.json,
    db: DbOption = None,
    config: ConfigDbOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write to this file instead of standard output."),
    ] = None,
    community: Annotated[
        str | None, typer.Option("--community", help="Only this community (its id).")
    ] = None,
    bom: Annotated[
        bool, typer.Option("--bom", help="Start CSV with a UTF-8 byte-order mark, for Excel.")
    ] = False,
) -> None:
    """Export members, actions, the ledger or groups as JSON or CSV.

    members: user id, platform, name, title, first/last seen, active groups,
    points balance. actions: the outbox with delivery status. ledger: accounts
    with balances and transactions with postings (CSV: one row per posting).
    groups: key, platform, name, capacity, active members, last event.
    Amounts are integer minor units; times are ISO 8601 UTC; text is UTF-8.

    Example: qunyun export members --db sqlite:///qunyun.db --format csv --out members.csv
    """
    if bom and fmt is not Format.csv:
        raise QunyunError(
            "--bom only applies to --format csv", hint="drop --bom, or add --format csv"
        )
    url = database_url(db, config)
    engine = open_existing(url)
    try:
        with _output(out, bom) as stream:
            count = write_export(kind, fmt, engine, stream, community)
    finally:
        engine.dispose()
    if out is not None:
        if kind is Kind.ledger:
            done = _WROTE["postings" if fmt is Format.csv else "accounts and transactions"]
        else:
            done = _WROTE[kind.value]
        typer.echo(tr(done, n=count, path=out), err=True)


#: What ``qunyun export --out`` says it wrote (keys of the CLI's translations).
_WROTE = {
    "members": "wrote {n} members to {path}",
    "actions": "wrote {n} actions to {path}",
    "groups": "wrote {n} groups to {path}",
    "postings": "wrote {n} postings to {path}",
    "accounts and transactions": "wrote {n} accounts and transactions to {path}",
}

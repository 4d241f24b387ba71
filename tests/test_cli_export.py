"""`qunyun export members|actions|ledger|groups`."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.errors import QunyunError, StoreError
from qunyun.store.db import open_engine
from qunyun.testing import Chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


@pytest.fixture
def populated(db_url: str) -> str:
    """Two members check in (one of them twice, on two days): points in the ledger."""
    with Chat({"checkin": {}}, db_url=db_url) as chat:
        chat.join("u1", "小王")
        chat.join("u2", "Bob")
        chat.say("u1", "打卡 读完第三章")
        chat.say("u2", "checkin")
        chat.advance(days=1)
        chat.say("u1", "打卡")
        chat.assert_ledger_balanced()
        assert chat.points("u1") == 20 and chat.points("u2") == 10
    return db_url


def export(*args: str) -> Any:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(export(*args).stdout)


def as_csv(*args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(export(*args).stdout)))


# ------------------------------------------------------------------ members


def test_members_json(populated: str) -> None:
    result = export("members", "--db", populated, "--format", "json")
    assert "小王" in result.stdout  # ensure_ascii=False
    rows = json.loads(result.stdout)
    by_id = {r["user_id"]: r for r in rows}
    assert set(by_id) == {"u1", "u2"}
    wang = by_id["u1"]
    assert wang["name"] == "小王"
    assert wang["platform"] == "sim"
    assert wang["groups"] == ["g-main"]
    assert wang["points"] == 20 and isinstance(wang["points"], int)
    assert by_id["u2"]["points"] == 10
    assert wang["first_seen_at"] < wang["last_seen_at"]
    assert {"title", "community"} <= set(wang)


def test_members_csv(populated: str) -> None:
    rows = as_csv("members", "--db", populated, "--format", "csv")
    assert [r["user_id"] for r in rows] == ["u1", "u2"]
    assert rows[0]["name"] == "小王"
    assert rows[0]["points"] == "20"
    assert rows[0]["groups"] == "g-main"
    assert rows[0]["title"] == ""


# ------------------------------------------------------------------ actions


def test_actions_json_and_csv(populated: str) -> None:
    rows = as_json("actions", "--db", populated)  # json is the default format
    assert len(rows) == 3
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    for row in rows:
        assert row["type"] == "send" and row["playbook"] == "checkin"
        assert row["status"] == "pending"
        assert row["action"]["id"] == row["id"]
    assert "小王" in rows[0]["action"]["text"]
    table = as_csv("actions", "--db", populated, "--format", "csv")
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    assert table[0]["status"] == "pending"
    assert "小王" in table[0]["text"]
    assert json.loads(table[0]["action"])["id"] == rows[0]["id"]


# ------------------------------------------------------------------- ledger


def test_ledger_json(populated: str) -> None:
    ledger = as_json("ledger", "--db", populated, "--format", "json")
    assert set(ledger) == {"accounts", "transactions"}
    balances = {a["code"]: a["balance"] for a in ledger["accounts"]}
    assert balances["member:sim:u1:POINTS"] == 20
    assert balances["member:sim:u2:POINTS"] == 10
    assert sum(balances.values()) == 0
    member = next(a for a in ledger["accounts"] if a["code"] == "member:sim:u1:POINTS")
    assert member["member"] == {"platform": "sim", "user_id": "u1"}
    assert len(ledger["transactions"]) == 3
    for txn in ledger["transactions"]:
        amounts = [p["amount"] for p in txn["postings"]]
        assert all(type(a) is int for a in amounts)  # never floats
        assert sum(amounts) == 0
        assert txn["reason"].startswith("checkin") and txn["currency"] == "POINTS"
    # balances are reconstructible from the postings
    rebuilt: dict[str, int] = {}
    for txn in ledger["transactions"]:
        for p in txn["postings"]:
            rebuilt[p["account"]] = rebuilt.get(p["account"], 0) + p["amount"]
    assert rebuilt == balances


def test_ledger_csv_has_one_row_per_posting(populated: str) -> None:
    result = export("ledger", "--db", populated, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    assert list(rows[0]) == [
        "txn_id",
        "ts",
        "community",
        "currency",
        "reason",
        "playbook",
        "cause",
        "account",
        "amount",
    ]
    assert all("." not in r["amount"] for r in rows)
    assert sum(int(r["amount"]) for r in rows) == 0
    assert len({r["txn_id"] for r in rows}) == 3


# ------------------------------------------------------------------- groups


def test_groups(populated: str) -> None:
    rows = as_json("groups", "--db", populated)
    (group,) = rows
    assert group["key"] == "g-main" and group["platform"] == "sim"
    assert group["members_active"] == 2
    assert group["capacity"] == 500
    assert group["last_event_at"] is not None
    table = as_csv("groups", "--db", populated, "--format", "csv")
    assert table[0]["members_active"] == "2"


def test_member_who_left_is_not_counted(db_url: str) -> None:
    with Chat({"checkin": {}}, db_url=db_url) as chat:
        chat.join("u1", "A")
        chat.join("u2", "B")
        chat.leave("u2")
    (group,) = as_json("groups", "--db", db_url)
    assert group["members_active"] == 1
    members = {m["user_id"]: m for m in as_json("members", "--db", db_url)}
    assert members["u2"]["groups"] == []
    assert members["u2"]["points"] == 0


# ----------------------------------------------------------------- options


def test_out_file_with_bom(populated: str, tmp_path: Path) -> None:
    out = tmp_path / "members.csv"
    result = export("members", "--db", populated, "--format", "csv", "--out", str(out), "--bom")
    assert result.stdout == ""
    assert "wrote 2" in result.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0]["name"] == "小王"


def test_out_file_json_without_bom(populated: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    export("ledger", "--db", populated, "--out", str(out))
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert json.loads(raw.decode("utf-8"))["transactions"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_community_filter(populated: str) -> None:
    assert len(as_json("members", "--db", populated, "--community", "test")) == 2
    assert as_json("members", "--db", populated, "--community", "elsewhere") == []
    ledger = as_json("ledger", "--db", populated, "--community", "elsewhere")
    assert ledger == {"accounts": [], "transactions": []}
    assert as_csv("groups", "--db", populated, "--format", "csv", "--community", "elsewhere") == []


def test_empty_but_migrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    assert runner.invoke(app, ["migrate", "--db", url]).exit_code == 0
    for kind in ("members", "actions", "groups"):
        assert as_json(kind, "--db", url) == []
    header = export("ledger", "--db", url, "--format", "csv").stdout
    assert header.strip() == "txn_id,ts,community,currency,reason,playbook,cause,account,amount"


# -------------------------------------------------------------- bad input


def test_unmigrated_database_is_a_clear_error(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    result = runner.invoke(app, ["export", "members", "--db", db_url])
    assert isinstance(result.exception, StoreError)
    message = str(result.exception)
    assert "schema" in message and "qunyun migrate --db" in message


def test_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    result = runner.invoke(app, ["export", "groups", "--db", f"sqlite:///{path}"])
    assert isinstance(result.exception, StoreError)
    assert "does not exist" in str(result.exception)
    assert not path.exists()


def test_unknown_kind(populated: str) -> None:
    result = runner.invoke(app, ["export", "people", "--db", populated])
    assert result.exit_code == 2
    assert "people" in result.output and "members" in result.output


def test_unknown_format(populated: str) -> None:
    result = runner.invoke(app, ["export", "members", "--db", populated, "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output and "csv" in result.output


def test_bom_needs_csv(populated: str) -> None:
    result = runner.invoke(app, ["export", "members", "--db", populated, "--bom"])
    assert isinstance(result.exception, QunyunError)
    assert "--format csv" in str(result.exception)


def test_out_into_missing_directory(populated: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["export", "members", "--db", populated, "--out", str(tmp_path / "no" / "m.json")]
    )
    assert isinstance(result.exception, QunyunError)
    assert "does not exist" in str(result.exception)


def test_timestamps_are_utc_iso(populated: str) -> None:
    from datetime import datetime

    for row in as_json("members", "--db", populated):
        seen = datetime.fromisoformat(row["last_seen_at"])
        assert seen.utcoffset() == timedelta(0)

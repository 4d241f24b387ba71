"""`qunyun ledger`: balances and statements, read from a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.cli.ledger import amount_text
from qunyun.testing import Chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> tuple[Path, str]:
    """A fund with 100.00 given on 2026-10-20 and 52.00 on 2026-11-02; u1 tipped u2 2.50 (Shanghai time)."""
    doc = {
        "communities": [
            {
                "id": "demo",
                "name": "演示社群",
                "timezone": "Asia/Shanghai",
                "groups": [{"id": "g-main"}],
                "playbooks": {"fund": {}},
            }
        ]
    }
    path = tmp_path / "qunyun.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url, start=datetime(2026, 10, 20, 4, tzinfo=UTC)) as chat:
        chat.join("u1", "小王")
        chat.join("u2", "小李")
        chat.pay("u1", 10000, "CNY", "捐赠")
        chat.advance_to(datetime(2026, 11, 2, 4, tzinfo=UTC))
        chat.pay("u2", 5200, "CNY", "donation")
        chat.pay("u1", 300, "CNY", "充值")
        chat.say("u1", "打赏 @小李 2.5", mentions=["u2"])
        chat.assert_ledger_balanced()
    return path, db_url


def ledger(*args: str) -> Any:
    result = runner.invoke(app, ["ledger", *args])
    assert result.exit_code == 0, result.output
    return result


def test_amounts_are_shown_without_floats() -> None:
    assert amount_text(1234, "CNY") == "12.34"
    assert amount_text(-5, "CNY") == "-0.05"
    assert amount_text(1234, "POINTS") == "1234"


def test_accounts_with_balances(community: tuple[Path, str]) -> None:
    path, db = community
    out = ledger("--config", str(path), "--db", db).stdout
    assert "Accounts" in out and "community:fund:CNY" in out and "152.00" in out
    assert "小王" in out and "member:sim:u2:CNY" in out
    rows = json.loads(ledger("--config", str(path), "--db", db, "--json").stdout)
    balances = {r["code"]: r["balance"] for r in rows}
    assert balances["community:fund:CNY"] == 15200
    assert balances["member:sim:u1:CNY"] == 50 and balances["member:sim:u2:CNY"] == 250
    assert sum(balances.values()) == 0
    one = json.loads(ledger("--db", db, "--json", "--account", "member:").stdout)
    assert sorted(r["code"] for r in one) == ["member:sim:u1:CNY", "member:sim:u2:CNY"]
    assert one[0]["member"]["name"] == "小王"
    assert "no accounts match nothing:" in ledger("--db", db, "--account", "nothing:").stdout


def test_statement_for_a_period(community: tuple[Path, str]) -> None:
    path, db = community
    args = ["--config", str(path), "--db", db, "--statement"]
    data = json.loads(ledger(*args, "--from", "2026-11-01", "--to", "2026-11-30", "--json").stdout)
    [fund] = data["accounts"]
    assert (fund["opening"], fund["in"], fund["out"], fund["closing"]) == (10000, 5200, 0, 15200)
    assert [m["amount"] for m in data["movements"]] == [5200]
    data = json.loads(ledger(*args, "--period", "all", "--to", "2026-11-30", "--json").stdout)
    assert data["from"] is None and data["accounts"][0]["in"] == 15200
    data = json.loads(ledger(*args, "--account", "member:sim:u1:CNY", "--from", "2026-11-02", "--to",
                             "2026-11-02", "--json").stdout)
    assert data["accounts"][0] == {"community": "demo", "account": "member:sim:u1:CNY", "currency": "CNY",
                                   "opening": 0, "in": 300, "out": 250, "closing": 50}
    table = ledger(*args, "--from", "2026-10-01", "--to", "2026-10-31").stdout
    assert "Statement 2026-10-01 to 2026-10-31" in table and "100.00" in table
    assert "Movements of community:fund:CNY" in table and "donation to the fund" in table


def test_bad_dates_are_refused(community: tuple[Path, str]) -> None:
    _path, db = community
    result = runner.invoke(app, ["ledger", "--db", db, "--statement", "--from", "2026-13-01"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["ledger", "--db", db, "--statement", "--from", "2026-11-02", "--to", "2026-11-01"])
    assert result.exit_code != 0 and "after" in str(result.exception)


def test_labels_in_chinese(community: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, db = community
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    out = ledger("--config", str(path), "--db", db).stdout
    assert "账户" in out and "余额" in out

"""`qunyun gate pending|approve|reject|verify|pick|record-payment`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.errors import CommandError
from qunyun.store import models as m
from qunyun.store.db import open_engine
from qunyun.testing import Chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def _config(gate: dict[str, Any], groups: list[dict[str, Any]] | None = None) -> str:
    doc = {
        "communities": [
            {
                "id": "demo",
                "name": "演示社群",
                "roles": {"admin": ["boss"]},
                "groups": groups or [{"id": "g-main"}, {"id": "g-admin", "admin": True}],
                "playbooks": {"gate": gate},
            }
        ]
    }
    return yaml.safe_dump(doc, allow_unicode=True)


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> tuple[Path, str]:
    """A config file and a migrated database where u1 and u2 asked to join, u3 paid half."""
    path = tmp_path / "qunyun.yaml"
    path.write_text(_config({"mode": "approval", "questions": ["为什么加入？"]}), encoding="utf-8")
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url) as chat:
        chat.event("join_request", "u1", name="小王", answers=["想学运营"])
        chat.event("join_request", "u2", name="Bob", answers=["<b>spam</b>"])
    return path, db_url


def gate(*args: str) -> Any:
    result = runner.invoke(app, ["gate", *args])
    assert result.exit_code == 0, result.output
    return result


def test_pending_table_and_json(community: tuple[Path, str]) -> None:
    path, db = community
    out = gate("pending", "--config", str(path), "--db", db).stdout
    assert "Applications waiting" in out and "u1" in out and "小王" in out and "想学运营" in out
    assert "<b>spam</b>" in out  # shown as text, not taken as markup
    rows = json.loads(gate("pending", "--config", str(path), "--db", db, "--json").stdout)
    assert [r["member"] for r in rows] == ["u1", "u2"]


def test_approve_then_reject_with_a_reason(community: tuple[Path, str]) -> None:
    path, db = community
    out = gate("approve", "u1", "--config", str(path), "--db", db).stdout
    assert "approved u1: g-main" in out
    out = gate("reject", "u2", "--reason", "资料不完整", "--config", str(path), "--db", db).stdout
    assert "rejected u2: g-main" in out
    assert "nobody is waiting" in gate("pending", "--config", str(path), "--db", db).stdout
    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            t = m.table(m.ActionRow)
            payloads = list(conn.execute(select(t.c.payload).order_by(t.c.seq)).scalars())
    finally:
        engine.dispose()
    assert any(p["type"] == "invite" and p["member"] == "u1" for p in payloads)
    assert any(p["type"] == "direct" and p["member"] == "u2" and "资料不完整" in p["text"] for p in payloads)


def test_errors_are_explained(community: tuple[Path, str]) -> None:
    path, db = community
    result = runner.invoke(app, ["gate", "approve", "nobody", "--config", str(path), "--db", db])
    assert result.exit_code != 0
    assert isinstance(result.exception, CommandError)
    assert "no application from nobody" in str(result.exception)
    result = runner.invoke(app, ["gate", "verify", "u1", "--config", str(path), "--db", db])
    assert isinstance(result.exception, CommandError)


def test_verify_pick_and_record_payment(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "qunyun.yaml"
    groups = [{"id": "g-cred"}, {"id": "g-paid", "playbooks": {"gate": {"mode": "paid", "fee": 20000}}},
              {"id": "g-bounty", "playbooks": {"gate": {"mode": "bounty", "bounties": ["怎么破冰？"]}}}]
    path.write_text(_config({"mode": "credential"}, groups), encoding="utf-8")
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url) as chat:
        chat.event("join_request", "u1", group="g-cred", answers=["微信好友 800"])
        chat.event("join_request", "u2", group="g-paid")
        chat.event("join_request", "u3", group="g-bounty", answers=["悬赏 1 先发红包再提问"])
    common = ["--config", str(path), "--db", db_url]
    assert "verified u1: g-cred" in gate("verify", "u1", *common).stdout
    assert "not enough yet" in gate("record-payment", "u2", "5000", "--group", "g-paid", *common).stdout
    assert ": admitted" in gate("record-payment", "u2", "15000", *common).stdout
    assert "bounty answer: g-bounty" in gate("pick", "u3", "--group", "g-bounty", *common).stdout
    assert "nobody is waiting" in gate("pending", *common).stdout


def test_labels_in_chinese(community: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    path, db = community
    assert "待处理的入群申请" in gate("pending", "--config", str(path), "--db", db).stdout

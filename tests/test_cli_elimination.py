"""`qunyun elimination preview|approve` against a database a Chat filled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.clock import SystemClock
from qunyun.core.errors import CommandError
from qunyun.store.db import open_engine
from qunyun.testing import Chat
from qunyun.testing.harness import DEFAULT_START as START
from qunyun.testing.harness import community_config

runner = CliRunner()
SETTINGS: dict[str, Any] = {"period": "0 10 * * *", "window_days": 7, "grace_days": 7, "deadline_days": 3}


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def _community(db_url: str, tmp_path: Path, start: datetime = START, **over: Any) -> Path:
    """u1 silent, u2 active; from ``start`` (default 2026-11-02 17:00 Shanghai) six days pass."""
    config = community_config({"elimination": {**SETTINGS, **over}}, roles={"admin": ["a1"]})
    path = tmp_path / "qunyun.yaml"
    path.write_text(config, encoding="utf-8")
    with Chat(config, db_url=db_url, start=start) as chat:
        chat.join("u1", "小王")
        chat.join("u2", "小李")
        chat.join("a1", "管理员")
        chat.advance(days=5)
        chat.say("u2", "我在")
        chat.advance(days=1)
    return path


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_preview_json_as_of_a_past_day(db_url: str, tmp_path: Path) -> None:
    config = _community(db_url, tmp_path)
    result = invoke("elimination", "preview", "--config", str(config), "--db", db_url, "--as-of", "2026-11-09", "--json")
    data = json.loads(result.stdout)
    assert data["as_of"] == "2026-11-09"
    [group] = data["groups"]
    assert [w["member"] for w in group["warn"]] == ["u1"]
    assert group["by_status"] == {"below": 1, "active": 1, "protected": 1}
    # earlier, everyone was still in the grace period
    early = json.loads(
        invoke("elimination", "preview", "--config", str(config), "--db", db_url, "--as-of", "2026-11-05", "--json").stdout
    )
    assert early["groups"][0]["warn"] == []


def test_preview_table_changes_nothing(db_url: str, tmp_path: Path) -> None:
    config = _community(db_url, tmp_path)
    db = open_engine(db_url)
    with db.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM actions")).scalar()
    result = invoke("elimination", "preview", "--config", str(config), "--db", db_url, "--as-of", "2026-11-09")
    assert "Elimination preview as of 2026-11-09" in result.stdout
    assert "u1" in result.stdout and "小王" in result.stdout and "messages=0" in result.stdout
    assert "u2" not in result.stdout.split("g-main: members")[0]
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM actions")).scalar() == before
        assert conn.execute(text("SELECT count(*) FROM records WHERE kind = 'warned'")).scalar() == 0
    db.dispose()


def test_preview_in_chinese(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _community(db_url, tmp_path)
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    result = invoke("elimination", "preview", "--config", str(config), "--db", db_url, "--as-of", "2026-11-09")
    assert "淘汰预览（截至 2026-11-09）" in result.stdout and "提醒" in result.stdout


def test_approve_a_prepared_batch(db_url: str, tmp_path: Path) -> None:
    # approve runs on the real clock: the community's days are set 20 days before it
    day0 = datetime.combine((SystemClock().now() - timedelta(days=20)).date(), time(1, 0), UTC)
    config = _community(db_url, tmp_path, start=day0 + timedelta(hours=8), require_approval=True)
    bid = f"warn-{(day0 + timedelta(days=7)):%Y%m%d}-g-main"
    with Chat(config.read_text(encoding="utf-8"), db_url=db_url, start=day0 + timedelta(days=7)) as chat:
        chat.advance(hours=1)  # day 7, 10:00 Shanghai: the period prepares a batch
        assert chat.state("elimination", f"batch:{bid}")["members"][0]["member"] == "u1"
    preview = json.loads(invoke("elimination", "preview", "--config", str(config), "--db", db_url, "--json").stdout)
    assert preview["groups"][0]["pending_batches"] == [bid]
    result = invoke("elimination", "approve", bid, "--exclude", "nobody", "--config", str(config), "--db", db_url, "--json")
    data = json.loads(result.stdout)
    assert data["kind"] == "warn" and data["group"] == "g-main"
    assert data["warned"] == ["u1"]  # measured again today: still silent
    db = open_engine(db_url)
    with db.connect() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT type FROM actions WHERE playbook = 'elimination' ORDER BY seq"))]
    db.dispose()
    assert "direct" in kinds
    again = runner.invoke(app, ["elimination", "approve", bid, "--config", str(config), "--db", db_url])
    assert again.exit_code != 0
    assert isinstance(again.exception, CommandError) and "not pending" in str(again.exception)


def test_approve_rejects_something_that_is_not_a_batch_id(db_url: str, tmp_path: Path) -> None:
    config = _community(db_url, tmp_path)
    result = runner.invoke(app, ["elimination", "approve", "hello", "--config", str(config), "--db", db_url])
    assert isinstance(result.exception, CommandError) and "not a batch id" in str(result.exception)
    bad = runner.invoke(app, ["elimination", "preview", "--config", str(config), "--db", db_url, "--as-of", "soon"])
    assert isinstance(bad.exception, CommandError) and "--as-of" in str(bad.exception)

"""`qunyun sessions list|create|show|stage|questions|summary|cancel` against a database a Chat filled."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.errors import CommandError
from qunyun.testing import Chat, community_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")  # tables wide enough not to fold the cells we look for


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> list[str]:
    """A session held on 2026-11-12 (two questions, one answered), in a config file and a database."""
    config = community_config({"sessions": {"warmups": []}}, roles={"admin": ["boss"]})
    path = tmp_path / "qunyun.yaml"
    path.write_text(config, encoding="utf-8")
    with Chat(config, db_url=db_url) as chat:
        for uid, name in (("sp", "讲者老张"), ("ho", "主持小李"), ("u1", "<b>小王</b>")):
            chat.join(uid, name)
        chat.command("sessions", "create", speaker="sp", host="ho", topic="冷启动 [red]社群[/red]",
                     starts_at="2026-11-12 20:00")
        chat.advance_to(datetime(2026, 11, 12, 12, 0, tzinfo=UTC))
        chat.say("sp", "开讲")
        q = chat.say("u1", "第一批用户从哪来？")
        chat.say("u1", "要不要收费？")
        chat.say("sp", "从身边的朋友开始", reply_to=q)
        chat.advance(hours=2)
    return ["--config", str(path), "--db", db_url]


def sessions(*args: str) -> Any:
    result = runner.invoke(app, ["sessions", *args])
    assert result.exit_code == 0, result.output
    return result


def test_list_show_questions_and_summary(community: list[str]) -> None:
    out = sessions("list", *community).stdout
    assert "Sessions" in out and "冷启动 [red]社群[/red]" in out and "讲者老张" in out and "done" in out
    rows = json.loads(sessions("list", *community, "--json").stdout)
    assert [(r["id"], r["status"], r["questions"], r["answered"]) for r in rows] == [("1", "done", 2, 1)]
    out = sessions("show", "1", *community).stdout
    assert "Session 1: 冷启动 [red]社群[/red]" in out and "邀请讲者" in out and "<b>小王</b>" in out
    assert "从身边的朋友开始" in out
    questions = json.loads(sessions("questions", "1", *community, "--json").stdout)
    assert [(q["text"], q["answer"]) for q in questions] == [("第一批用户从哪来？", "从身边的朋友开始"), ("要不要收费？", None)]
    out = sessions("summary", "1", *community).stdout
    assert "收到问题 2 个，讲者已回复 1 个" in out and "the summary went to the admins" in out


def test_create_stage_and_cancel(community: list[str]) -> None:
    out = sessions("create", *community, "--speaker", "u1", "--host", "ho", "--topic", "第二场",
                   "--at", "2099-06-01 20:00", "--duration", "90", "--owner", "design=u1",
                   "--due", "design=2099-05-20").stdout
    assert "created session 2: 第二场 at 2099-06-01 20:00 in g-main" in out
    assert "stage design updated" in sessions("stage", "2", "design", "--done", *community).stdout
    shown = json.loads(sessions("show", "2", *community, "--json").stdout)
    design = next(st for st in shown["stages"] if st["stage"] == "design")
    assert design["owner"] == "u1" and design["due"] == "2099-05-20" and design["done"] and shown["duration"] == 90
    assert "cancelled session 2" in sessions("cancel", "2", "--reason", "改期", *community).stdout
    rows = json.loads(sessions("list", *community, "--status", "cancelled", "--json").stdout)
    assert [r["id"] for r in rows] == ["2"]


def test_errors_are_explained(community: list[str]) -> None:
    result = runner.invoke(app, ["sessions", "show", "9", *community])
    assert isinstance(result.exception, CommandError) and "no session '9'" in str(result.exception)
    result = runner.invoke(app, ["sessions", "create", *community, "--speaker", "u1", "--topic", "x",
                                 "--at", "2020-01-01 20:00"])
    assert isinstance(result.exception, CommandError) and "not in the future" in str(result.exception)
    result = runner.invoke(app, ["sessions", "create", *community, "--speaker", "u1", "--topic", "x",
                                 "--at", "2099-01-01 20:00", "--due", "design"])
    assert isinstance(result.exception, CommandError) and "STAGE=VALUE" in str(result.exception)
    result = runner.invoke(app, ["sessions", "summary", "2", *community])
    assert isinstance(result.exception, CommandError)


def test_labels_in_chinese(community: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    out = sessions("list", *community).stdout
    assert "分享会" in out and "已结束" in out

"""`qunyun knowledge list|add|enable|disable|edit|remove`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.errors import CommandError
from qunyun.testing import Chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def _config() -> str:
    doc = {"communities": [{
        "id": "demo", "name": "演示社群", "roles": {"admin": ["boss"]},
        "groups": [{"id": "g-main"}],
        "playbooks": {"knowledge": {}, "faq": {"cooldown_minutes": 0}},
    }]}
    return yaml.safe_dump(doc, allow_unicode=True)


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> tuple[Path, str]:
    """A member captured an entry (waiting for review)."""
    path = tmp_path / "qunyun.yaml"
    path.write_text(_config(), encoding="utf-8")
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url) as chat:
        chat.say("u1", "#知识 回放,录屏：回放在群文件<b>里</b>。")
    return path, db_url


def knowledge(*args: str) -> Any:
    result = runner.invoke(app, ["knowledge", *args])
    assert result.exit_code == 0, result.output
    return result


def test_list_add_disable_remove(community: tuple[Path, str], db_url: str) -> None:
    path, db = community
    common = ["--config", str(path), "--db", db]
    out = knowledge("list", *common).stdout
    assert "Knowledge base" in out and "回放, 录屏" in out and "<b>里</b>" in out and "waiting" in out
    assert "added #2: 退款, 退费" in knowledge("add", "退款,退费", "开课 7 天内可退。", *common).stdout
    assert "merged into #2: 退款, 退费, 退钱" in knowledge("add", "退钱", "开课 7 天内可退。", *common).stdout
    assert "enabled #1" in knowledge("enable", "1", *common).stdout
    assert "changed #1" in knowledge("edit", "1", "--answer", "回放在网盘。", *common).stdout
    rows = json.loads(knowledge("list", *common, "--json").stdout)
    assert [(r["id"], r["active"], r["answer"]) for r in rows] == [("1", True, "回放在网盘。"),
                                                                    ("2", True, "开课 7 天内可退。")]
    assert "disabled #2" in knowledge("disable", "2", *common).stdout
    assert [r["id"] for r in json.loads(knowledge("list", "--waiting", "--json", *common).stdout)] == ["2"]
    assert "removed #1" in knowledge("remove", "1", *common).stdout
    assert [r["id"] for r in json.loads(knowledge("list", "--query", "退", "--json", *common).stdout)] == ["2"]
    knowledge("enable", "2", *common)
    # what the CLI did, the chat sees (an engine started after it: the engine caches state)
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url) as chat:
        chat.say("u2", "有回放吗", id="after-cli-1")
        chat.assert_nothing_sent()
        chat.say("u2", "怎么退钱", id="after-cli-2")
        assert [a["text"] for a in chat.take()] == ["开课 7 天内可退。"]


def test_mistakes_are_explained(community: tuple[Path, str]) -> None:
    path, db = community
    result = runner.invoke(app, ["knowledge", "remove", "99", "--config", str(path), "--db", db])
    assert isinstance(result.exception, CommandError) and "no knowledge entry '99'" in str(result.exception)
    result = runner.invoke(app, ["knowledge", "add", "退", "太短的关键词", "--config", str(path), "--db", db])
    assert isinstance(result.exception, CommandError) and "at least 2 characters" in str(result.exception)


def test_labels_in_chinese(community: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    path, db = community
    assert "知识库" in knowledge("list", "--config", str(path), "--db", db).stdout

"""`qunyun link`: the join link's routing table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.core.clock import SystemClock
from qunyun.core.errors import CommandError
from qunyun.testing import Chat

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def _config(capacity: bool = True) -> str:
    community = {
        "id": "demo",
        "name": "读书会",
        "groups": [
            {"id": "g-entry", "name": "活码入口"},
            {"id": "g-1", "name": "读书一群", "capacity": 2},
            {"id": "g-2", "name": "读书二群", "capacity": 3},
            {"id": "g-sh", "name": "上海分舵", "capacity": 10},
        ],
        "playbooks": {
            "capacity": {
                "entry_group": "g-entry",
                "full_at": 1.0,
                "groups": [{"group": "g-1"}, {"group": "g-2"}, {"group": "g-sh", "city": "上海", "exclusive": True}],
            }
        }
        if capacity
        else {"checkin": {}},
    }
    return yaml.safe_dump({"communities": [community]}, allow_unicode=True, sort_keys=False)


@pytest.fixture
def routed(db_url: str, tmp_path: Path) -> tuple[Path, str]:
    """g-1 is full (two members), one newcomer was invited to g-2."""
    path = tmp_path / "qunyun.yaml"
    path.write_text(_config(), encoding="utf-8")
    # `qunyun link` runs on the real clock: so does this history, or the held place would be long gone
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url, start=SystemClock().now()) as chat:
        chat.join("a", group="g-1", via="invite")
        chat.join("b", group="g-1", via="invite")
        chat.event("join_request", "n1", group="g-entry")
        assert ("invite", "g-2") in [(a["type"], a["group"]) for a in chat.take()]
    return path, db_url


def test_link_prints_the_routing_table(routed: tuple[Path, str]) -> None:
    path, db = routed
    result = runner.invoke(app, ["link", "--config", str(path), "--db", db], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "读书会" in out and "g-entry" in out
    lines = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 8}
    assert set(lines) == {"g-1", "g-2", "g-sh"}
    assert "full" in lines["g-1"]
    assert "next" in lines["g-2"] and "city: 上海; exclusive" in lines["g-sh"]
    cells = [c.strip() for c in lines["g-2"].split("│")]
    assert cells[4:9] == ["0", "1", "3", "3", "2"]  # members, held, capacity, full at, room
    assert "next newcomer goes to: g-2" in out
    assert "new group requested: no" in out and "waiting newcomers: 0" in out


def test_link_json_and_chinese(routed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, db = routed
    result = runner.invoke(app, ["link", "-c", str(path), "--db", db, "--community", "demo", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["entry_group"] == "g-entry" and status["next"] == "g-2"
    assert [(g["group"], g["members"], g["held"], g["room"]) for g in status["groups"]] == [
        ("g-1", 2, 0, 0),
        ("g-2", 0, 1, 2),
        ("g-sh", 0, 0, 10),
    ]
    assert status["request"] is None and status["waiting"] == 0
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    result = runner.invoke(app, ["link", "--config", str(path), "--db", db], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "下一位新人将被分到: g-2" in result.stdout and "已满" in result.stdout


def test_link_explains_what_is_missing(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(_config(capacity=False), encoding="utf-8")
    Chat(path.read_text(encoding="utf-8"), db_url=db_url).close()  # a migrated database
    result = runner.invoke(app, ["link", "--config", str(path), "--db", db_url])
    assert isinstance(result.exception, CommandError)
    assert "capacity" in str(result.exception) and "entry_group" in str(result.exception)
    result = runner.invoke(app, ["link", "--config", str(path), "--db", db_url, "--community", "nope"])
    assert isinstance(result.exception, CommandError) and "unknown community" in str(result.exception)

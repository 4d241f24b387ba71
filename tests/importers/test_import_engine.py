"""Imports through the engine and the `qunyun import` command, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.config.model import settings_from_text
from qunyun.core.errors import CommandError
from qunyun.importers import FORMATS
from qunyun.importers.run import import_files, without_playbooks
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

DATA = Path(__file__).resolve().parent.parent / "data" / "import"
runner = CliRunner()

CONFIG = """
communities:
  - id: club
    name: Reading Club
    timezone: Asia/Shanghai
    locale: en
    groups:
      - id: "1987654321"
        platform: telegram
    playbooks:
      welcome:
        batch_size: 1
        batch_minutes: 1
      checkin: {}
"""


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def counts(db_url: str) -> dict[str, int]:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                model.__tablename__: conn.execute(select(func.count()).select_from(m.table(model))).scalar_one()
                for model in (m.EventRow, m.MessageRow, m.Member, m.Membership, m.ActionRow)
            }
    finally:
        engine.dispose()


def members(db_url: str) -> dict[str, str | None]:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            t = m.table(m.Member)
            return {r[0]: r[1] for r in conn.execute(select(t.c.user_id, t.c.name))}
    finally:
        engine.dispose()


def test_importing_the_same_file_twice_changes_nothing(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    try:
        first = import_files(FORMATS["telegram"](), [DATA / "telegram_chat.json"], db=db)
        assert first.outcomes == {"handled": 9} and first.bad_count == 1 and not first.ok
        after_first = counts(db_url)
        assert after_first["events"] == 9
        assert after_first["messages"] == 6
        assert after_first["members"] == 3  # 1001, 1002 and 1003; user1002 and 1002 are one member
        assert after_first["actions"] == 0  # playbooks are off by default
        second = import_files(FORMATS["telegram"](), [DATA / "telegram_chat.json"], db=db)
        assert second.outcomes == {"duplicate": 9}
        assert counts(db_url) == after_first
    finally:
        db.dispose()


def test_settings_without_playbooks() -> None:
    settings = settings_from_text(CONFIG)
    stripped = without_playbooks(settings)
    assert all(not g.playbooks for c in stripped.communities.values() for g in c.groups.values())
    assert all(not c.playbook_specs for c in stripped.communities.values())
    assert settings.communities["club"].groups[("telegram", "1987654321")].playbooks  # the original is untouched


@pytest.mark.parametrize("flag", [[], ["--playbooks"]])
def test_playbooks_run_only_when_asked(db_url: str, tmp_path: Path, flag: list[str]) -> None:
    config = tmp_path / "qunyun.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    result = runner.invoke(
        app, ["import", "telegram", str(DATA / "telegram_chat.json"), "--config", str(config), "--db", db_url, "-q", *flag]
    )
    assert result.exit_code == 1, result.output  # the row without a date
    assert counts(db_url)["events"] == 9
    if flag:
        assert counts(db_url)["actions"] > 0  # welcome greeted the people who joined
    else:
        assert counts(db_url)["actions"] == 0


def test_cli_import_gitter(db_url: str) -> None:
    args = ["import", "gitter", str(DATA / "gitter_room.txt"), "--db", db_url, "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # three bad lines
    assert "gitter_room.txt:1:" in result.output and "gitter_room.txt:5:" in result.output
    assert "gitter_room.txt:6:" in result.output
    assert "import summary" in result.output
    assert counts(db_url)["messages"] == 4
    assert members(db_url) == {"lin": "lin", "qing": "qing"}
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "already there (skipped)" in again.output
    assert counts(db_url)["messages"] == 4


def test_cli_import_irc_keeps_a_renamed_nick_as_one_member(db_url: str) -> None:
    result = runner.invoke(app, ["import", "irc", str(DATA / "irc-demo" / "2024-03-05.txt"), "--db", db_url, "-q"])
    assert result.exit_code == 1, result.output  # one line is not IRC
    assert "qing is now qing_away (same person: qing)" in result.output
    assert members(db_url) == {"lin": "lin", "qing": "qing_away"}
    assert counts(db_url)["messages"] == 6


def test_cli_import_clean_file_exits_zero(db_url: str) -> None:
    result = runner.invoke(
        app, ["import", "telegram", str(DATA / "telegram_full.json"), "--db", db_url, "--community", "history", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "4455667788" in result.output and "1122334455" in result.output
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            t = m.table(m.Community)
            assert [r[0] for r in conn.execute(select(t.c.id))] == ["history"]
    finally:
        engine.dispose()


def test_cli_dry_run_stores_nothing(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = runner.invoke(app, ["import", "discord", str(DATA / "discord.json"), "--dry-run", "--db", f"sqlite:///{db}", "-q"])
    assert result.exit_code == 1, result.output
    assert "dry run" in result.output and "discord.json:161:" in result.output
    assert not db.exists()


def test_cli_import_wechat_in_chinese(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    result = runner.invoke(app, ["import", "wechatmsg", str(DATA / "wechatmsg.csv"), "--db", f"sqlite:///{tmp_path / 'w.db'}", "-q"])
    assert result.exit_code == 1
    assert "导入汇总" in result.output and "坏行" in result.output


def test_cli_refuses_playbooks_without_a_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "gitter", str(DATA / "gitter_room.txt"), "--playbooks", "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert isinstance(result.exception, CommandError)
    assert "--config" in str(result.exception)


def test_cli_rejects_an_unknown_format() -> None:
    result = runner.invoke(app, ["import", "whatsapp", str(DATA / "gitter_room.txt")])
    assert result.exit_code == 2

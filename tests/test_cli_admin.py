"""`qunyun init`, `qunyun migrate` and `qunyun doctor`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli import main
from qunyun.cli.app import app
from qunyun.config import load_settings
from qunyun.core.errors import QunyunError, StoreError
from qunyun.store.db import migrate, open_engine, schema_status

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch the developer's own database: no env URL, a private default file."""
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def head_revision(url: str) -> str:
    engine = open_engine(url)
    try:
        return schema_status(engine)[1]
    finally:
        engine.dispose()


def migrated(url: str) -> str:
    engine = open_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def empty_database(url: str) -> str:
    """An existing database with no schema (for SQLite: create the file)."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    return url


def config_with_database(tmp_path: Path, url: str) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "conf"), "--lang", "en"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "conf" / "qunyun.yaml"
    body = path.read_text(encoding="utf-8")
    body = body.replace("deployment:\n", f"deployment:\n  database: '{url}'\n", 1)
    path.write_text(body, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- init


def test_init_writes_a_starter_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "community"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    path = target / "qunyun.yaml"
    assert path.is_file()
    assert "wrote" in result.output and "qunyun doctor --config" in result.output
    settings = load_settings(str(path))
    assert settings.communities["my-community"].locale == "zh-CN"  # the default language
    assert "下一步" in path.read_text(encoding="utf-8")


def test_init_in_english(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path), "--lang", "en"])
    assert result.exit_code == 0, result.output
    settings = load_settings(str(tmp_path / "qunyun.yaml"))
    assert settings.communities["my-community"].locale == "en"


def test_init_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "qunyun.yaml").is_file()
    assert "qunyun doctor --config qunyun.yaml" in (tmp_path / "qunyun.yaml").read_text(
        encoding="utf-8"
    )


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "qunyun.yaml"
    path.write_text("# my own config\n", encoding="utf-8")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, QunyunError)
    assert "already exists" in str(result.exception)
    assert "--force" in str(result.exception)
    assert path.read_text(encoding="utf-8") == "# my own config\n"


def test_init_force_replaces_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "qunyun.yaml"
    path.write_text("# my own config\n", encoding="utf-8")
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert load_settings(str(path)).communities["my-community"].locale == "en"
    assert (tmp_path / "qunyun.yaml.bak").read_text(encoding="utf-8") == "# my own config\n"
    assert "qunyun.yaml.bak" in result.output


def test_init_rejects_an_unknown_language(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path), "--lang", "fr"])
    assert result.exit_code == 2
    assert "fr" in result.output
    assert not (tmp_path / "qunyun.yaml").exists()


def test_init_into_a_file_is_an_error(tmp_path: Path) -> None:
    afile = tmp_path / "not-a-dir"
    afile.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["init", str(afile)])
    assert isinstance(result.exception, QunyunError)
    assert "not a directory" in str(result.exception)


def test_main_prints_errors_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qunyun.yaml").write_text("x: 1\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["qunyun", "init", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "already exists" in err and "hint:" in err


def test_help_says_what_each_command_does_with_an_example() -> None:
    for command in ("init", "migrate", "doctor", "export"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert f"Example: qunyun {command}" in result.output, command


# ------------------------------------------------------------------- migrate


def test_migrate_creates_the_schema_and_reports_revisions(db_url: str) -> None:
    head = head_revision(db_url)
    result = runner.invoke(app, ["migrate", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert f"empty → {head}" in result.output
    engine = open_engine(db_url)
    try:
        assert schema_status(engine) == (head, head)
    finally:
        engine.dispose()
    again = runner.invoke(app, ["migrate", "--db", db_url])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output and head in again.output


def test_migrate_takes_the_database_from_the_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-config.db'}"
    config = config_with_database(tmp_path, url)
    result = runner.invoke(app, ["migrate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-config.db").is_file()


def test_migrate_defaults_to_the_default_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "qunyun.db").is_file()


def test_migrate_unreachable_database_is_a_clear_error() -> None:
    result = runner.invoke(app, ["migrate", "--db", "postgresql+psycopg://nobody@127.0.0.1:9/none"])
    assert isinstance(result.exception, StoreError)
    assert "cannot open database" in str(result.exception)
    assert "hint:" in str(result.exception)


def test_migrate_bad_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["migrate", "--db", "not a url"])
    assert isinstance(result.exception, StoreError)
    assert "not a database URL" in str(result.exception)


# -------------------------------------------------------------------- doctor


def test_doctor_all_good(tmp_path: Path, db_url: str) -> None:
    migrated(db_url)
    init = runner.invoke(app, ["init", str(tmp_path), "--lang", "en"])
    assert init.exit_code == 0, init.output
    result = runner.invoke(
        app, ["doctor", "--config", str(tmp_path / "qunyun.yaml"), "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    for name in (
        "configuration",
        "database reachable",
        "schema current",
        "playbooks installed",
        "time zones",
    ):
        assert name in result.output
    assert "✗" not in result.output
    assert "all checks passed" in result.output
    assert "checkin v" in result.output
    assert "Asia/Shanghai" in result.output


BAD_CONFIG = """\
communities:
  - id: club
    name: Club
    timezone: Mars/Olympus
    groups:
      - id: g-1
    playbooks:
      checkin:
        pointz: 5
"""


def test_doctor_reports_config_problems_with_lines(tmp_path: Path, db_url: str) -> None:
    migrated(db_url)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG, encoding="utf-8")
    result = runner.invoke(app, ["doctor", "--config", str(bad), "--db", db_url])
    assert result.exit_code == 1, result.output
    assert f"{bad}:4: communities.0.timezone" in result.output
    assert "unknown time zone 'Mars/Olympus'" in result.output
    assert "✗" in result.output and "configuration" in result.output
    # the database checks still ran
    assert "database reachable" in result.output


def test_doctor_reports_unknown_setting_with_its_line(tmp_path: Path, db_url: str) -> None:
    migrated(db_url)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG.replace("Mars/Olympus", "Europe/Berlin"), encoding="utf-8")
    result = runner.invoke(app, ["doctor", "--config", str(bad), "--db", db_url])
    assert result.exit_code == 1, result.output
    assert (
        f"{bad}:9: communities.0.playbooks.checkin.pointz: unknown key (did you mean 'points'?)"
        in result.output
    )
    assert "Europe/Berlin" in result.output


def test_doctor_missing_config_file(tmp_path: Path, db_url: str) -> None:
    migrated(db_url)
    result = runner.invoke(app, ["doctor", "--config", str(tmp_path / "nope.yaml"), "--db", db_url])
    assert result.exit_code == 1
    assert "file not found" in result.output
    assert "qunyun init" in result.output


def test_doctor_unmigrated_database(tmp_path: Path, db_url: str) -> None:
    empty_database(db_url)
    result = runner.invoke(app, ["doctor", "--db", db_url])
    assert result.exit_code == 1, result.output
    assert "schema current" in result.output
    assert "empty database" in result.output
    assert "qunyun migrate --db" in result.output


def test_doctor_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = runner.invoke(app, ["doctor", "--db", f"sqlite:///{path}"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "qunyun migrate" in result.output
    assert not path.exists()


def test_doctor_uses_the_configs_database_unless_db_overrides(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'configured.db'}")
    config = config_with_database(tmp_path, url)
    ok = runner.invoke(app, ["doctor", "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert "configured.db" in ok.output
    overridden = runner.invoke(
        app, ["doctor", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'other.db'}"]
    )
    assert overridden.exit_code == 1
    assert "other.db" in overridden.output


def test_doctor_without_config_says_so(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    result = runner.invoke(app, ["doctor", "--db", url])
    assert result.exit_code == 0, result.output
    assert "pass --config FILE" in result.output


def test_doctor_unreachable_database_hides_the_password() -> None:
    result = runner.invoke(app, ["doctor", "--db", "postgresql://qunyun:s3cret@127.0.0.1:9/none"])
    assert result.exit_code == 1, result.output
    assert "cannot connect" in result.output
    assert "s3cret" not in result.output
    assert "not checked" in result.output  # the schema check is skipped, not failed


def test_init_refuses_to_write_a_starter_that_would_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import Field

    import qunyun.engine.registry as registry_module
    from qunyun.engine import Playbook, PlaybookConfig
    from qunyun.engine.registry import Registry

    class BadConfig(PlaybookConfig):
        size: int = Field(default=-1, ge=0)  # a default its own constraint rejects

    class Bad(Playbook):
        id = "bad"
        config_model = BadConfig

    monkeypatch.setattr(registry_module, "default_registry", lambda: Registry({"bad": Bad}))
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert isinstance(result.exception, QunyunError)
    assert "does not validate" in str(result.exception)
    assert "playbooks.bad.size" in str(result.exception)
    assert not (tmp_path / "qunyun.yaml").exists()


def test_doctor_speaks_chinese_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from qunyun.cli.app import app

    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    result = CliRunner().invoke(app, ["doctor", "--db", f"sqlite:///{tmp_path / 'missing.db'}"])
    assert result.exit_code == 1
    assert "数据库可连接" in result.output and "项检查未通过" in result.output


# ------------------------------------------------------- doctor: the adapters

TG_TOKEN = "123456789:TEST-token_for-the-peer"
BOT_ID = 7000000001  # the loopback peer's getMe

ADAPTER_CONFIG = """\
deployment:
  database: '{url}'
  adapters:
{adapters}
communities:
  - id: club
    name: Club
    locale: en
    groups:
      - {{id: main, platform: {platform}, room: "{room}"}}
      - {{id: admins, platform: {platform}, room: "{admin_room}", admin: true}}
    playbooks:
      checkin: {{}}
"""


class PeerThread:
    """The loopback Telegram Bot API peer on its own event loop (doctor runs its own with asyncio.run)."""

    def __init__(self) -> None:
        import asyncio
        import threading

        from qunyun.adapters.telegram.peer import BotAPIPeer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.peer = asyncio.run_coroutine_threadsafe(BotAPIPeer(TG_TOKEN).start(), self.loop).result(10)

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.peer.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def telegram_peer() -> object:
    peer = PeerThread()
    yield peer.peer
    peer.stop()


def adapter_config(tmp_path: Path, url: str, adapters: str, *, platform: str, room: str, admin_room: str) -> Path:
    path = tmp_path / "qunyun.yaml"
    path.write_text(
        ADAPTER_CONFIG.format(url=url, adapters=adapters, platform=platform, room=room, admin_room=admin_room),
        encoding="utf-8",
    )
    return path


def telegram_config(tmp_path: Path, url: str, base: str) -> Path:
    adapters = f"    - {{type: telegram, token_env: QUNYUN_TEST_TG_TOKEN, api_base: '{base}'}}"
    return adapter_config(tmp_path, url, adapters, platform="telegram", room="-1001234567890",
                          admin_room="-1009876543210")


def test_doctor_checks_the_telegram_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telegram_peer: object
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QUNYUN_TEST_TG_TOKEN", TG_TOKEN)
    config = telegram_config(tmp_path, url, telegram_peer.base)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "telegram (Telegram)" in out and "connected as @qunyun_bot" in out
    assert "telegram group main" in out and "telegram group admins" in out
    assert "privacy mode is on" in out  # the adapter's note is shown under the table
    assert "✗" not in out and "all checks passed" in out
    asked = {c["chat_id"] for c in telegram_peer.calls_to("getChatMember")}  # type: ignore[attr-defined]
    assert asked == {-1001234567890, -1009876543210}
    assert not telegram_peer.calls_to("getUpdates")  # type: ignore[attr-defined]  # doctor takes no updates


def test_doctor_fails_when_the_bot_lacks_its_rights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telegram_peer: object
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QUNYUN_TEST_TG_TOKEN", TG_TOKEN)
    telegram_peer.members[(-1001234567890, BOT_ID)] = {  # type: ignore[attr-defined]
        "user": {"id": BOT_ID, "is_bot": True, "first_name": "qunyun"}, "status": "member",
    }
    config = telegram_config(tmp_path, url, telegram_peer.base)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "1 check failed: telegram group main" in " ".join(result.output.split())


def test_doctor_a_refused_bot_token_is_a_failed_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telegram_peer: object
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QUNYUN_TEST_TG_TOKEN", "999:not-the-token")
    config = telegram_config(tmp_path, url, telegram_peer.base)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "the bot token is refused" in result.output
    assert "@BotFather" in result.output


def test_doctor_a_missing_secret_is_a_failed_check_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.delenv("QUNYUN_TEST_TG_TOKEN", raising=False)
    config = telegram_config(tmp_path, url, "http://127.0.0.1:9")
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    out = " ".join(result.output.split())
    assert "environment variable QUNYUN_TEST_TG_TOKEN is not set" in out
    assert "hint:" in out and "1 check failed: adapters" in out
    assert "configuration" in out and "database reachable" in out  # the other checks still ran


def test_doctor_onebot_without_an_implementation_connected(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    adapters = "    - {type: onebot, version: 11, host: 127.0.0.1, port: 0}"
    config = adapter_config(tmp_path, url, adapters, platform="onebot", room="123456789", admin_room="987654321")
    result = runner.invoke(app, ["doctor", "--config", str(config), "--adapter-wait", "0.2"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "no implementation is connected" in out and "reverse WebSocket" in out

"""`qunyun run`: configuration errors, and a short real run that stops by itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.adapters.config import load_run_config
from qunyun.cli.app import app
from qunyun.core.errors import ConfigError, QunyunError

runner = CliRunner()

BASE = """\
deployment:
{adapters}
communities:
  - id: qq
    name: QQ community
    groups:
      - {{id: qq-main, platform: onebot, room: "123456789"}}
    playbooks:
      checkin: {{}}
"""


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def write(tmp_path: Path, adapters: str) -> Path:
    path = tmp_path / "qunyun.yaml"
    path.write_text(BASE.format(adapters=adapters), encoding="utf-8")
    return path


def run_error(*args: str) -> str:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, QunyunError), result.output
    return str(result.exception)


def test_run_without_adapters_says_what_to_add(tmp_path: Path) -> None:
    path = write(tmp_path, "  adapters: []")
    message = run_error("--config", str(path))
    assert f"{path}:2: deployment.adapters: no adapter is configured" in message
    assert "type: onebot" in message
    path.write_text(BASE.format(adapters="  log_level: info"), encoding="utf-8")
    assert "no adapter is configured" in run_error("--config", str(path))


def test_run_with_invalid_adapters_names_file_line_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    path = write(
        tmp_path,
        "  adapters:\n"
        "    - type: onebot\n"
        "      version: 13\n"
        "      prot: 8080\n"
        "    - type: matrx\n"
        "    - type: onebot\n"
        "      platform: qq\n"
        "      host: 0.0.0.0\n"
        "      access_token_env: NOT_SET_TOKEN\n",
    )
    message = run_error("--config", str(path))
    assert f"{path}:4: deployment.adapters.0.version: Input should be 11 or 12" in message
    assert f"{path}:5: deployment.adapters.0.prot: unknown key (did you mean 'port'?)" in message
    assert f"{path}:6: deployment.adapters.1.type: unknown adapter type 'matrx'" in message
    assert f"{path}:10: deployment.adapters.2.access_token_env: environment variable NOT_SET_TOKEN is not set" in message


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    path = write(tmp_path, "  adapters:\n    - {type: onebot, host: 0.0.0.0}")
    assert "without an access token" in run_error("--config", str(path))


def test_adapter_settings_are_read_with_secrets_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  adapters:\n"
        "    - type: onebot\n"
        "      port: 6199\n"
        "      access_token_env: QQ_TOKEN\n"
        "      secret_env: QQ_SECRET\n"
        "      limits: {per_group: {count: 10, per_seconds: 60}, overall: null}\n"
        "      retry: {max_attempts: 4}\n",
    )
    settings, [opts] = load_run_config(str(path), env={"QQ_TOKEN": "t0k", "QQ_SECRET": "s3c"})
    assert "qq" in settings.communities
    assert (opts.port, opts.access_token, opts.secret, opts.max_attempts) == (6199, "t0k", "s3c", 4)
    assert opts.limits.per_group is not None and opts.limits.per_group.count == 10 and opts.limits.overall is None
    with pytest.raises(ConfigError, match="QQ_TOKEN is not set"):
        load_run_config(str(path), env={})


def test_telegram_and_matrix_adapters_are_read_and_built(tmp_path: Path) -> None:
    from qunyun.adapters.config import MatrixOptions
    from qunyun.adapters.matrix.adapter import MatrixAdapter
    from qunyun.adapters.telegram.adapter import TelegramAdapter
    from qunyun.adapters.telegram.settings import TelegramOptions
    from qunyun.cli.run import _adapter
    from qunyun.core.clock import SystemClock

    path = write(
        tmp_path,
        "  adapters:\n"
        "    - {type: onebot, port: 0, platform: qq}\n"
        "    - {type: telegram, token_env: TG_TOKEN, concurrency: 3}\n"
        "    - {type: matrix, homeserver: 'http://127.0.0.1:8008', user_id: '@bot:localhost',"
        " access_token_env: MX_TOKEN}\n",
    )
    env = {"TG_TOKEN": "123456:ABCdef_ghiJKL", "MX_TOKEN": "syt_abc"}
    settings, options = load_run_config(str(path), env=env)
    tg, mx = options[1], options[2]
    assert isinstance(tg, TelegramOptions) and isinstance(mx, MatrixOptions)
    assert mx.access_token == "syt_abc" and "syt_abc" not in repr(mx)
    assert (options[0].concurrency, tg.concurrency, mx.concurrency) == (8, 3, 8)
    assert isinstance(_adapter(tg, settings, SystemClock()), TelegramAdapter)
    assert isinstance(_adapter(mx, settings, SystemClock()), MatrixAdapter)
    with pytest.raises(ConfigError) as err:
        load_run_config(str(path), env={"TG_TOKEN": "123456:ABCdef_ghiJKL"})
    assert "MX_TOKEN is not set" in str(err.value) and "deployment.adapters.2" in str(err.value)


def test_a_short_real_run_stops_by_itself(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    path = write(tmp_path, "  adapters:\n    - {type: onebot, port: 0}")
    result = runner.invoke(app, ["run", "--config", str(path), "--db", db, "--max-seconds", "0.3"])
    assert result.exit_code == 0, result.output
    assert "run summary" in result.stdout
    assert "--max-seconds" in result.stdout


def test_run_needs_a_migrated_database(tmp_path: Path) -> None:
    path = write(tmp_path, "  adapters:\n    - {type: onebot, port: 0}")
    message = run_error("--config", str(path), "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert "does not exist" in message and "qunyun migrate" in message

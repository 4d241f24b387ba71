"""``qunyun demo`` ends by serving the console with a sign-in it prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.console.app import create_app
from tests.console.browser import free_port
from tests.console.conftest import login


def test_demo_prints_a_working_sign_in_and_serves_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def fake_serve(config: Path, db: str | None, **options: Any) -> None:
        served.update(config=config, db=db, **options)

    monkeypatch.setattr("qunyun.cli.console.serve_console", fake_serve)
    port = free_port()
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--groups", "1", "--members", "40", "--days", "5", "--lang", "en", "--out", str(out), "--port", str(port)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"http://127.0.0.1:{port}/" in result.output
    found = re.search(r"Sign in: (\S+) / (\S+)", result.output)
    assert found, result.output
    user, password = found.groups()
    assert served["host"] == "127.0.0.1" and served["port"] == port and served["config"] == out / "qunyun.yaml"
    assert served["announce"] is False and "Press Ctrl+C to stop." in result.output  # said once, in the demo's language

    client = TestClient(create_app(served["config"], served["db"]), base_url="http://127.0.0.1")
    assert login(client, user, "not the password").headers["location"] == "/login?error=invalid"
    answer = login(client, user, password)
    assert answer.headers["location"] == "/"
    assert client.get("/", follow_redirects=False).headers["location"].endswith("/overview")


def test_demo_refuses_a_busy_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr("qunyun.cli.console.serve_console", lambda *a, **k: pytest.fail("must not serve"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        outputs = {}
        for lang in ("en", "zh-CN"):  # the demo speaks its --lang (zh-CN unless told)
            result = CliRunner().invoke(app, ["demo", "--groups", "1", "--members", "30", "--days", "2", "--lang",
                                              lang, "--out", str(tmp_path / lang), "--port", str(port)])
            assert result.exit_code == 2, result.output
            outputs[lang] = "".join(result.output.split())
    assert f"port{port}" in outputs["en"] and "inuse" in outputs["en"]
    assert f"端口{port}已被占用" in outputs["zh-CN"] and "inuse" not in outputs["zh-CN"]

"""`qunyun digest`: a period's documents, the book, a member's archive."""

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


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> tuple[Path, str]:
    """Two essence entries on 2026-11-02 (one hostile), one in December."""
    doc = {"communities": [{
        "id": "demo", "name": "演示社群", "timezone": "Asia/Shanghai", "roles": {"admin": ["boss"]},
        "groups": [{"id": "g-main"}],
        "playbooks": {"essence": {}, "digest": {"daily": None}},
    }]}
    path = tmp_path / "qunyun.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with Chat(path.read_text(encoding="utf-8"), db_url=db_url) as chat:
        for user, name, text in (("u1", "小王", "先写下判断依据，再对照结果复盘。"),
                                 ("u2", "<i>Bob</i>", "<script>alert(1)</script> 模板在群文件")):
            msg = chat.say(user, text, name=name)
            chat.say("boss", "精华", reply_to=msg)
        chat.advance(days=30)
        msg = chat.say("u1", "十二月的一条精华。")
        chat.say("boss", "精华", reply_to=msg)
    return path, db_url


def digest(*args: str) -> Any:
    result = runner.invoke(app, ["digest", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_day_is_written_in_both_formats(community: tuple[Path, str], tmp_path: Path) -> None:
    path, db = community
    out = tmp_path / "site"
    said = digest("--config", str(path), "--db", db, "--date", "2026-11-02", "--out", str(out)).stdout
    assert "wrote 2 files" in said and "2 entries by 2 authors (2026-11-02)" in said
    md = (out / "digest-2026-11-02.md").read_text(encoding="utf-8")
    html = (out / "digest-2026-11-02.html").read_text(encoding="utf-8")
    assert "小王" in md and "\\<script\\>" in md and "\\<i\\>Bob\\</i\\>" in md
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;i&gt;Bob&lt;/i&gt;" in html


def test_a_week_in_one_format_and_an_empty_day(community: tuple[Path, str], tmp_path: Path) -> None:
    path, db = community
    out = tmp_path / "w"
    said = digest("--config", str(path), "--db", db, "--period", "week", "--date", "2026-11-04",
                  "--format", "md", "--out", str(out)).stdout
    assert "(2026-W45)" in said
    assert [p.name for p in out.iterdir()] == ["digest-2026-W45.md"]
    said = digest("--config", str(path), "--db", db, "--date", "2026-11-05", "--out", str(tmp_path / "none")).stdout
    assert "no essence in 2026-11-05: nothing written" in said
    assert not (tmp_path / "none").exists()


def test_the_book(community: tuple[Path, str], tmp_path: Path) -> None:
    path, db = community
    out = tmp_path / "book"
    said = digest("--config", str(path), "--db", db, "--book", "--out", str(out)).stdout
    assert "2 chapters, 3 entries by 2 authors" in said
    md = (out / "book-month.md").read_text(encoding="utf-8")
    assert "2026 年 11 月" in md and "2026 年 12 月" in md and "作者索引" in md
    assert (out / "book-month.html").exists()


def test_the_archive(community: tuple[Path, str]) -> None:
    path, db = community
    said = digest("--config", str(path), "--db", db, "--archive", "u1").stdout
    assert "Talent archive of 小王 (u1)" in said and "points: 40" in said
    assert "十二月的一条精华" in said
    found = json.loads(digest("--config", str(path), "--db", db, "--archive", "u1", "--json").stdout)
    assert len(found["essence"]) == 2 and found["answers"] == []


def test_mistakes_are_explained(community: tuple[Path, str]) -> None:
    path, db = community
    result = runner.invoke(app, ["digest", "--config", str(path), "--db", db])
    assert isinstance(result.exception, CommandError) and "--out is required" in str(result.exception)
    result = runner.invoke(app, ["digest", "--config", str(path), "--db", db, "--out", "x", "--date", "soon"])
    assert isinstance(result.exception, CommandError) and "neither a day" in str(result.exception)
    result = runner.invoke(app, ["digest", "--config", str(path), "--db", db, "--out", "x", "--format", "pdf"])
    assert isinstance(result.exception, CommandError)

"""`qunyun members search|show|export|erase`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.testing import Chat, community_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))


def _community(db_url: str, tmp_path: Path, sharing: str = "community") -> list[str]:
    """A directory of three members; returns the common options (--config, --db)."""
    text = community_config({"checkin": {}, "profile": {"sharing": sharing}}, roles={"admin": ["boss"]})
    path = tmp_path / "qunyun.yaml"
    path.write_text(text, encoding="utf-8")
    with Chat(text, db_url=db_url) as chat:
        chat.say("u1", "城市：上海\n擅长：运营、增长\n公司：星辰科技", name="小王")
        chat.say("u2", "城市：上海\n擅长：设计", name="小李")
        chat.say("u3", "城市：北京\n擅长：运营", name="老张")
        chat.say("u3", "退出名录")
        chat.say("u1", "打卡 今天读完一本书")
        chat.assert_ledger_balanced()
    return ["--config", str(path), "--db", db_url]


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def test_search_as_admin_and_as_member(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path)
    out = run("members", "search", *opts, "--city", "上海", "--expertise", "运营")
    assert "小王" in out and "星辰科技" in out and "小李" not in out and "1 found" in out
    out = run("members", "search", *opts, "--city", "上海", "--as", "member")
    assert "小王" not in out and "星辰科技" not in out and "hidden" in out and "2 found" in out
    rows = json.loads(run("members", "search", *opts, "运营", "--json"))["rows"]
    assert [r["member"] for r in rows] == ["u1"]  # u3 opted out of the directory
    assert "no member matches" in run("members", "search", *opts, "--tag", "city:火星")


def test_search_when_the_directory_is_for_admins_only(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path, sharing="admins")
    assert "open to admins only" in run("members", "search", *opts, "上海", "--as", "member")
    assert "2 found" in run("members", "search", *opts, "上海")


def test_show_by_id_or_name(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path)
    out = run("members", "show", "小王", *opts)
    assert "u1" in out and "星辰科技" in out and "city:上海" in out and "10" in out  # the check-in points
    out = run("members", "show", "u3", *opts)
    assert "老张" in out and "in the directory" in out
    result = runner.invoke(app, ["members", "show", "nobody", *opts])
    assert result.exit_code != 0 and "no member 'nobody'" in str(result.exception)


def test_export_to_stdout_and_file(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path)
    data = json.loads(run("members", "export", "u1", *opts))
    assert data["member"]["name"] == "小王"
    assert data["playbooks"]["profile"]["m:u1"]["fields"]["company"] == "星辰科技"
    assert any(msg["text"] == "打卡 今天读完一本书" for msg in data["messages"])
    target = tmp_path / "u1.json"
    run("members", "export", "小王", *opts, "--out", str(target))
    assert json.loads(target.read_text(encoding="utf-8"))["user_id"] == "u1"


def test_erase_asks_first_then_erases(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path)
    out = run("members", "erase", "u1", *opts, input="n\n", code=1)
    assert "Erase all personal data of 小王 (u1)?" in out
    assert json.loads(run("members", "export", "u1", *opts))["member"]["name"] == "小王"  # untouched
    out = run("members", "erase", "u1", *opts, input="y\n")
    assert "now erased-" in out
    data = json.loads(run("members", "export", "u1", *opts))
    assert data["member"]["erased"] is True and "小王" not in json.dumps(data, ensure_ascii=False)
    assert not data["playbooks"]["profile"]
    assert "小王" not in run("members", "search", *opts, "上海")
    out = run("members", "erase", "u2", *opts, "--yes")
    assert "小李 (u2)" in out


def test_options_are_checked(db_url: str, tmp_path: Path) -> None:
    opts = _community(db_url, tmp_path)
    result = runner.invoke(app, ["members", "search", *opts, "--community", "nope"])
    assert result.exit_code != 0 and "unknown community" in str(result.exception)
    result = runner.invoke(app, ["members", "show", "u1", *opts, "--platform", "telegram"])
    assert result.exit_code != 0 and "no groups on platform 'telegram'" in str(result.exception)
    assert "search" in run("members", "--help")


def test_a_refusal_is_printed_in_the_operators_language(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from qunyun.cli import main
    from qunyun.core.errors import Msg

    monkeypatch.setenv("COLUMNS", "200")  # one line: a wrap inside Chinese text would add a space when joined
    opts = _community(db_url, tmp_path)
    community = yaml.safe_load(Path(opts[1]).read_text(encoding="utf-8"))["communities"][0]["id"]
    reason = Msg("no member {member!r} in community {community!r} on {platform}",
                 member="nobody", community=community, platform="sim")
    for lang, label, text, other in (("zh-CN", "错误:", reason.in_lang("zh-CN"), str(reason)),
                                     ("en", "error:", str(reason), reason.in_lang("zh-CN"))):
        monkeypatch.setenv("QUNYUN_LANG", lang)
        monkeypatch.setattr("sys.argv", ["qunyun", "members", "show", "nobody", *opts])
        with pytest.raises(SystemExit) as stopped:
            main()
        assert stopped.value.code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert err.startswith(label) and text in err and other not in err, err
    assert text != other and "没有成员 'nobody'" in reason.in_lang("zh-CN")

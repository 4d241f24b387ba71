"""What the CLI prints reads in zh-CN when QUNYUN_LANG is zh-CN, and stays as it was in en."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.cli.i18n import _TEXTS
from qunyun.testing import Chat, community_config

from .test_cli_admin import BOT_ID, TG_TOKEN, empty_database, migrated, telegram_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")  # tables wide enough not to fold the cells we look for


def run(lang: str, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args), env={"QUNYUN_LANG": lang})
    assert result.exit_code == code, result.output
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------- doctor


def test_doctor_without_config_and_with_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    url = f"sqlite:///{missing}"
    zh = flat(run("zh-CN", "doctor", "--db", url, code=1).output)
    assert "未检查：请用 --config FILE 指定配置文件" in zh
    assert "SQLite 数据库文件不存在" in zh and f"{missing} 不存在" in zh
    assert f"提示: 用 `qunyun migrate --db {url}` 创建它，或检查路径是否正确" in zh
    assert "未检查：数据库无法连接" in zh
    assert "Asia/Shanghai (UTC+08:00)（默认）" in zh
    assert "1 项检查未通过：数据库可连接" in zh
    for english in ("not checked", "does not exist", "hint", "create it with", "(default)", "check failed"):
        assert english not in zh
    en = flat(run("en", "doctor", "--db", url, code=1).output)
    assert "not checked: pass --config FILE" in en
    assert "SQLite file does not exist" in en and f"{missing} does not exist" in en
    assert f"hint: create it with `qunyun migrate --db {url}`, or check the path" in en
    assert "not checked: the database is not reachable" in en
    assert "Asia/Shanghai (UTC+08:00) (default)" in en
    assert "1 check failed: database reachable" in en
    assert not missing.exists()


BAD_ZONE = """\
communities:
  - id: club
    name: Club
    timezone: Mars/Olympus
    groups:
      - id: g-1
    playbooks:
      checkin: {}
"""


def test_doctor_with_a_broken_config(tmp_path: Path, db_url: str) -> None:
    migrated(db_url)
    config = tmp_path / "qunyun.yaml"
    config.write_text(BAD_ZONE, encoding="utf-8")
    args = ("doctor", "--config", str(config), "--db", db_url)
    zh = flat(run("zh-CN", *args, code=1).output)
    assert f"{config}：1 个问题" in zh
    assert "找不到 Mars/Olympus" in zh and "未知时区 'Mars/Olympus'" in zh
    assert "提示: 请使用 Asia/Shanghai 这样的 IANA 时区名" in zh
    assert "2 项检查未通过：配置文件、时区" in zh
    for english in ("1 problem", "not found", "unknown time zone", "hint", "use IANA names", "checks failed"):
        assert english not in zh
    en = flat(run("en", *args, code=1).output)
    assert f"{config}: 1 problem" in en and "1 problems" not in en
    assert "Mars/Olympus not found" in en and "unknown time zone 'Mars/Olympus'" in en
    assert "hint: use IANA names like Asia/Shanghai; if those fail too, `pip install tzdata`" in en
    assert "2 checks failed: configuration, time zones" in en


def test_doctor_all_good_and_on_an_unmigrated_database(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "qunyun.yaml"
    config.write_text(community_config({"checkin": {}}), encoding="utf-8")
    args = ("doctor", "--config", str(config), "--db", db_url)
    empty_database(db_url)
    zh = flat(run("zh-CN", *args, code=1).output)
    assert "空数据库（尚未建表），最新为" in zh and "提示: 请运行 `qunyun migrate --db" in zh
    assert "at nothing" not in zh and "head is" not in zh and "hint" not in zh
    en = flat(run("en", *args, code=1).output)
    assert "at nothing (empty database), head is" in en and "hint: run `qunyun migrate --db" in en

    migrated(db_url)
    zh = flat(run("zh-CN", *args).output)
    assert f"{config}：1 个社群，1 个群；玩法：checkin" in zh
    assert "（最新）" in zh and "全部检查通过" in zh
    assert "community" not in zh and "(head)" not in zh and "playbooks:" not in zh
    en = flat(run("en", *args).output)
    assert f"{config}: 1 community, 1 group; playbooks: checkin" in en
    assert "(head)" in en and "all checks passed" in en


def test_doctor_shows_the_adapters_checks_in_chinese(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telegram_peer: Any
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QUNYUN_TEST_TG_TOKEN", TG_TOKEN)
    telegram_peer.members[(-1001234567890, BOT_ID)] = {
        "user": {"id": BOT_ID, "is_bot": True, "first_name": "qunyun"}, "status": "left",
    }
    config = telegram_config(tmp_path, url, telegram_peer.base)
    zh = flat(run("zh-CN", "doctor", "--config", str(config), code=1).output)
    assert "隐私模式已开启" in zh and "机器人不在这个群里" in zh and "把机器人拉进群，并设为管理员" in zh
    # sentences and check names that carry data, too
    assert f"telegram（Telegram） │ 已连接，身份为 @qunyun_bot（id {BOT_ID}）" in zh
    assert "telegram 群 admins │ 机器人是管理员，拥有所需的权限" in zh
    assert "telegram 群 main: 把机器人拉进群" in zh and "✗ 1 项检查未通过：telegram 群 main" in zh
    for english in ("privacy mode is on", "add the bot to the group", "connected as", "telegram group", "(Telegram)"):
        assert english not in zh, english
    en = flat(run("en", "doctor", "--config", str(config), code=1).output)
    assert "privacy mode is on" in en and "the bot is not in this group" in en
    assert "add the bot to the group and make it an administrator" in en
    assert f"telegram (Telegram) │ connected as @qunyun_bot (id {BOT_ID})" in en
    assert "telegram group admins │ the bot is an administrator with the rights it needs" in en
    assert "✗ 1 check failed: telegram group main" in en
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in en), en


def test_doctor_lists_missing_rights_in_the_operators_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telegram_peer: Any
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QUNYUN_TEST_TG_TOKEN", TG_TOKEN)
    telegram_peer.members[(-1001234567890, BOT_ID)] = {
        "user": {"id": BOT_ID, "is_bot": True, "first_name": "qunyun"}, "status": "administrator",
        "can_delete_messages": True,
    }
    config = telegram_config(tmp_path, url, telegram_peer.base)
    zh = flat(run("zh-CN", "doctor", "--config", str(config), code=1).output)
    assert "机器人是管理员，但缺少 can_invite_users、can_pin_messages、can_restrict_members 权限" in zh
    assert "invite、mute、pin、remove 在这里会失败；请在群的管理员设置里授予这些权限" in zh
    en = flat(run("en", "doctor", "--config", str(config), code=1).output)
    assert "the bot is an administrator without can_invite_users, can_pin_messages, can_restrict_members" in en
    assert "invite, mute, pin, remove will fail here; grant the rights in the group's admin settings" in en


def test_a_listing_joins_and_translates_its_items() -> None:
    from qunyun.adapters.base import listing
    from qunyun.core.errors import Msg

    items = listing([Msg("{what} (needs {level})", what=Msg("remove members"), level=50), "x", Msg("pin")])
    assert items == "remove members (needs 50), x, pin"
    assert Msg("the bot's power level {level} is too low to {missing}", level=0, missing=items).in_lang("zh-CN") \
        == "机器人的权限等级 0 太低，无法移出成员（需要 50）、x、置顶"
    assert listing(["only"]) == "only" and listing([]) == ""


@pytest.fixture
def telegram_peer() -> Any:
    from .test_cli_admin import PeerThread

    peer = PeerThread()
    yield peer.peer
    peer.stop()


def test_every_entry_has_the_placeholders_of_its_key() -> None:
    import string

    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    for key, langs in _TEXTS.items():
        assert fields(langs["zh-CN"]) == fields(key), key


# ------------------------------------------------------ init and migrate


def test_init_summary(tmp_path: Path) -> None:
    target = tmp_path / "c" / "qunyun.yaml"
    zh = run("zh-CN", "init", str(tmp_path / "c")).output
    assert f"已写入 {target}（zh-CN）" in flat(zh) and "个社群" in zh and "下一步：" in zh
    assert f"编辑 {target}" in flat(zh) and "✓ wrote" not in zh and "next:" not in zh
    en = flat(run("en", "init", str(tmp_path / "c"), "--force").output)
    assert f"wrote {target} (zh-CN)" in en and f"the previous file is now {target}.bak" in en
    assert "1 community, " in en and "next:" in en and f"edit {target}" in en
    zh = flat(run("zh-CN", "init", str(tmp_path / "c"), "--force").output)
    assert f"原来的文件已改名为 {target}.bak" in zh


def test_migrate_reports_revisions(db_url: str) -> None:
    zh = run("zh-CN", "migrate", "--db", db_url).output
    assert "数据库结构 空 →" in zh and "（最新" in zh and "schema" not in zh
    zh = run("zh-CN", "migrate", "--db", db_url).output
    assert "数据库结构已是最新" in zh and "无需操作" in zh and "nothing to do" not in zh
    en = run("en", "migrate", "--db", db_url).output
    assert "schema is current (" in en and "); nothing to do" in en


def test_migrate_in_english_from_empty(db_url: str) -> None:
    en = run("en", "migrate", "--db", db_url).output
    assert ": schema empty → " in en and "(head " in en


# ------------------------------------------------- commands on a database


@pytest.fixture
def community(tmp_path: Path, db_url: str) -> list[str]:
    """u1 silent, u2 active; a held session of 60 minutes; a fund; points from check-ins."""
    settings = {"period": "0 10 * * *", "window_days": 7, "grace_days": 30, "deadline_days": 3}
    config = community_config(
        {"elimination": settings, "checkin": {}, "fund": {}, "sessions": {"warmups": []}},
        roles={"admin": ["boss"]},
    )
    path = tmp_path / "qunyun.yaml"
    path.write_text(config, encoding="utf-8")
    with Chat(config, db_url=db_url) as chat:
        for uid, name in (("u1", "小王"), ("u2", "小李"), ("boss", "老板")):
            chat.join(uid, name)
        chat.command("sessions", "create", speaker="u2", host="boss", topic="冷启动",
                     starts_at="2026-11-12 20:00")
        chat.pay("u2", 5000, "CNY", "捐赠")
        chat.advance(days=5)
        chat.say("u2", "打卡")
        chat.advance(days=1)
    return ["--config", str(path), "--db", db_url]


def test_elimination_preview_counts(community: list[str]) -> None:
    import json

    args = ("elimination", "preview", *community, "--as-of", "2026-11-08")
    [group] = json.loads(run("en", *args, "--json").stdout)["groups"]
    assert group["by_status"]  # each member's standing is counted
    zh = flat(run("zh-CN", *args).output)
    en = flat(run("en", *args).output)
    zh_of = {"active": "达标", "below": "未达标", "grace": "新人宽限期", "protected": "受保护"}
    for status, count in group["by_status"].items():
        assert f"{zh_of[status]} {count}" in zh and f"{status} {count}" not in zh
        assert f"{status} {count}" in en
    assert f"成员数 {group['members']} (" in zh and f"members {group['members']} (" in en


def test_members_show_the_membership_status(community: list[str]) -> None:
    zh = flat(run("zh-CN", "members", "show", "u1", *community).output)
    assert "(在群)" in zh and "(active)" not in zh
    en = flat(run("en", "members", "show", "u1", *community).output)
    assert "(active)" in en


def test_sessions_show_minutes(community: list[str]) -> None:
    zh = run("zh-CN", "sessions", "show", "1", *community).output
    assert "(60 分钟)" in zh and " min)" not in zh
    en = run("en", "sessions", "show", "1", *community).output
    assert "(60 min)" in en


def test_ledger_account_kinds(community: list[str]) -> None:
    zh = run("zh-CN", "ledger", *community).output
    assert "系统" in zh and "system" not in zh
    en = run("en", "ledger", *community).output
    assert "system" in en and "系统" not in en


def test_export_summary(community: list[str], tmp_path: Path) -> None:
    db = community[community.index("--db") + 1]
    for kind, fmt, zh_text, en_text in (
        ("members", "json", "位成员写入", "members to"),
        ("actions", "json", "条动作写入", "actions to"),
        ("groups", "json", "个群写入", "groups to"),
        ("ledger", "csv", "条分录写入", "postings to"),
        ("ledger", "json", "个账户和交易写入", "accounts and transactions to"),
    ):
        out = tmp_path / f"{kind}.{fmt}"
        zh = run("zh-CN", "export", kind, "--db", db, "--format", fmt, "--out", str(out)).stderr
        assert zh.startswith("已把 ") and f"{zh_text} {out}" in zh and "wrote" not in zh
        en = run("en", "export", kind, "--db", db, "--format", fmt, "--out", str(out)).stderr
        assert en.startswith("wrote ") and f"{en_text} {out}" in en


def test_report_timings(community: list[str], tmp_path: Path) -> None:
    db = community[community.index("--db") + 1]
    args = ("report", "--db", db, "--lang", "en")
    zh = flat(run("zh-CN", *args, "--out", str(tmp_path / "zh")).output)
    assert "用时: 计算指标 " in zh and " 秒 · " in zh and not zh.rstrip().endswith(" s")
    en = flat(run("en", *args, "--out", str(tmp_path / "en")).output)
    assert "time: metrics " in en and " s · files " in en


# ------------------------------------------------------------ demo and import


def test_the_demo_refuses_in_its_language(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    small = ("demo", "--groups", "1", "--members", "5", "--days", "1", "--no-console", "--out", str(a_file))
    zh = flat(run("en", *small, "--lang", "zh-CN", code=2).output)
    assert "错误: " in zh and "exists and is not a directory 提示: choose another --out" in zh
    assert "error:" not in zh and "hint:" not in zh
    en = flat(run("zh-CN", *small, "--lang", "en", code=2).output)
    assert "error: " in en and "exists and is not a directory hint: choose another --out" in en
    assert "错误" not in en
    assert a_file.read_text() == "x"


def test_import_names_a_problem_in_the_operators_language(tmp_path: Path) -> None:
    later, earlier = tmp_path / "a.txt", tmp_path / "b.txt"
    later.write_text("[2024-03-05 10:00:00] <lin> later message\n", encoding="utf-8")
    earlier.write_text("[2024-03-05 09:00:00] <qing> earlier message\n", encoding="utf-8")
    args = ("import", "gitter", str(later), str(earlier), "-g", "room", "--window", "0", "--batch", "1", "-q")
    zh = run("zh-CN", *args, "--db", f"sqlite:///{tmp_path / 'zh.db'}").output
    assert zh.startswith("乱序（已写入） gitter:room:"), zh
    en = run("en", *args, "--db", f"sqlite:///{tmp_path / 'en.db'}").output
    assert en.startswith("late gitter:room:"), en

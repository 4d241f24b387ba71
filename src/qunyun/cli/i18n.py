"""The language of what the CLI prints: zh-CN or en.

``QUNYUN_LANG`` decides (``zh-CN`` or ``en``); otherwise the system locale
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``): a Chinese locale gives zh-CN,
anything else en. Labels are translated; technical details (paths, URLs,
error texts from libraries) stay as they are.
"""

from __future__ import annotations

import os

_TEXTS: dict[str, dict[str, str]] = {
    # replay summary
    "replay summary": {"zh-CN": "重放汇总"},
    "events read": {"zh-CN": "读入事件"},
    "handled": {"zh-CN": "已处理"},
    "late": {"zh-CN": "迟到（已处理）"},
    "duplicate": {"zh-CN": "重复（跳过）"},
    "rejected": {"zh-CN": "被拒绝"},
    "failed": {"zh-CN": "失败"},
    "bad lines (skipped)": {"zh-CN": "坏行（已跳过）"},
    "scheduled jobs fired": {"zh-CN": "定时任务执行次数"},
    "playbook failures (rolled back)": {"zh-CN": "玩法出错（已回滚）"},
    "actions delivered to file": {"zh-CN": "写入文件的动作"},
    "time": {"zh-CN": "用时"},
    "bad line": {"zh-CN": "坏行"},
    "and {n} more bad lines": {"zh-CN": "……另有 {n} 个坏行"},
    "{s:.1f} s ({r:,.0f} events/s)": {"zh-CN": "{s:.1f} 秒（{r:,.0f} 事件/秒）"},
    # console accounts
    "Password": {"zh-CN": "密码"},
    # doctor
    "adapters": {"zh-CN": "适配器"},
    "check": {"zh-CN": "检查项"},
    "result": {"zh-CN": "结果"},
    "configuration": {"zh-CN": "配置文件"},
    "database reachable": {"zh-CN": "数据库可连接"},
    "schema current": {"zh-CN": "数据库结构为最新"},
    "playbooks installed": {"zh-CN": "已安装的玩法"},
    "time zones": {"zh-CN": "时区"},
    "all checks passed": {"zh-CN": "全部检查通过"},
    "{n} check failed: {names}": {"zh-CN": "{n} 项检查未通过：{names}"},
    "{n} checks failed: {names}": {"zh-CN": "{n} 项检查未通过：{names}"},
    "hint": {"zh-CN": "提示"},
    "none": {"zh-CN": "无"},
    "not checked: pass --config FILE": {"zh-CN": "未检查：请用 --config FILE 指定配置文件"},
    "{config}: {n} problem": {"zh-CN": "{config}：{n} 个问题"},
    "{config}: {n} problems": {"zh-CN": "{config}：{n} 个问题"},
    "{n} problem": {"zh-CN": "{n} 个问题"},
    "{n} problems": {"zh-CN": "{n} 个问题"},
    "{config}: cannot be checked": {"zh-CN": "{config}：无法检查"},
    "{config}: {c} community, {g} group; playbooks: {names}": {
        "zh-CN": "{config}：{c} 个社群，{g} 个群；玩法：{names}"
    },
    "{config}: {c} community, {g} groups; playbooks: {names}": {
        "zh-CN": "{config}：{c} 个社群，{g} 个群；玩法：{names}"
    },
    "{config}: {c} communities, {g} group; playbooks: {names}": {
        "zh-CN": "{config}：{c} 个社群，{g} 个群；玩法：{names}"
    },
    "{config}: {c} communities, {g} groups; playbooks: {names}": {
        "zh-CN": "{config}：{c} 个社群，{g} 个群；玩法：{names}"
    },
    "reinstall qunyun: the built-in playbooks are missing": {
        "zh-CN": "请重新安装 qunyun：内置玩法缺失"
    },
    "SQLite file does not exist": {"zh-CN": "SQLite 数据库文件不存在"},
    "{path} does not exist": {"zh-CN": "{path} 不存在"},
    "create it with `qunyun migrate --db {url}`, or check the path": {
        "zh-CN": "用 `qunyun migrate --db {url}` 创建它，或检查路径是否正确"
    },
    "{url}: cannot connect": {"zh-CN": "{url}：无法连接"},
    "check the URL, that the server is running, and that you may connect": {
        "zh-CN": "请检查数据库 URL、服务器是否在运行，以及是否有权限连接"
    },
    "not checked: the database is not reachable": {"zh-CN": "未检查：数据库无法连接"},
    "at {head} (head)": {"zh-CN": "已是 {head}（最新）"},
    "at {current}, which this qunyun does not know (head {head})": {
        "zh-CN": "当前为 {current}，本版 qunyun 不认识这个版本（最新为 {head}）"
    },
    "the database was migrated by a newer qunyun; upgrade qunyun": {
        "zh-CN": "数据库已被更新版本的 qunyun 迁移过，请升级 qunyun"
    },
    "at {current}, head is {head}": {"zh-CN": "当前为 {current}，最新为 {head}"},
    "at nothing (empty database), head is {head}": {"zh-CN": "空数据库（尚未建表），最新为 {head}"},
    "run `qunyun migrate --db {url}`": {"zh-CN": "请运行 `qunyun migrate --db {url}`"},
    "unknown time zone {zone!r}": {"zh-CN": "未知时区 {zone!r}"},
    "use IANA names like Asia/Shanghai; if those fail too, `pip install tzdata`": {
        "zh-CN": "请使用 Asia/Shanghai 这样的 IANA 时区名；如果这些也不行，请 `pip install tzdata`"
    },
    "{zones} not found": {"zh-CN": "找不到 {zones}"},
    "{zones} (default)": {"zh-CN": "{zones}（默认）"},
    "{platform} adapter": {"zh-CN": "{platform} 适配器"},
    "cannot be set up: {error}": {"zh-CN": "无法创建：{error}"},
    "cannot listen: {error}": {"zh-CN": "无法监听：{error}"},
    "if `qunyun run` is running, it holds the port: stop it for the check, or read its log": {
        "zh-CN": "如果 `qunyun run` 正在运行，端口被它占用：检查时先停止它，或查看它的日志"
    },
    "cannot connect: {error}": {"zh-CN": "无法连接：{error}"},
    "no answer within {s:g} s": {"zh-CN": "{s:g} 秒内没有应答"},
    "the check failed: {error}": {"zh-CN": "检查出错：{error}"},
    # migrate
    "{url}: schema is current ({head}); nothing to do": {
        "zh-CN": "{url}：数据库结构已是最新（{head}），无需操作"
    },
    "{url}: schema {before} → {after} (head {head})": {
        "zh-CN": "{url}：数据库结构 {before} → {after}（最新 {head}）"
    },
    "empty": {"zh-CN": "空"},
    # init
    "wrote {path} ({lang})": {"zh-CN": "已写入 {path}（{lang}）"},
    "the previous file is now {path}": {"zh-CN": "原来的文件已改名为 {path}"},
    "1 community, {groups} groups, {n} playbooks: {names}": {
        "zh-CN": "1 个社群，{groups} 个群，{n} 个玩法：{names}"
    },
    "next:": {"zh-CN": "下一步："},
    "edit {path}": {"zh-CN": "编辑 {path}"},
    # export
    "wrote {n} members to {path}": {"zh-CN": "已把 {n} 位成员写入 {path}"},
    "wrote {n} actions to {path}": {"zh-CN": "已把 {n} 条动作写入 {path}"},
    "wrote {n} groups to {path}": {"zh-CN": "已把 {n} 个群写入 {path}"},
    "wrote {n} postings to {path}": {"zh-CN": "已把 {n} 条分录写入 {path}"},
    "wrote {n} accounts and transactions to {path}": {"zh-CN": "已把 {n} 个账户和交易写入 {path}"},
    # replay progress
    "replay": {"zh-CN": "重放"},
}


def cli_lang() -> str:
    chosen = os.environ.get("QUNYUN_LANG")
    if chosen in ("zh-CN", "en"):
        return chosen
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "zh-CN" if value.lower().startswith("zh") else "en"
    return "en"


def tr(text: str, **values: object) -> str:
    """``text`` in the CLI's language (English is the key), formatted with ``values``."""
    lang = cli_lang()
    chosen = _TEXTS.get(text, {}).get(lang, text) if lang != "en" else text
    return chosen.format(**values) if values else chosen

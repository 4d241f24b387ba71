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

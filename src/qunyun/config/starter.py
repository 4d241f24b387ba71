"""The starter configuration (``qunyun init``) and the configuration reference.

Both are generated from the models — :class:`~qunyun.config.model.ConfigSpec`
and every installed playbook's ``config_model`` — so they cannot drift from
what the loader accepts: a new setting shows up in the next ``qunyun init``
and in ``docs/configuration.md`` (``python scripts/gen_config_docs.py``)
with its default and its ``Field(description=...)``.

The starter writes *every* setting out with its default value, commented,
so an operator reads one file top to bottom and sees everything they can
change, including the words the bot says (the templates, commented out).
"""

from __future__ import annotations

import enum
import json
import re
import types
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from qunyun import __version__
from qunyun.config.model import CommunitySpec, ConfigSpec, DeploymentSpec, GroupSpec
from qunyun.engine.playbook import Playbook

LANGS: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_FILE = "qunyun.yaml"

#: Descriptions of the core keys whose model fields carry no ``description``
#: (and the zh-CN wording of all core keys). A ``Field(description=...)`` in
#: the model wins for English.
NOTES: dict[tuple[str, str], dict[str, str]] = {
    ("deployment", "database"): {
        "zh-CN": "数据库地址（URL）。不填时使用环境变量 $QUNYUN_DATABASE_URL，再不然使用默认的 SQLite 文件。",
        "en": "Database URL; $QUNYUN_DATABASE_URL or the default SQLite file if unset.",
    },
    ("deployment", "log_level"): {
        "zh-CN": "日志详细程度。",
        "en": "How much the engine logs.",
    },
    ("community", "id"): {
        "zh-CN": "社群的短 id（字母、数字、_ . -），会写入数据库，启用后不要再改。",
        "en": "Short stable id (letters, digits, _ . -); it is stored in the database, so do not change it later.",
    },
    ("community", "name"): {"zh-CN": "社群名称。", "en": "Display name of the community."},
    ("community", "timezone"): {
        "zh-CN": "时区（IANA 名称）：决定“一天”的边界、连续打卡、定时任务和闭群时间。",
        "en": "IANA time zone: day boundaries, streaks, schedules and quiet hours follow it.",
    },
    ("community", "locale"): {
        "zh-CN": "机器人说话的语言：zh-CN 或 en。",
        "en": "The language the bot speaks: zh-CN or en.",
    },
    ("community", "catch_all"): {
        "zh-CN": "未在 groups 中列出的群的事件也归入本社群（回放导出的聊天记录时有用）。最多一个社群可设为 true。",
        "en": "Events from groups not listed under groups join this community (useful for replays of exported histories). At most one community may set it.",
    },
    ("community", "roles"): {
        "zh-CN": "按角色列出平台用户 id（owner 群主、admin 管理员、assistant 助理、guest 嘉宾）；其他人都是普通成员（member）。",
        "en": "Platform user ids by role (owner, admin, assistant, guest); everyone else is a member.",
    },
    ("community", "groups"): {
        "zh-CN": "社群下的群，每个群一项。",
        "en": "The community's groups, one entry each.",
    },
    ("community", "playbooks"): {
        "zh-CN": "本社群启用的玩法及其设置；群里可以逐项覆盖。",
        "en": "Playbooks switched on for the community, with their settings; groups may override them.",
    },
    ("community", "templates"): {
        "zh-CN": '改写机器人说的话："<玩法>.<模板名>": 文本，或 {zh-CN: …, en: …}。',
        "en": 'Overrides of the bot\'s words: "<playbook>.<name>": text, or {zh-CN: …, en: …}.',
    },
    ("group", "id"): {
        "zh-CN": "群 id：事件中的 group 字段。",
        "en": "The `group` field of events.",
    },
    ("group", "platform"): {
        "zh-CN": "群所在的平台：sim（模拟）、matrix、onebot、telegram……",
        "en": "The platform the group lives on: sim (simulated), matrix, onebot, telegram…",
    },
    ("group", "name"): {
        "zh-CN": "群名称（默认同 id）。",
        "en": "Display name (defaults to the id).",
    },
    ("group", "room"): {
        "zh-CN": "平台上的房间/群号（与 id 不同时填写，例如 Matrix 的 !abc:example.org）。",
        "en": "Platform room/chat id, if it differs from id (e.g. a Matrix room !abc:example.org).",
    },
    ("group", "capacity"): {"zh-CN": "群人数上限。", "en": "Member limit of the group."},
    ("group", "admin"): {
        "zh-CN": "管理员群：notify_admins（通知管理员）的消息发到这里。",
        "en": "The admins' group: where notify_admins actions go.",
    },
    ("group", "playbooks"): {
        "zh-CN": "只对本群生效的玩法设置，覆盖社群的同名设置。",
        "en": "Per-group overrides of the community's playbook settings.",
    },
    ("config", "deployment"): {"zh-CN": "部署级设置。", "en": "Deployment-wide settings."},
    ("config", "communities"): {
        "zh-CN": "社群列表（至少一个）。",
        "en": "The communities (at least one).",
    },
    ("playbook", "enabled"): {
        "zh-CN": "设为 false 可在某个群关闭该玩法，社群其他群照常。",
        "en": "Switch the playbook off for one group while the community has it on.",
    },
}

_TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "header": """\
qunyun（群运）配置文件 —— 一个部署一个文件。

由 `qunyun init` 生成（qunyun {version}）。每一项设置都写出了默认值，上方的
注释说明它的作用；以 # 开头的行是注释。玩法设置的说明来自各玩法的配置模型
（英文）。删除某个玩法的整段（或设 enabled: false）即可关闭它。
每个键的完整说明见 docs/configuration.md。

密码等机密不要写进本文件：数据库地址请放在环境变量 QUNYUN_DATABASE_URL 里。

下一步：
  1. 修改下面的社群、群和玩法设置。
  2. 建库或升级：  qunyun migrate --config {path}
  3. 检查配置：    qunyun doctor --config {path}
  4. 用事件试跑：  qunyun replay events.jsonl --config {path} --actions actions.jsonl""",
        "deployment": "部署",
        "db_default": "这台机器上的默认 SQLite 文件：",
        "db_pg": "生产环境建议 PostgreSQL，例如：",
        "db_secret": "含密码的地址请放进环境变量 QUNYUN_DATABASE_URL，不要写在这里。",
        "communities": "社群",
        "groups": "群",
        "community_id": "my-community",
        "community_name": "我的社群",
        "roles_example": "下面的用户 id 只是示例，请换成平台上的真实 id。",
        "main_group": "主群",
        "admin_group": "管理员群",
        "override": "按群覆盖：这里的设置只对本群生效，覆盖社群的同名设置。例如：",
        "admin_override": "管理员群里关闭所有玩法（需要时删掉对应的行）。",
        "playbooks": "玩法",
        "playbooks_intro": "已安装的全部玩法，每项设置都是默认值。删除整段或设 enabled: false 即可关闭。",
        "no_playbooks": "没有安装任何玩法。",
        "starts_off": "新社群默认关闭：它会决定谁能留在群里或何时能发言，请看过设置后再设 enabled: true。",
        "needs_input": "该玩法有必填设置（下面标出）：填好后去掉整段的注释即可启用。",
        "required": "必填",
        "version": "版本",
        "templates": "模板：机器人说的话（{lang}）",
        "templates_intro": """\
要修改某句话：取消 `templates:` 行和对应行的注释（删掉行首的 #），再改文字。
保留 {占位符}；要写字面的花括号请用 {{ 和 }}。纯文本对所有语言生效；
也可以写成 "<玩法>.<模板名>": {zh-CN: "…", en: "…"} 分别设置。""",
    },
    "en": {
        "header": """\
qunyun configuration — one file per deployment.

Written by `qunyun init` (qunyun {version}). Every setting is shown with its
default value and a comment saying what it does; lines starting with # are
comments. Delete a playbook's block (or set enabled: false) to switch it off.
Every key is described in docs/configuration.md.

Keep secrets out of this file: put a database URL with a password in the
environment variable QUNYUN_DATABASE_URL instead.

Next steps:
  1. Edit the community, groups and playbooks below.
  2. Create or upgrade the database:  qunyun migrate --config {path}
  3. Check everything:                qunyun doctor --config {path}
  4. Try it on events:                qunyun replay events.jsonl --config {path} --actions actions.jsonl""",
        "deployment": "deployment",
        "db_default": "The default SQLite file on this machine:",
        "db_pg": "PostgreSQL is recommended in production, for example:",
        "db_secret": "Put a URL with a password in $QUNYUN_DATABASE_URL, not here.",
        "communities": "communities",
        "groups": "groups",
        "community_id": "my-community",
        "community_name": "My community",
        "roles_example": "The user ids below are examples: use real ids from your platform.",
        "main_group": "Main group",
        "admin_group": "Admins",
        "override": "Per-group overrides: settings here replace the community's for this group only. For example:",
        "admin_override": "All playbooks are off in the admins' group (delete a line to switch one on).",
        "playbooks": "playbooks",
        "playbooks_intro": "Every installed playbook with every setting at its default. Delete a block or set enabled: false to switch one off.",
        "no_playbooks": "No playbooks are installed.",
        "starts_off": "Off in a new community: it decides who may stay or when people may talk; read its settings, then set enabled: true.",
        "needs_input": "This playbook has required settings (marked below): fill them in, then uncomment the block to switch it on.",
        "required": "required: fill in",
        "version": "version",
        "templates": "templates: the words the bot says ({lang})",
        "templates_intro": """\
To change a text: uncomment the `templates:` line and the line you want
(remove the leading #), then edit the words. Keep the {placeholders}; write
{{ and }} for literal braces. A plain text applies to every language; write
"<playbook>.<name>": {zh-CN: "…", en: "…"} to set each language.""",
    },
}

_COMMENT_WIDTH = 88
#: joins the words of a type label so wrapping keeps it whole
_GLUE = "\x00"


# --------------------------------------------------------------------- values


def default_of(field: FieldInfo) -> Any:
    """The default value of a model field, or ``PydanticUndefined`` if required."""
    if field.is_required():
        return PydanticUndefined
    if field.default_factory is not None:
        try:
            return field.default_factory()  # type: ignore[call-arg]
        except TypeError:  # a factory that takes the validated data
            return field.default_factory({})  # type: ignore[call-arg]
    return field.default


def plain(value: Any) -> Any:
    """``value`` as YAML-friendly plain data (dict keys kept as they are)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="python"))
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=lambda v: (str(type(v)), str(v)))
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return to_jsonable_python(value)


def yaml_inline(value: Any) -> str:
    """One line of YAML (flow style) for ``value``."""
    text = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=2**31 - 1
    )
    lines = text.rstrip("\n").split("\n")
    if len(lines) > 1 and lines[-1] == "...":
        lines.pop()
    if len(lines) == 1:
        return lines[0]
    # multi-line scalars: JSON is valid YAML and keeps them on one line
    return json.dumps(value, ensure_ascii=False)


def yaml_entry(key: str, value: Any, indent: int, *, max_inline: int = 100) -> list[str]:
    """``key: value`` lines at ``indent``; long collections in block style."""
    pad = " " * indent
    ykey = yaml_inline(key)
    inline = yaml_inline(value)
    if (
        not isinstance(value, (dict, list))
        or not value
        or len(pad) + len(ykey) + 2 + len(inline) <= max_inline
    ):
        return [f"{pad}{ykey}: {inline}"]
    block = yaml.safe_dump(
        value, default_flow_style=False, allow_unicode=True, sort_keys=False, width=2**31 - 1
    )
    return [f"{pad}{ykey}:"] + [f"{pad}  {line}" for line in block.rstrip("\n").split("\n")]


# ---------------------------------------------------------------------- types


def _literal(values: Iterable[Any]) -> str:
    return " | ".join(str(plain(v)) for v in values)


def type_name(tp: Any) -> str:
    """A short human name of a type annotation: ``list of text``, ``integer or null``."""
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Union or origin is types.UnionType:
        parts = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + " or null" if type(None) in args else text
    if origin is Literal:
        return _literal(args)
    if origin is not None and getattr(origin, "__name__", "") == "Annotated":
        return type_name(args[0])
    if origin in (list, tuple, set, frozenset, Sequence):
        inner = args[0] if args else Any
        return f"list of {type_name(inner)}"
    if origin in (dict, Mapping):
        key, val = (*args, Any, Any)[:2]
        return f"mapping of {type_name(key)} to {type_name(val)}"
    if isinstance(tp, type):
        if issubclass(tp, bool):
            return "true/false"
        if issubclass(tp, enum.Enum):
            return _literal(m.value for m in tp)
        if issubclass(tp, str):
            return "text"
        if issubclass(tp, int):
            return "integer"
        if issubclass(tp, float):
            return "number"
        if issubclass(tp, datetime):
            return "date-time (ISO 8601)"
        if issubclass(tp, date):
            return "date (YYYY-MM-DD)"
        if issubclass(tp, time):
            return "time (HH:MM)"
        if issubclass(tp, timedelta):
            return "duration (seconds or ISO 8601)"
        if issubclass(tp, BaseModel):
            return "mapping"
        return tp.__name__
    return str(tp).replace("typing.", "")


def constraints(field: FieldInfo) -> list[str]:
    """Human-readable constraints from a field's metadata: ``≥ 0``, ``≤ 200``…"""
    out: list[str] = []
    for meta in field.metadata:
        for attr, label in (
            ("ge", "≥"),
            ("gt", ">"),
            ("le", "≤"),
            ("lt", "<"),
            ("min_length", "min length"),
            ("max_length", "max length"),
            ("pattern", "pattern"),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{label} {value}")
    return out


def type_label(field: FieldInfo) -> str:
    rules = constraints(field)
    name = type_name(field.annotation)
    return f"{name}, {', '.join(rules)}" if rules else name


# ------------------------------------------------------------------- fields


class FieldDoc:
    """One key of a model, as the starter and the reference show it."""

    __slots__ = ("default", "description", "name", "nested", "required", "type")

    def __init__(
        self,
        name: str,
        type_: str,
        default: Any,
        required: bool,
        description: dict[str, str],
        nested: type[BaseModel] | None,
    ) -> None:
        self.name = name
        self.type = type_
        self.default = default
        self.required = required
        self.description = description
        self.nested = nested

    def describe(self, lang: str) -> str:
        return self.description.get(lang) or self.description.get("en", "")


def model_fields(model: type[BaseModel], section: str | None = None) -> list[FieldDoc]:
    """The keys of ``model`` in declaration order, with defaults and descriptions.

    ``section`` names the core section (``deployment``, ``community``,
    ``group``) or ``playbook`` for a playbook's model, to find the notes above.
    """
    try:
        instance: BaseModel | None = model.model_validate({})
    except Exception:  # some keys are required
        instance = None
    out = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        default = getattr(instance, name) if instance is not None else default_of(field)
        note = dict(NOTES.get((section or "", name), {}))
        annotation: Any = field.annotation
        nested: type[BaseModel] | None = annotation if _is_model(annotation) else None
        if field.description:
            note["en"] = field.description
        elif "en" not in note and nested is not None and nested.__doc__:
            note["en"] = " ".join(nested.__doc__.strip().split("\n\n")[0].split())
        out.append(
            FieldDoc(
                name=name,
                type_=type_label(field),
                default=None if required else plain(default),
                required=required,
                description=note,
                nested=nested,
            )
        )
    return out


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


# ------------------------------------------------------------------ starter


def _comment(
    text: str, indent: int, *, wrap: bool = True, width: int = _COMMENT_WIDTH
) -> list[str]:
    """``text`` as comment lines at ``indent``, wrapped unless ``wrap`` is false.

    Text made with :func:`_label` is never split across lines.
    """
    pad = " " * indent
    lines: list[str] = []
    for para in text.split("\n"):
        if not para.strip():
            lines.append(f"{pad}#")
            continue
        if not wrap:
            lines.append(f"{pad}# {para}".rstrip())
            continue
        wrapped = _wrap(para.strip(), max(40, width - indent - 2))
        lines.extend(f"{pad}# {w.replace(_GLUE, ' ')}".rstrip() for w in wrapped)
    return lines


_WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_TOKENS = re.compile(rf"\s+|[{_WIDE}]|[^\s{_WIDE}]+")
_NO_BREAK_BEFORE = set("，。、；：？！）》」』”’")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrap by display width; Chinese may break between any two characters."""
    lines: list[str] = []
    current = ""
    for token in _TOKENS.findall(text):
        if token.isspace():
            if current:
                current += " "
            continue
        candidate = current + token
        if _width(candidate) <= width or not current.strip() or token in _NO_BREAK_BEFORE:
            current = candidate
        else:
            lines.append(current.rstrip())
            current = token
    if current.strip():
        lines.append(current.rstrip())
    return lines or [""]


def _label(type_: str) -> str:
    return f"[{type_}]".replace(" ", _GLUE)


def _rule(title: str, indent: int) -> list[str]:
    pad = " " * indent
    line = f"{pad}# ── {title} "
    return ["", line + "─" * max(4, 78 - _width(line))]


def _field_lines(
    doc: FieldDoc, lang: str, indent: int, value: Any = PydanticUndefined
) -> list[str]:
    """The comment and the ``key: value`` line(s) of one field."""
    text = doc.describe(lang)
    label = _label(doc.type)
    lines = _comment(f"{text} {label}" if text else label, indent)
    if value is PydanticUndefined:
        value = doc.default
    if doc.required and value is None:
        lines.append(f"{' ' * indent}{yaml_inline(doc.name)}:   # ← {_TEXT[lang]['required']}")
        return lines
    if doc.nested is not None and isinstance(value, dict) and value:
        lines.append(f"{' ' * indent}{yaml_inline(doc.name)}:")
        for sub in model_fields(doc.nested):
            lines.extend(_field_lines(sub, lang, indent + 2, value.get(sub.name, sub.default)))
        return lines
    lines.extend(yaml_entry(doc.name, value, indent))
    return lines


def _pick_template(texts: Mapping[str, str], lang: str) -> str:
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")


def _override_example(playbooks: Sequence[type[Playbook]]) -> list[str]:
    """``playbooks: {<id>: {<setting>: <value>}}`` lines for the per-group example.

    Prefers the first true/false setting (other than ``enabled``), flipped, so
    the example shows a real change; then any scalar setting at its default.
    """
    if not playbooks:
        return []
    candidates: list[tuple[int, str, str, Any]] = []
    for pb in playbooks:
        for doc in model_fields(pb.config_model, "playbook"):
            if doc.name == "enabled" or doc.required or doc.nested is not None:
                continue
            if isinstance(doc.default, bool):
                candidates.append((0, pb.id, doc.name, not doc.default))
            elif isinstance(doc.default, (int, str)):
                candidates.append((1, pb.id, doc.name, doc.default))
    by_id = {pb.id: pb for pb in playbooks}
    for _, pid, name, value in sorted(candidates, key=lambda c: c[0]):
        try:  # a model validator may forbid the flipped value on its own
            by_id[pid].config_model.model_validate({name: value})
        except ValueError:
            continue
        return ["playbooks:", f"  {yaml_inline(pid)}:", *yaml_entry(name, value, 4)]
    return ["playbooks:", f"  {yaml_inline(playbooks[0].id)}:", "    enabled: false"]


def render_starter(
    lang: str = "zh-CN",
    *,
    registry: Any | None = None,
    path: str = DEFAULT_FILE,
    default_database: str | None = None,
) -> str:
    """The fully commented starter configuration, in ``lang`` (zh-CN or en).

    ``default_database`` is the SQLite URL used when nothing is configured
    (shown in a comment); it defaults to :func:`qunyun.store.db.resolve_url`
    without any URL or environment variable.
    """
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
    from qunyun.engine.registry import default_registry
    from qunyun.playbooks import BUILTINS

    reg = registry if registry is not None else default_registry()
    # Built-ins first in their working order (moderation before the others, so
    # it can suppress spam), then any third-party playbooks by id.
    order = {pid: i for i, pid in enumerate(BUILTINS)}
    playbooks: list[type[Playbook]] = sorted(reg, key=lambda c: (order.get(c.id, len(order)), c.id))
    t = _TEXT[lang]
    if default_database is None:
        from qunyun.store.db import default_database_path

        default_database = f"sqlite:///{default_database_path()}"

    out: list[str] = _comment(t["header"].format(version=__version__, path=path), 0, wrap=False)

    # deployment ------------------------------------------------------------
    out += _rule(t["deployment"], 0)
    out += [*_comment(_note("config", "deployment", lang), 0), "deployment:"]
    for doc in model_fields(DeploymentSpec, "deployment"):
        if doc.name == "database":
            out += _comment(doc.describe(lang) + " " + _label(doc.type), 2)
            out += _comment(t["db_default"], 2)
            out += [f"  #   {default_database}"]
            out += _comment(t["db_pg"], 2)
            out += ["  #   database: postgresql+psycopg://qunyun@db.example.org:5432/qunyun"]
            out += _comment(t["db_secret"], 2)
            out += [f"  # database: {default_database}"]
        else:
            out += _field_lines(doc, lang, 2)

    # communities -----------------------------------------------------------
    out += _rule(t["communities"], 0)
    out += [*_comment(_note("config", "communities", lang), 0), "communities:"]
    example: dict[str, Any] = {
        "id": t["community_id"],
        "name": t["community_name"],
        "timezone": "Asia/Shanghai",
        "locale": lang,
    }
    first = True
    for doc in model_fields(CommunitySpec, "community"):
        lines: list[str]
        if doc.name == "roles":
            lines = _comment(f"{doc.describe(lang)} {_label(doc.type)}", 4)
            lines += _comment(t["roles_example"], 4)
            lines += ["    roles:"]
            roles = {
                "owner": ["u-owner"],
                "admin": ["u-admin-1", "u-admin-2"],
                "assistant": [],
                "guest": [],
            }
            for role, users in roles.items():
                lines += yaml_entry(role, users, 6)
        elif doc.name == "groups":
            lines = _groups(doc, lang, t, playbooks)
        elif doc.name == "playbooks":
            lines = _playbooks(doc, lang, t, playbooks)
        elif doc.name == "templates":
            lines = _templates(doc, lang, t, playbooks)
        else:
            value = example.get(doc.name, doc.default)
            lines = _field_lines(doc, lang, 4, value)
        if first:
            # the first key of the list item carries the "- "
            key_at = next(i for i, line in enumerate(lines) if not line.lstrip().startswith("#"))
            lines[key_at] = "  - " + lines[key_at][4:]
            first = False
        out += lines
    return "\n".join(out).rstrip() + "\n"


def _note(section: str, name: str, lang: str) -> str:
    note = NOTES.get((section, name), {})
    return note.get(lang) or note.get("en", "")


def _groups(
    doc: FieldDoc, lang: str, t: Mapping[str, str], playbooks: Sequence[type[Playbook]]
) -> list[str]:
    playbooks = [pb for pb in playbooks if not _needs_input(pb)]
    lines = _rule(t["groups"], 4)
    lines += _comment(doc.describe(lang), 4)
    lines += ["    groups:"]
    examples = [
        {
            "id": "g-main",
            "platform": "sim",
            "name": t["main_group"],
            "room": "g-main",
            "capacity": 500,
            "admin": False,
        },
        {
            "id": "g-admins",
            "platform": "sim",
            "name": t["admin_group"],
            "room": "g-admins",
            "capacity": 50,
            "admin": True,
        },
    ]
    for index, values in enumerate(examples):
        group_lines: list[str] = []
        for gdoc in model_fields(GroupSpec, "group"):
            if gdoc.name == "playbooks":
                group_lines += _comment(f"{gdoc.describe(lang)} {_label(gdoc.type)}", 8)
                if index == 0 and playbooks:
                    group_lines += _comment(t["override"], 8)
                    group_lines += [f"        # {line}" for line in _override_example(playbooks)]
                elif playbooks:
                    group_lines += _comment(t["admin_override"], 8)
                    group_lines += ["        playbooks:"]
                    group_lines += [
                        f"          {yaml_inline(pb.id)}: {{enabled: false}}" for pb in playbooks
                    ]
                continue
            group_lines += _field_lines(gdoc, lang, 8, values.get(gdoc.name, gdoc.default))
        key_at = next(i for i, line in enumerate(group_lines) if not line.lstrip().startswith("#"))
        group_lines[key_at] = "      - " + group_lines[key_at][8:]
        if index:
            lines.append("")
        lines += group_lines
    return lines


def _needs_input(pb: type[Playbook]) -> bool:
    """True if the playbook has settings without a default (it cannot be on by default)."""
    return any(f.is_required() for f in pb.config_model.model_fields.values())


def _commented(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        body = line.lstrip()
        indent = len(line) - len(body)
        out.append(f"{' ' * indent}# {body}" if body else line)
    return out


def _playbooks(
    doc: FieldDoc, lang: str, t: Mapping[str, str], playbooks: Sequence[type[Playbook]]
) -> list[str]:
    from qunyun.playbooks import BUILTINS, STARTER_ON

    lines = _rule(t["playbooks"], 4)
    lines += _comment(doc.describe(lang), 4)
    lines += _comment(t["playbooks_intro"], 4)
    if not playbooks:
        return [*lines, *_comment(t["no_playbooks"], 4), "    playbooks: {}"]
    ready = any(not _needs_input(pb) for pb in playbooks)
    lines.append("    playbooks:" if ready else "    playbooks: {}")
    for n, pb in enumerate(playbooks):
        if n:
            lines.append("")
        summary = _pick_template(pb.summary, lang) if pb.summary else ""
        head = f"{pb.id} ({t['version']} {pb.version})" + (f" — {summary}" if summary else "")
        lines += _comment(head, 6)
        block = [f"      {yaml_inline(pb.id)}:"]
        for fdoc in model_fields(pb.config_model, "playbook"):
            block += _field_lines(fdoc, lang, 8)
        if _needs_input(pb):
            lines += _comment(t["needs_input"], 6)
            block = _commented(block)
        elif pb.id in BUILTINS and pb.id not in STARTER_ON:
            lines += _comment(t["starts_off"], 6)
            block = [line.replace("enabled: true", "enabled: false", 1) if line.strip() == "enabled: true" else line for line in block]
        lines += block
    return lines


def _templates(
    doc: FieldDoc, lang: str, t: Mapping[str, str], playbooks: Sequence[type[Playbook]]
) -> list[str]:
    lines = _rule(t["templates"].format(lang=lang), 4)
    lines += _comment(f"{doc.describe(lang)} {_label(doc.type)}", 4)
    lines += _comment(t["templates_intro"], 4)
    lines.append("    # templates:")
    for pb in playbooks:
        if not pb.templates:
            continue
        lines.append(f"    #   # {pb.id}")
        for name, texts in pb.templates.items():
            key = yaml_inline(f"{pb.id}.{name}")
            lines.append(
                f"    #   {key}: {json.dumps(_pick_template(texts, lang), ensure_ascii=False)}"
            )
    return lines


# ---------------------------------------------------------------- reference


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_code(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", "\\n")
    return f"`{text}`" if text else ""


def _table(docs: Sequence[FieldDoc], prefix: str = "", *, expand: bool = True) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for doc in docs:
        default = "*required*" if doc.required else _md_code(yaml_inline(doc.default))
        rows.append(
            f"| `{prefix}{doc.name}` | {_md(doc.type)} | {default} | {_md(doc.describe('en'))} |"
        )
        if expand and doc.nested is not None:
            rows += _table(model_fields(doc.nested), f"{prefix}{doc.name}.")[2:]
    return rows


def config_reference(playbooks: Sequence[type[Playbook]]) -> str:
    """Markdown reference of every key: core sections, then each playbook's."""
    out: list[str] = []
    out += ["## Top level", "", *_table(model_fields(ConfigSpec, "config"), expand=False), ""]
    out += ["## `deployment`", "", *_table(model_fields(DeploymentSpec, "deployment")), ""]
    out += [
        "## `communities[]` — a community",
        "",
        *_table(model_fields(CommunitySpec, "community")),
        "",
    ]
    out += [
        "## `communities[].groups[]` — a group",
        "",
        *_table(model_fields(GroupSpec, "group")),
        "",
    ]
    out += [
        "## Playbooks",
        "",
        "Each playbook's settings go under `communities[].playbooks.<id>` and may be",
        "overridden per group under `communities[].groups[].playbooks.<id>` (group",
        "settings are merged over the community's, key by key).",
        "",
    ]
    for pb in playbooks:
        out += [f"### `{pb.id}` (version {pb.version})", ""]
        if pb.summary:
            out += [pb.summary.get("en") or next(iter(pb.summary.values())), ""]
        out += [*_table(model_fields(pb.config_model, "playbook")), ""]
        if pb.templates:
            out += [
                f'Templates (override as `templates: {{"{pb.id}.<name>": …}}`):',
                "",
                "| template | zh-CN | en |",
                "|---|---|---|",
            ]
            for name, texts in pb.templates.items():
                out.append(
                    f"| `{pb.id}.{name}` | {_md_code(texts.get('zh-CN', ''))} "
                    f"| {_md_code(texts.get('en', ''))} |"
                )
            out.append("")
    return "\n".join(out).rstrip() + "\n"


__all__ = [
    "DEFAULT_FILE",
    "LANGS",
    "FieldDoc",
    "config_reference",
    "model_fields",
    "render_starter",
    "type_name",
    "yaml_inline",
]

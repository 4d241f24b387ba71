"""Operators read configuration problems in zh-CN and en: every problem qunyun writes is a ``Msg``.

The source is read, not run (as tests/test_error_messages.py does for refusals): in the
configuration modules each ``problems.append(...)``, each problem listed in ``ConfigError([...])``,
its hint, and each ``ValueError`` a pydantic validator raises must be ``Msg("template", ...)`` with a
zh-CN entry in ``core/locales/*.yaml`` with the same placeholders. pydantic's own messages are
translated by error type (``config.problems.PYDANTIC_TYPES``). Then the problems are read as an
operator reads them: through ``qunyun doctor``, ``qunyun``'s error line, and the adapters' check.
"""

from __future__ import annotations

import ast
import pickle
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.adapters.config import parse_adapters, split_adapters
from qunyun.cli.app import app
from qunyun.config import load_settings
from qunyun.config.loader import load_yaml
from qunyun.config.problems import PYDANTIC_KEY, PYDANTIC_TYPES, PydanticMsg, pydantic_problems
from qunyun.core.errors import ConfigError, Msg, catalog
from tests.test_error_messages import _fields, _msg_template

SRC = Path(__file__).resolve().parents[1] / "src" / "qunyun"
FILES = [*sorted((SRC / "config").glob("*.py")), SRC / "adapters" / "config.py",
         SRC / "adapters" / "telegram" / "settings.py"]
VALIDATORS = {"field_validator", "model_validator"}


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def _decorated_by(func: ast.FunctionDef, names: set[str]) -> bool:
    return any(_name(d.func if isinstance(d, ast.Call) else d) in names for d in func.decorator_list)


def _scan_source(text: str, rel: str) -> tuple[list[str], dict[str, list[str]]]:
    """(problems, template → places) of one module's configuration problems."""
    problems: list[str] = []
    used: dict[str, list[str]] = {}

    def need_msg(node: ast.expr, what: str) -> None:
        template = _msg_template(node)
        if template is None:
            problems.append(f"{rel}:{node.lineno}: {what} is not Msg(\"literal template\", ...)")
        else:
            used.setdefault(template, []).append(f"{rel}:{node.lineno}")

    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append" \
                and _name(node.func.value) == "problems" and node.args:
            need_msg(node.args[0], "a problem")
        if isinstance(node, ast.Call) and _name(node.func) == "ConfigError":
            listed = node.args[0] if node.args else None
            if isinstance(listed, ast.List):
                for item in listed.elts:
                    need_msg(item, "a ConfigError problem")
            elif isinstance(listed, ast.ListComp):
                need_msg(listed.elt, "a ConfigError problem")
            for kw in node.keywords:
                if kw.arg == "hint" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None) \
                        and not (isinstance(kw.value, ast.Attribute) and kw.value.attr == "hint"):
                    need_msg(kw.value, "a ConfigError hint")
        if isinstance(node, ast.FunctionDef) and _decorated_by(node, VALIDATORS):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Raise) and isinstance(inner.exc, ast.Call) \
                        and _name(inner.exc.func) == "ValueError":
                    if inner.exc.args:
                        need_msg(inner.exc.args[0], "a validator's ValueError")
                    else:
                        problems.append(f"{rel}:{inner.lineno}: a validator's ValueError says nothing")
    return sorted(problems, key=lambda p: int(p.split(":")[1])), used


def _scan() -> tuple[list[str], dict[str, list[str]]]:
    problems: list[str] = []
    used: dict[str, list[str]] = {}
    for path in FILES:
        found, templates = _scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parent)))
        problems += found
        for template, where in templates.items():
            used.setdefault(template, []).extend(where)
    return problems, used


# ------------------------------------------------------------------ the source


def test_every_configuration_problem_is_a_translatable_message() -> None:
    problems, used = _scan()
    assert sum(len(where) for where in used.values()) >= 40, "the scan found too little: is it looking at all files?"
    assert not problems, f"{len(problems)} configuration problem(s) English-only:\n" + "\n".join(problems)


# Every Msg template in src/ (these included) must have its zh-CN text with the same placeholders, conversions
# and format specs: tests/test_error_messages.py checks that for the whole package.


def test_the_scan_catches_an_english_only_problem() -> None:
    source = '''
def check(problems, where, value):
    problems.append(f"{where}: bad {value}")
    problems.append(Msg("{where}: fine", where=where))
    raise ConfigError([f"{where}: nope", Msg("{where}: yes", where=where)], hint="plain")

class Spec(BaseModel):
    @field_validator("x")
    @classmethod
    def _x(cls, value):
        raise ValueError(f"bad {value}")

    @model_validator(mode="after")
    def _y(self):
        raise ValueError(Msg("ours"))
'''
    problems, used = _scan_source(source, "m.py")
    assert [p.split(": ", 1)[1] for p in problems] == [
        'a problem is not Msg("literal template", ...)',
        'a ConfigError problem is not Msg("literal template", ...)',
        'a ConfigError hint is not Msg("literal template", ...)',
        'a validator\'s ValueError is not Msg("literal template", ...)',
    ]
    assert set(used) == {"{where}: fine", "{where}: yes", "ours"}


def test_every_pydantic_type_in_the_table_has_its_zh_cn_text() -> None:
    texts = catalog()
    missing = [kind for kind in PYDANTIC_TYPES if PYDANTIC_KEY + kind not in texts]
    assert not missing, f"pydantic error types without a catalogue entry: {missing}"
    wrong = {kind: texts[PYDANTIC_KEY + kind] for kind, needed in PYDANTIC_TYPES.items()
             if _fields(texts[PYDANTIC_KEY + kind]) != set(needed)}
    assert not wrong, f"zh-CN placeholders differ from the context values the table names: {wrong}"


# ------------------------------------------------------------------ pydantic's messages


class Colour(Enum):
    red = "red"
    blue = "blue"


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 0


class _FromAttributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    x: int = 0


class _Everything(BaseModel):
    """One field per pydantic error type the table translates."""

    string_type: str = ""
    string_too_short: str = Field(default="ab", min_length=2)
    string_too_long: str = Field(default="", max_length=2)
    string_pattern_mismatch: str = Field(default="a", pattern=r"^a")
    int_type: int = 0
    int_parsing: int = 0
    int_from_float: int = 0
    float_type: float = 0.0
    float_parsing: float = 0.0
    finite_number: float = Field(default=0.0, allow_inf_nan=False)
    bool_type: bool = False
    bool_parsing: bool = False
    greater_than: int = Field(default=1, gt=0)
    greater_than_equal: int = Field(default=1, ge=1)
    less_than: int = Field(default=1, lt=5)
    less_than_equal: int = Field(default=1, le=5)
    multiple_of: int = Field(default=2, multiple_of=2)
    literal_error: Literal["daily", "weekly", "monthly"] = "daily"
    enum: Colour = Colour.red
    too_short: list[int] = Field(default_factory=lambda: [1, 2], min_length=2)
    too_long: list[int] = Field(default_factory=list, max_length=1)
    list_type: list[int] = Field(default_factory=list)
    dict_type: dict[str, int] = Field(default_factory=dict)
    model_type: _Sub = Field(default_factory=_Sub)
    model_attributes_type: _FromAttributes = Field(default_factory=_FromAttributes)
    none_required: None = None
    value_error: str = ""
    value_error_ours: str = ""
    assertion_error: str = ""
    date_type: date | None = None
    date_from_datetime_parsing: date | None = None
    date_from_datetime_inexact: date | None = None
    datetime_type: datetime | None = None
    datetime_from_date_parsing: datetime | None = None
    time_type: time | None = None
    time_parsing: time | None = None

    @field_validator("value_error")
    @classmethod
    def _theirs(cls, value: str) -> str:
        raise ValueError(f"{value} is not a thing")

    @field_validator("value_error_ours")
    @classmethod
    def _ours(cls, value: str) -> str:
        raise ValueError(Msg("unknown time zone {zone!r}; use an IANA name like Asia/Shanghai or Europe/Berlin",
                             zone=value))

    @field_validator("assertion_error")
    @classmethod
    def _asserted(cls, value: str) -> str:
        assert value == "yes", "say yes"
        return value


BAD: dict[str, Any] = {
    "string_type": 5, "string_too_short": "a", "string_too_long": "abc", "string_pattern_mismatch": "b",
    "int_type": [1], "int_parsing": "many", "int_from_float": 1.5, "float_type": [1], "float_parsing": "much",
    "finite_number": float("inf"), "bool_type": [1], "bool_parsing": "maybe", "greater_than": 0,
    "greater_than_equal": 0, "less_than": 5, "less_than_equal": 6, "multiple_of": 3, "literal_error": "yearly",
    "enum": "green", "too_short": [1], "too_long": [1, 2, 3], "list_type": "x", "dict_type": 3, "model_type": 3,
    "model_attributes_type": 3, "none_required": 1, "value_error": "Mars", "value_error_ours": "Mars/Olympus",
    "assertion_error": "no", "date_type": [1], "date_from_datetime_parsing": "2026-02-30",
    "date_from_datetime_inexact": "2026-01-01T10:00", "datetime_type": [1], "datetime_from_date_parsing": "soon",
    "time_type": [1], "time_parsing": "noonish",
}


def _errors() -> dict[str, PydanticMsg]:
    with pytest.raises(ValidationError) as info:
        _Everything.model_validate(BAD)
    return {str(e["loc"][0]): PydanticMsg(e["msg"], e["type"], e.get("ctx")) for e in info.value.errors()}


def test_every_translated_pydantic_type_reads_in_chinese() -> None:
    errors = _errors()
    assert {msg.kind for msg in errors.values()} == set(PYDANTIC_TYPES), "a type of the table is not exercised"
    for field, msg in errors.items():
        zh = msg.in_lang("zh-CN")
        assert msg.in_lang("en") == str(msg)
        assert zh != str(msg), field
        for english in ("Input should", "String should", "should have", "Value error", "Assertion failed"):
            assert english not in zh, (field, zh)
    assert errors["greater_than_equal"].in_lang("zh-CN") == "应大于或等于 1"
    assert errors["string_too_long"].in_lang("zh-CN") == "最多只能有 2 个字符"
    assert errors["literal_error"].in_lang("zh-CN") == "应为 'daily', 'weekly' 或 'monthly'"
    assert errors["too_long"].in_lang("zh-CN") == "列表最多只能有 1 项，现在是 3 项"
    # someone else's ValueError keeps its English inside the translated frame; ours is translated
    assert str(errors["value_error"]) == "Value error, Mars is not a thing"
    assert errors["value_error"].in_lang("zh-CN") == "取值无效：Mars is not a thing"
    assert errors["value_error_ours"].in_lang("zh-CN") == (
        "取值无效：未知时区 'Mars/Olympus'；请使用 IANA 名称，例如 Asia/Shanghai 或 Europe/Berlin")


def test_an_unknown_pydantic_type_or_context_stays_english() -> None:
    odd = PydanticMsg("Input should be a valid UUID", "uuid_type")
    assert odd.in_lang("zh-CN") == "Input should be a valid UUID"
    shaped_otherwise = PydanticMsg("Input should be greater than 3", "greater_than", {"limit": 3})
    assert shaped_otherwise.in_lang("zh-CN") == "Input should be greater than 3"


def test_a_pydantic_message_survives_pickling() -> None:
    msg = _errors()["value_error_ours"]
    again = pickle.loads(pickle.dumps(msg))
    assert isinstance(again, PydanticMsg) and str(again) == str(msg)
    assert again.in_lang("zh-CN") == msg.in_lang("zh-CN")


def test_a_located_problem_keeps_its_place_in_both_languages() -> None:
    located = load_yaml("capacity: 0\nnme: x\n", "g.yaml")

    class Group(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        capacity: int = Field(ge=1)

    with pytest.raises(ValidationError) as info:
        Group.model_validate(located.data)
    problems = pydantic_problems(info.value, located, (), ["name", "capacity"])
    exc = ConfigError(problems, hint=Msg("see docs/configuration.md, or start from `qunyun init`"))
    assert exc.problems == [
        "g.yaml:1: name: required key is missing",
        "g.yaml:1: capacity: Input should be greater than or equal to 1",
        "g.yaml:2: nme: unknown key (did you mean 'name'?)",
    ]
    assert exc.problems_in("zh-CN") == [
        "g.yaml:1: name: 缺少必填的配置项",
        "g.yaml:1: capacity: 应大于或等于 1",
        "g.yaml:2: nme: 未知的配置项（是不是 'name'？）",
    ]
    assert exc.problems_in("en") == exc.problems
    assert str(exc) == exc.localized("en") == (
        "invalid configuration:\n" + "\n".join(f"  - {p}" for p in exc.problems)
        + "\n  hint: see docs/configuration.md, or start from `qunyun init`")
    assert exc.localized("zh-CN") == (
        "配置无效：\n" + "\n".join(f"  - {p}" for p in exc.problems_in("zh-CN"))
        + "\n  提示: 请参阅 docs/configuration.md，或从 `qunyun init` 生成的配置开始")
    assert exc.localized("zh-CN", with_hint=False).endswith("未知的配置项（是不是 'name'？）")


def test_a_plain_problem_stays_as_written() -> None:
    exc = ConfigError(["x.yaml:3: something a plugin wrote"])
    assert exc.problems_in("zh-CN") == ["x.yaml:3: something a plugin wrote"]
    assert exc.localized("zh-CN") == "配置无效：\n  - x.yaml:3: something a plugin wrote"


# ------------------------------------------------------------------ as the operator reads them

#: stops at the model's validation: an unknown key, a missing id, a wrong type, a number out of range
SHAPE = """\
communities:
  - id: demo
    name: 演示
    bogus: 1
    groups:
      - platform: sim
      - id: g-2
        capacity: lots
      - id: g-3
        capacity: 0
"""

#: validates, then fails on meaning: a group twice, an unknown playbook, a playbook setting out of range
MEANING = """\
communities:
  - id: demo
    name: 演示
    groups:
      - id: g-main
      - id: g-main
    playbooks:
      chekin: {}
      checkin:
        points: -1
"""

EXPECTED = {
    "shape": (SHAPE, [
        ("4: communities.0.bogus: unknown key", "4: communities.0.bogus: 未知的配置项"),
        ("6: communities.0.groups.0.id: required key is missing", "6: communities.0.groups.0.id: 缺少必填的配置项"),
        ("8: communities.0.groups.1.capacity: Input should be a valid integer, unable to parse string as an integer",
         "8: communities.0.groups.1.capacity: 应为整数，这段文字不是整数"),
        ("10: communities.0.groups.2.capacity: Input should be greater than or equal to 1",
         "10: communities.0.groups.2.capacity: 应大于或等于 1"),
    ], ("hint: see docs/configuration.md", "提示: 请参阅 docs/configuration.md")),
    "meaning": (MEANING, [
        ("6: group 'g-main' on sim is already in community 'demo'", "6: sim 上的群 'g-main' 已属于社群 'demo'"),
        ("8: unknown playbook 'chekin' (did you mean 'checkin'?); installed: ",
         "8: 未知玩法 'chekin'（是不是 'checkin'？）；已安装："),
        ("10: communities.0.playbooks.checkin.points: Input should be greater than or equal to 0",
         "10: communities.0.playbooks.checkin.points: 应大于或等于 0"),
    ], ("hint: fix the lines above", "提示: 请修改以上各行")),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_doctor_says_the_problems_in_the_operators_language(
    case: str, lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, lines, hint = EXPECTED[case]
    path = tmp_path / "qunyun.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("QUNYUN_LANG", lang)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["doctor", "--config", str(path), "--db", f"sqlite:///{tmp_path / 'no.db'}"])
    assert result.exit_code == 1, result.output
    zh = lang == "zh-CN"
    for en_line, zh_line in lines:
        # the file and line start the problem in either language
        assert f"{path}:{zh_line if zh else en_line}" in result.output, result.output
        assert f"{path}:{en_line if zh else zh_line}" not in result.output
    assert (hint[1] if zh else hint[0]) in result.output
    if zh:  # nothing of the configuration's problems is left in English
        for english in ("invalid configuration", "unknown key", "required key", "Input should", "already in",
                        "unknown playbook", "hint: see docs", "hint: fix"):
            assert english not in result.output, english


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_error_line_of_any_command_is_in_the_operators_language(
    lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import qunyun.cli as cli

    path = tmp_path / "qunyun.yaml"
    path.write_text(MEANING, encoding="utf-8")
    monkeypatch.setattr(cli, "app", lambda: load_settings(str(path)))
    monkeypatch.setenv("QUNYUN_LANG", lang)
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    if lang == "zh-CN":
        assert "错误: 配置无效：" in err and f"{path}:6: sim 上的群 'g-main' 已属于社群 'demo'" in err, err
        assert "提示: 请修改以上各行" in err and "invalid configuration" not in err
    else:
        assert "error: invalid configuration:" in err
        assert f"{path}:6: group 'g-main' on sim is already in community 'demo'" in err, err
        assert "hint: fix the lines above" in err


ADAPTERS = """\
deployment:
  adapters:
    - type: onebot
      host: 0.0.0.0
      port: 70000
    - type: telegrm
    - type: telegram
      token_env: QY_TEST_TELEGRAM_TOKEN
      mode: webhook
      webhook:
        url: http://bot.example.org/hook
        secret_env: QY_TEST_TELEGRAM_SECRET
    - type: telegram
      platform: tg2
      token_env: QY_TEST_TELEGRAM_TOKEN
communities:
  - id: demo
    name: 演示
"""


def test_the_adapters_problems_read_in_both_languages() -> None:
    located = load_yaml(ADAPTERS, "run.yaml")
    _rest, raw = split_adapters(located)
    with pytest.raises(ConfigError) as info:
        parse_adapters(raw, located, env={})
    exc = info.value
    assert exc.problems == [
        "run.yaml:5: deployment.adapters.0.port: Input should be less than or equal to 65535",
        "run.yaml:6: deployment.adapters.1.type: unknown adapter type 'telegrm' (did you mean 'telegram'?); "
        "known: onebot, telegram, matrix",
        "run.yaml:11: deployment.adapters.2.webhook.url: Value error, Telegram only posts to https:// addresses, "
        "e.g. https://bot.example.org/telegram/webhook",
        "run.yaml:13: deployment.adapters.3.token_env: environment variable QY_TEST_TELEGRAM_TOKEN is not set",
    ]
    assert exc.problems_in("zh-CN") == [
        "run.yaml:5: deployment.adapters.0.port: 应小于或等于 65535",
        "run.yaml:6: deployment.adapters.1.type: 未知的适配器类型 'telegrm'（是不是 'telegram'？）；"
        "可用：onebot, telegram, matrix",
        "run.yaml:11: deployment.adapters.2.webhook.url: 取值无效：Telegram 只会向 https:// 地址推送，"
        "例如 https://bot.example.org/telegram/webhook",
        "run.yaml:13: deployment.adapters.3.token_env: 没有设置环境变量 QY_TEST_TELEGRAM_TOKEN",
    ]
    assert exc.localized("zh-CN").endswith("提示: 参见 docs/adapters.md 和 docs/onebot.md")


def test_an_open_onebot_listener_is_refused_in_both_languages() -> None:
    text = "deployment:\n  adapters:\n    - type: onebot\n      host: 0.0.0.0\n      version: 12\n" \
           "      secret_env: QY_TEST_ONEBOT_SECRET\n"
    located = load_yaml(text, "run.yaml")
    with pytest.raises(ConfigError) as info:
        parse_adapters(split_adapters(located)[1], located, env={})
    pairs = list(zip(info.value.problems, info.value.problems_in("zh-CN"), strict=True))
    assert [en.split(": ", 2)[:2] for en, _ in pairs] == [[f"run.yaml:{n}", key] for n, key in (
        (6, "deployment.adapters.0.secret_env"), (6, "deployment.adapters.0.secret_env"),
        (4, "deployment.adapters.0.host"))]
    assert [zh.split(": ", 2)[:2] for _, zh in pairs] == [en.split(": ", 2)[:2] for en, _ in pairs]
    assert "environment variable QY_TEST_ONEBOT_SECRET is not set" in pairs[0][0]
    assert "没有设置环境变量 QY_TEST_ONEBOT_SECRET" in pairs[0][1]
    assert "OneBot 12 的 webhook 用访问令牌认证" in pairs[1][1]
    assert "listening on 0.0.0.0 without an access token" in pairs[2][0]
    assert "不设访问令牌就在 0.0.0.0 上监听" in pairs[2][1]

"""Message templates: ``{name}`` placeholders, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from qunyun.engine import Context, Playbook, Registry
from qunyun.engine.templates import pick, render
from qunyun.playbooks.checkin import Checkin
from qunyun.testing import Chat


def test_placeholders_are_filled() -> None:
    assert render("欢迎 {name}，你是第 {n} 位", {"name": "小王", "n": 7}) == "欢迎 小王，你是第 7 位"


def test_a_placeholder_may_repeat() -> None:
    assert render("{a}-{a}-{b}", {"a": 1, "b": "x"}) == "1-1-x"


def test_values_are_shown_with_str() -> None:
    assert render("{x} {y} {z}", {"x": None, "y": 1.5, "z": [1]}) == "None 1.5 [1]"


def test_double_braces_are_literal_braces() -> None:
    assert render("{{name}} is written as {{name}}", {"name": "x"}) == "{name} is written as {name}"
    assert render("{{{name}}}", {"name": "x"}) == "{x}"
    assert render("}} {{", {}) == "} {"


def test_unknown_placeholders_are_left_as_written() -> None:
    assert render("hi {nmae}", {"name": "x"}) == "hi {nmae}"
    assert render("{a} {b}", {"a": 1}) == "1 {b}"


@pytest.mark.parametrize(
    "template",
    [
        "{user.name}",
        "{user.__class__}",
        "{user[0]}",
        "{0}",
        "{}",
        "{name!r}",
        "{name:>10}",
        "{ name }",
    ],
)
def test_no_attribute_access_indexing_or_format_specs(template: str) -> None:
    class Secret:
        name = "leaked"

        def __getitem__(self, _: object) -> str:
            return "leaked"

    assert render(template, {"user": Secret(), "name": "n", "0": "leaked"}) == template


def test_values_are_not_templates_themselves() -> None:
    # a member called "{secret}" must not pull another value in
    assert render("hi {name}", {"name": "{secret}", "secret": "s3cret"}) == "hi {secret}"


def test_single_braces_without_a_name_are_kept() -> None:
    assert render("a { b } c", {}) == "a { b } c"
    assert render("json: {\"k\": 1}", {}) == "json: {\"k\": 1}"


def test_empty_template() -> None:
    assert render("", {"a": 1}) == ""


# --------------------------------------------------------------------------- pick


DEFAULTS = {"hello": {"zh-CN": "你好 {name}", "en": "Hello {name}"}, "only_zh": {"zh-CN": "仅中文"}}


def test_pick_uses_the_locale() -> None:
    assert pick(DEFAULTS, {}, "pb", "hello", "zh-CN") == "你好 {name}"
    assert pick(DEFAULTS, {}, "pb", "hello", "en") == "Hello {name}"


def test_pick_prefers_the_operator() -> None:
    overrides = {"pb.hello": {"zh-CN": "嗨 {name}", "en": "Hi {name}"}}
    assert pick(DEFAULTS, overrides, "pb", "hello", "zh-CN") == "嗨 {name}"
    # an override for another playbook does not apply
    assert pick(DEFAULTS, {"other.hello": {"en": "x"}}, "pb", "hello", "en") == "Hello {name}"


def test_pick_falls_back_to_english_then_anything() -> None:
    assert pick({"t": {"zh-CN": "中", "en": "en"}}, {}, "pb", "t", "fr") == "en"
    assert pick(DEFAULTS, {}, "pb", "only_zh", "en") == "仅中文"


def test_pick_unknown_template() -> None:
    with pytest.raises(KeyError, match="no template 'nope'"):
        pick(DEFAULTS, {}, "pb", "nope", "en")


# --------------------------------------------------------------------------- through ctx.render


class Greeter(Playbook):
    id = "greeter"
    handles = frozenset({"member_joined"})
    emits = frozenset({"send"})
    templates: ClassVar[dict[str, dict[str, str]]] = {"hello": {"zh-CN": "欢迎 {name}！{{不是占位符}} {missing}", "en": "Welcome {name}!"}}

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.send(ctx.render("hello", name=ctx.name(event.actor.id)))


REG = Registry({"greeter": Greeter, "checkin": Checkin})
MakeChat = Callable[..., Chat]


def test_ctx_render_uses_the_community_locale(make_chat: MakeChat) -> None:
    zh: Chat = make_chat({"greeter": {}}, registry=REG)
    zh.join("u1", "\u202e小王")
    zh.assert_sent("欢迎 小王！{不是占位符} {missing}", count=1)
    en: Chat = make_chat({"greeter": {}}, registry=REG, locale="en", groups=("g-en",))
    # the two chats share this test's database: give the event an id of its own
    en.event("member_joined", "u2", name="Wang", group="g-en", id="evt-en", via="link")
    en.assert_sent("Welcome Wang!", count=1)


def test_operator_templates_override_a_playbooks_words(make_chat: MakeChat) -> None:
    chat: Chat = make_chat(
        {"checkin": {}},
        registry=REG,
        templates={"checkin.done": {"zh-CN": "{name} 打卡 ✔ 连续{streak}天 {{name}}",
                                    "en": "{name} checked in"}},
    )
    chat.say("u1", "打卡", name="小李")
    chat.assert_sent("小李 打卡 ✔ 连续1天 {name}", count=1)


def test_operator_templates_may_use_escaped_braces(make_chat: MakeChat) -> None:
    chat: Chat = make_chat(
        {"checkin": {}},
        registry=REG,
        templates={"checkin.done": "{name} 打卡 {{不变}}"},
    )
    chat.say("u1", "打卡", name="小李")
    chat.assert_sent("小李 打卡 {不变}", count=1)

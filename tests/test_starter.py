"""The starter configuration (`qunyun init`) and the generated configuration reference."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from qunyun.config import load_settings
from qunyun.config.model import CommunitySpec, DeploymentSpec, GroupSpec
from qunyun.config.starter import LANGS, render_starter, type_name, yaml_inline
from qunyun.engine import Playbook, PlaybookConfig
from qunyun.engine.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parent.parent


def write_starter(tmp_path: Path, lang: str, registry: Registry | None = None) -> tuple[Path, str]:
    text = render_starter(
        lang, registry=registry, default_database="sqlite:////srv/qunyun/qunyun.db"
    )
    path = tmp_path / f"qunyun.{lang}.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def comment_text(text: str) -> str:
    """Every comment of the file run together, without any whitespace."""
    parts = [line.split("#", 1)[1] for line in text.splitlines() if line.lstrip().startswith("#")]
    return re.sub(r"\s+", "", "".join(parts))


def uncomment(text: str, start: str, stop: str | None = None) -> str:
    """Remove the comment mark from the lines from ``start`` (a commented line) up to a
    line that is not commented (or ``stop``), keeping their indentation."""
    lines = text.splitlines()
    out = []
    active = False
    for line in lines:
        stripped = line.lstrip()
        if not active and stripped == start:
            active = True
        elif active and (not stripped.startswith("#") or (stop is not None and stripped == stop)):
            active = False
        if active and stripped.startswith("# "):
            indent = len(line) - len(stripped)
            line = " " * indent + stripped[2:]
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("lang", LANGS)
def test_starter_loads_in_both_languages(tmp_path: Path, lang: str) -> None:
    path, text = write_starter(tmp_path, lang)
    settings = load_settings(str(path))
    community = settings.communities["my-community"]
    assert community.locale == lang
    assert community.timezone == "Asia/Shanghai"
    groups = {key: g for (_, key), g in community.groups.items()}
    assert set(groups) == {"g-main", "g-admins"}
    assert groups["g-admins"].admin is True
    assert groups["g-main"].admin is False
    # the starter set is on in the main group, the other built-ins are written but off,
    # and nothing is on in the admins' group
    from qunyun.playbooks import BUILTINS, STARTER_ON

    installed = default_registry().ids()
    assert set(groups["g-main"].playbooks) == set(installed) - (set(BUILTINS) - set(STARTER_ON))
    for pid in set(BUILTINS) - set(STARTER_ON):
        assert re.search(rf"^      {pid}:\n(?:\s*#.*\n)*\s*enabled: false", text, re.M), pid
    assert groups["g-admins"].playbooks == {}
    assert community.roles  # example role ids
    assert settings.database is None  # the URL is commented: secrets come from the environment
    assert "# database: sqlite:////srv/qunyun/qunyun.db" in text
    assert "postgresql+psycopg://" in text
    assert "QUNYUN_DATABASE_URL" in text


@pytest.mark.parametrize("lang", LANGS)
def test_every_playbook_and_every_setting_is_written_with_its_default(
    tmp_path: Path, lang: str
) -> None:
    _, text = write_starter(tmp_path, lang)
    data = yaml.safe_load(text)
    written = data["communities"][0]["playbooks"]
    registry = default_registry()
    from qunyun.playbooks import BUILTINS

    # built-ins in working order (moderation first, so it can suppress spam), then the rest
    assert list(written)[: len(BUILTINS)] == list(BUILTINS)
    assert sorted(written) == sorted(registry.ids())
    from qunyun.playbooks import STARTER_ON

    for pb in registry:
        cfg = written[pb.id]
        assert set(cfg) == set(pb.config_model.model_fields), pb.id
        # the written values are exactly the defaults (nothing lost in YAML), but
        # the built-ins outside the starter set are written switched off
        expected = pb.config_model()
        if pb.id in BUILTINS and pb.id not in STARTER_ON:
            expected = expected.model_copy(update={"enabled": False})
            assert cfg["enabled"] is False, pb.id
        assert pb.config_model.model_validate(cfg) == expected, pb.id


@pytest.mark.parametrize("lang", LANGS)
def test_every_core_key_appears(tmp_path: Path, lang: str) -> None:
    _, text = write_starter(tmp_path, lang)
    data = yaml.safe_load(text)
    for key in DeploymentSpec.model_fields:
        assert re.search(rf"^\s*(# )?{key}:", text, re.M), key
    community = data["communities"][0]
    for key in CommunitySpec.model_fields:
        assert key in community or f"# {key}:" in text, key
    admins = community["groups"][1]
    for key in GroupSpec.model_fields:
        assert key in admins, key
    main = community["groups"][0]
    assert set(GroupSpec.model_fields) - set(main) == {"playbooks"}  # shown as a commented example


@pytest.mark.parametrize("lang", LANGS)
def test_field_descriptions_are_comments(tmp_path: Path, lang: str) -> None:
    _, text = write_starter(tmp_path, lang)
    comments = comment_text(text)
    for pb in default_registry():
        for name, field in pb.config_model.model_fields.items():
            if field.description:
                assert re.sub(r"\s+", "", field.description) in comments, (pb.id, name)


@pytest.mark.parametrize("lang", LANGS)
def test_templates_are_shown_in_the_chosen_language_and_can_be_uncommented(
    tmp_path: Path, lang: str
) -> None:
    _, text = write_starter(tmp_path, lang)
    registry = default_registry()
    expected: dict[str, str] = {}
    for pb in registry:
        for name, texts in pb.templates.items():
            chosen = texts.get(lang) or texts["en"]
            expected[f"{pb.id}.{name}"] = chosen
            assert json.dumps(chosen, ensure_ascii=False) in text, f"{pb.id}.{name}"
    assert expected, "no installed playbook has templates"
    opened = uncomment(text, "# templates:")
    path = tmp_path / "with-templates.yaml"
    path.write_text(opened, encoding="utf-8")
    settings = load_settings(str(path))
    templates = settings.communities["my-community"].templates
    assert set(templates) == set(expected)
    for key, value in expected.items():
        assert templates[key][lang] == value


@pytest.mark.parametrize("lang", LANGS)
def test_per_group_override_example_works_when_uncommented(tmp_path: Path, lang: str) -> None:
    _, text = write_starter(tmp_path, lang)
    opened = uncomment(text, "# playbooks:")
    assert opened != text
    path = tmp_path / "with-override.yaml"
    path.write_text(opened, encoding="utf-8")
    settings = load_settings(str(path))
    main = settings.communities["my-community"].groups[("sim", "g-main")]
    overridden = yaml.safe_load(opened)["communities"][0]["groups"][0]["playbooks"]
    ((pid, values),) = overridden.items()
    for key, value in values.items():
        assert getattr(main.playbooks[pid], key) == value


def test_header_is_in_the_chosen_language() -> None:
    zh = render_starter("zh-CN", path="conf/qunyun.yaml")
    en = render_starter("en", path="conf/qunyun.yaml")
    assert "下一步" in zh and "Next steps" not in zh
    assert "Next steps" in en and "下一步" not in en
    for text in (zh, en):
        assert "qunyun doctor --config conf/qunyun.yaml" in text
        assert "qunyun replay" in text
        assert text.startswith("# ")
    assert "locale: zh-CN" in zh and "locale: en" in en


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="zh-CN, en"):
        render_starter("fr")


# --- the generator works from any playbook's model, not from known fields ----------


class Rule(BaseModel):
    """A nested rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    on: bool = Field(default=True, description="Switch the rule.")
    words: list[str] = Field(default_factory=lambda: ["a,b", "[x]", "yes", "#tag"])


class OddConfig(PlaybookConfig):
    mode: Literal["soft", "hard"] = Field(default="soft", description="How strict.")
    ratio: float = Field(default=0.5, ge=0, le=1)
    tiers: dict[int, str] = Field(default_factory=lambda: {1: "铜", 10: "银: 二级"})
    note: str = Field(default='line one\nline "two" {x}', description="A multi-line text.")
    empty: str = ""
    maybe: int | None = None
    rule: Rule = Field(default_factory=Rule)
    rules: list[Rule] = Field(default_factory=lambda: [Rule(), Rule(on=False, words=[])])
    long_list: list[str] = Field(default_factory=lambda: [f"keyword number {i}" for i in range(20)])


class Odd(Playbook):
    id = "odd"
    config_model = OddConfig
    summary: ClassVar[dict[str, str]] = {"en": "A playbook with unusual settings."}
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "hello": {"zh-CN": "你好 {name}", "en": "Hello {name}:\n{rest}"}
    }


class Bare(Playbook):
    id = "bare"


@pytest.mark.parametrize("lang", LANGS)
def test_any_playbook_model_round_trips(tmp_path: Path, lang: str) -> None:
    registry = Registry({"odd": Odd, "bare": Bare})
    path, text = write_starter(tmp_path, lang, registry)
    settings = load_settings(str(path), registry)
    group = settings.communities["my-community"].groups[("sim", "g-main")]
    assert group.playbooks["odd"] == OddConfig()
    assert set(group.playbooks) == {"odd", "bare"}
    assert "# How strict. [soft | hard]" in text
    assert "Switch the rule." in text
    assert "A playbook with unusual settings." in text
    opened = uncomment(text, "# templates:")
    (tmp_path / "t.yaml").write_text(opened, encoding="utf-8")
    loaded = load_settings(str(tmp_path / "t.yaml"), registry)
    assert "odd.hello" in loaded.communities["my-community"].templates


class NeedsConfig(PlaybookConfig):
    token: str = Field(description="An API token the operator must give.")
    level: int = 1


class Needs(Playbook):
    id = "needs"
    config_model = NeedsConfig


@pytest.mark.parametrize("lang", LANGS)
def test_a_playbook_with_required_settings_is_written_commented_out(
    tmp_path: Path, lang: str
) -> None:
    registry = Registry({"needs": Needs, "odd": Odd})
    path, text = write_starter(tmp_path, lang, registry)
    settings = load_settings(str(path), registry)
    community = settings.communities["my-community"]
    assert set(community.playbook_specs) == {"odd"}
    assert "An API token the operator must give." in text
    opened = uncomment(text, "# needs:").replace("token:", "token: abc", 1)
    (tmp_path / "n.yaml").write_text(opened, encoding="utf-8")
    loaded = load_settings(str(tmp_path / "n.yaml"), registry)
    assert (
        loaded.communities["my-community"].groups[("sim", "g-main")].playbooks["needs"].token
        == "abc"
    )
    # only playbooks needing input: the section is an empty mapping plus comments
    only = Registry({"needs": Needs})
    path, _ = write_starter(tmp_path, lang, only)
    assert load_settings(str(path), only).communities["my-community"].playbook_specs == {}


def test_no_playbooks_installed_still_loads(tmp_path: Path) -> None:
    path, _ = write_starter(tmp_path, "en", Registry())
    settings = load_settings(str(path), Registry())
    assert settings.communities["my-community"].playbook_specs == {}


def test_type_names_and_inline_yaml() -> None:
    assert type_name(list[str]) == "list of text"
    assert type_name(int | None) == "integer or null"
    assert type_name(dict[str, int]) == "mapping of text to integer"
    assert type_name(Literal["a", "b"]) == "a | b"
    assert type_name(bool) == "true/false"
    assert yaml_inline("0 21 * * *") == "0 21 * * *"
    assert yaml.safe_load(yaml_inline("yes")) == "yes"
    assert yaml.safe_load(yaml_inline("a\nb")) == "a\nb"
    assert yaml.safe_load(yaml_inline({7: 20})) == {7: 20}
    assert yaml.safe_load(yaml_inline(["#打卡", "a, b"])) == ["#打卡", "a, b"]


# --- docs/configuration.md ------------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts" / "gen_config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_up_to_date() -> None:
    expected = _generator().render()
    current = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/configuration.md is out of date with the configuration models: "
        "run `python scripts/gen_config_docs.py` and commit the result"
    )


def test_configuration_reference_covers_every_key() -> None:
    text = _generator().render()
    for model in (DeploymentSpec, CommunitySpec, GroupSpec):
        for key in model.model_fields:
            assert f"| `{key}` |" in text, key
    for pb in default_registry():
        if not pb.__module__.startswith("qunyun."):
            continue
        assert f"### `{pb.id}`" in text
        for key in pb.config_model.model_fields:
            assert f"| `{key}` |" in text, (pb.id, key)

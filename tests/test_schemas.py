"""The committed JSON Schemas are the models' own, and they accept the contract's examples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from qunyun.core.actions import ACTION_TYPES
from qunyun.core.events import EVENT_TYPES
from qunyun.core.ids import action_id
from tests.test_actions import SAMPLES as ACTION_SAMPLES
from tests.test_events import ARCHITECTURE_EXAMPLE
from tests.test_events import SAMPLES as EVENT_SAMPLES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schema"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts" / "gen_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = load_script()


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


EVENTS = validator("event.schema.json")
ACTIONS = validator("action.schema.json")


# --------------------------------------------------------------------------- no drift


@pytest.mark.parametrize("name", ["event.schema.json", "action.schema.json"])
def test_committed_schemas_equal_the_generated_ones(name: str) -> None:
    generated = GEN.schemas()
    assert set(generated) == {"event.schema.json", "action.schema.json"}
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == GEN.render(generated[name]), (
        f"docs/schema/{name} is stale: run python scripts/gen_schemas.py"
    )


def test_the_generator_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert GEN.main(["--check"]) == 0
    # a stale copy is found and left alone
    (tmp_path / "event.schema.json").write_text("{}\n", encoding="utf-8")
    assert GEN.main(["--check", "--out", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().out
    assert (tmp_path / "event.schema.json").read_text(encoding="utf-8") == "{}\n"
    # writing makes it current
    assert GEN.main(["--out", str(tmp_path)]) == 0
    assert GEN.main(["--check", "--out", str(tmp_path)]) == 0
    for name in ("event.schema.json", "action.schema.json"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (SCHEMA_DIR / name).read_text(
            encoding="utf-8"
        )


def test_schemas_name_their_dialect_and_title() -> None:
    for v in (EVENTS, ACTIONS):
        assert v.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "(v1)" in v.schema["title"]


def test_schemas_know_every_type() -> None:
    assert set(EVENTS.schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert set(ACTIONS.schema["discriminator"]["mapping"]) == set(ACTION_TYPES)


def test_action_schema_refuses_unknown_fields_event_schema_keeps_them() -> None:
    for name, definition in ACTIONS.schema["$defs"].items():
        assert definition.get("additionalProperties") is False, name
    for name in ("Message", "Actor", "Payment"):
        assert EVENTS.schema["$defs"][name].get("additionalProperties") is True, name


# --------------------------------------------------------------------------- examples


def test_the_architecture_example_event_validates() -> None:
    EVENTS.validate(json.loads(ARCHITECTURE_EXAMPLE))


def test_the_architecture_example_action_validates() -> None:
    # the example of ARCHITECTURE.md with its elisions ("act-…", "…") filled in
    example = {
        "v": 1,
        "id": action_id("evt-1", "welcome", 0),
        "ts": "2026-11-02T08:01:00+08:00",
        "group": "g-main",
        "type": "send",
        "text": "欢迎 @小王",
        "mentions": ["u-17"],
        "reply_to": None,
        "playbook": "welcome",
        "cause": "evt-1",
    }
    ACTIONS.validate(example)


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_every_event_sample_validates(etype: str) -> None:
    data, _ = EVENT_SAMPLES[etype]
    EVENTS.validate(data)


@pytest.mark.parametrize("atype", ACTION_TYPES)
def test_every_action_sample_validates(atype: str) -> None:
    ACTIONS.validate(ACTION_SAMPLES[atype])


def _event(**changes: Any) -> dict[str, Any]:
    data = dict(json.loads(ARCHITECTURE_EXAMPLE))
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    "bad",
    [
        _event(msg_id=None),
        _event(type="poke"),
        _event(v=2),
        _event(id=""),
        _event(mentions="u-2"),
        _event(content_type="hologram"),
        {"v": 1, "id": "e", "ts": "2026-11-02T08:01:00+08:00", "platform": "sim", "group": "g",
         "type": "payment", "actor": {"id": "u"}, "amount": 12.5, "currency": "CNY"},
        [1, 2],
    ],
)
def test_the_event_schema_refuses_bad_events(bad: Any) -> None:
    assert not EVENTS.is_valid(bad)


def test_the_event_schema_keeps_unknown_fields() -> None:
    EVENTS.validate(_event(x_raw={"anything": [1, 2]}))


@pytest.mark.parametrize(
    "bad",
    [
        {**ACTION_SAMPLES["send"], "colour": "red"},
        {**ACTION_SAMPLES["send"], "type": "launch"},
        {k: v for k, v in ACTION_SAMPLES["delete"].items() if k != "msg_id"},
        {**ACTION_SAMPLES["send"], "v": 2},
    ],
)
def test_the_action_schema_refuses_bad_actions(bad: Any) -> None:
    assert not ACTIONS.is_valid(bad)

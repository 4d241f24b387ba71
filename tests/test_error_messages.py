"""Operators read refusals in zh-CN and en: every ``CommandError`` is a ``Msg`` with its translation.

The source is read, not run: each ``raise CommandError(...)`` (or
``StoreError``) must give its message (and hint) as ``Msg("template", ...)``
with a literal template (or pass on a caught error's ``.message``), and
the template must have a zh-CN entry in ``core/locales/*.yaml`` with the same
placeholders. A new refusal written as a plain f-string fails here with its
file and line.
"""

from __future__ import annotations

import ast
import pickle
import string
from pathlib import Path

import pytest

from qunyun.config.problems import PYDANTIC_KEY, PYDANTIC_TYPES
from qunyun.core.errors import CommandError, Msg, QunyunError, catalog

SRC = Path(__file__).resolve().parents[1] / "src" / "qunyun"
#: errors whose texts operators read (ConfigError's problems are checked by tests/test_config_messages.py)
LOCALIZED = {"CommandError", "StoreError"}


def _fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def _shapes(template: str) -> set[tuple[str, str, str]]:
    """Each placeholder with its conversion and format spec: ``{n:,}`` given a string would raise."""
    return {(name, conv or "", spec or "") for _, name, spec, conv in string.Formatter().parse(template) if name}


def _msg_template(node: ast.expr) -> str | None:
    """The literal template of ``Msg("...", ...)``, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Msg" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _scan() -> tuple[list[str], dict[str, list[str]]]:
    """(problems, template → places it is used)."""
    problems: list[str] = []
    used: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(SRC.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _msg_template(node) is not None:
                template = _msg_template(node) or ""
                used.setdefault(template, []).append(f"{rel}:{node.lineno}")
                given = {kw.arg for kw in node.keywords}
                if None not in given and given != _fields(template):  # a missing value is a KeyError at the raise
                    problems.append(f"{rel}:{node.lineno}: Msg({template!r}) is given {sorted(given)}, "
                                    f"its template needs {sorted(_fields(template))}")
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            call = node.exc
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            if name not in LOCALIZED:
                continue
            passed_on = bool(call.args) and isinstance(call.args[0], ast.Attribute) and call.args[0].attr == "message"
            if not call.args or (_msg_template(call.args[0]) is None and not passed_on):  # exc.message: a Msg already
                problems.append(f"{rel}:{node.lineno}: {name}'s message is not Msg(\"literal template\", ...)")
            for kw in call.keywords:
                if kw.arg == "hint" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None) \
                        and _msg_template(kw.value) is None:
                    problems.append(f"{rel}:{node.lineno}: {name}'s hint is not Msg(\"literal template\", ...)")
    return problems, used


def test_every_refusal_is_a_translatable_message() -> None:
    problems, used = _scan()
    assert used, "no Msg found at all: the scan would pass vacuously"
    assert not problems, f"{len(problems)} refusal(s) English-only:\n" + "\n".join(problems)


def test_every_message_has_a_zh_cn_text_with_the_same_placeholders() -> None:
    _, used = _scan()
    texts = catalog()
    missing = [f"{where[0]}: {template!r}" for template, where in used.items() if template not in texts]
    assert not missing, f"{len(missing)} message(s) without zh-CN in core/locales/:\n" + "\n".join(missing)
    wrong = [f"{where[0]}: {template!r} → {texts[template]!r}" for template, where in used.items()
             if _shapes(texts[template]) != _shapes(template)]
    assert not wrong, "placeholders differ between en and zh-CN:\n" + "\n".join(wrong)


def test_the_catalogue_has_no_stale_entries() -> None:
    _, used = _scan()
    # pydantic's messages are looked up by error type from a table, not written as Msg("...")
    stale = sorted(t for t in set(catalog()) - set(used) if not t.startswith(PYDANTIC_KEY))
    assert not stale, f"{len(stale)} catalogue entr(ies) no code uses: {stale[:10]}"
    unknown = sorted(t for t in catalog() if t.startswith(PYDANTIC_KEY) and t[len(PYDANTIC_KEY):] not in PYDANTIC_TYPES)
    assert not unknown, f"pydantic error types in the catalogue but not in config.problems.PYDANTIC_TYPES: {unknown}"


def test_a_message_reads_in_either_language() -> None:
    template = next(iter(catalog()))
    fields = {name: f"<{name}>" for name in _fields(template)}
    msg = Msg(template, **fields)
    assert str(msg) == template.format(**fields)
    assert msg.in_lang("en") == str(msg)
    assert msg.in_lang("zh-CN") == catalog()[template].format(**fields)
    assert msg.in_lang("zh-CN") != str(msg)


def test_a_refusal_localizes_its_hint_and_survives_pickling() -> None:
    template = next(t for t in catalog() if not _fields(t))
    exc = CommandError(Msg(template), hint=Msg(template))
    zh = exc.localized("zh-CN")
    assert zh == f"{catalog()[template]}\n  提示: {catalog()[template]}"
    assert exc.localized("en", with_hint=False) == template
    again = pickle.loads(pickle.dumps(exc.message))
    assert isinstance(again, Msg) and again.in_lang("zh-CN") == catalog()[template]


def test_a_plain_message_stays_as_written() -> None:
    exc = QunyunError("database at /x is not reachable", hint="start it")
    assert exc.localized("zh-CN") == "database at /x is not reachable\n  提示: start it"
    assert exc.localized("en") == str(exc)


def test_the_cli_prints_a_refusal_in_the_operators_language(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import qunyun.cli as cli

    template = next(t for t in catalog() if not _fields(t))

    def refuse() -> None:
        raise CommandError(Msg(template))

    monkeypatch.setattr(cli, "app", refuse)
    for lang, label, text in (("zh-CN", "错误", catalog()[template]), ("en", "error", template)):
        monkeypatch.setenv("QUNYUN_LANG", lang)
        with pytest.raises(SystemExit) as stopped:
            cli.main()
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"{label}:" in err and text in " ".join(err.split()), err

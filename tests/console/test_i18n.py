"""Every word the console shows exists in zh-CN and en, and user content is never marked safe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from qunyun.console import i18n
from qunyun.console.i18n import LANGS, Labels, catalog, from_accept_language, normalize

CONSOLE = Path(i18n.__file__).parent
KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.\-]+)["']""")


def test_every_label_has_both_languages() -> None:
    missing = [(key, lang) for key, texts in catalog().items() for lang in LANGS if not texts.get(lang)]
    assert missing == []
    # exactly the two languages: an unquoted comma in a flow mapping splits the text into a stray key
    stray = {key: sorted(texts) for key, texts in catalog().items() if set(texts) != set(LANGS)}
    assert stray == {}, "quote texts that contain a comma"
    assert len(catalog()) > 50


def test_every_label_used_exists() -> None:
    used: dict[str, str] = {}
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.rglob("*.py")]:
        for key in KEY.findall(path.read_text(encoding="utf-8")):
            used.setdefault(key, str(path.relative_to(CONSOLE)))
    # a key ending in "." or "_" is a prefix completed at run time: t("role." ~ role), t("x.confirm_" ~ kind)
    unknown = {key: where for key, where in used.items() if key not in catalog() and not key.endswith((".", "_"))}
    assert unknown == {}, "labels used but not defined in console/locales/*.yaml"


def test_a_label_defined_twice_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text("x.y: {en: a, zh-CN: 甲}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("x.y: {en: b, zh-CN: 乙}\n", encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"b\.yaml: label 'x\.y' is defined twice"):
            catalog()
    finally:
        catalog.cache_clear()


def test_language_choice() -> None:
    assert normalize("zh_CN") == normalize("zh-cn") == normalize("zh") == "zh-CN"
    assert normalize("en-US") == "en" and normalize("fr") is None and normalize(None) is None
    assert from_accept_language("fr-FR,fr;q=0.9,en;q=0.8") == "en"
    assert from_accept_language("zh-TW,zh;q=0.9") == "zh-CN"
    t = Labels("en")
    assert t("table.page", page=2, pages=5, total="1,000") == "Page 2 of 5 · 1,000 rows"
    assert Labels("zh-CN")("nav.members") == "成员"
    assert t("no.such.key") == "no.such.key"


def test_only_our_own_svg_is_marked_safe() -> None:
    """`|safe` turns escaping off: only for chart SVG we drew (variables named *svg)."""
    offenders = []
    for path in CONSOLE.rglob("*.html"):
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for expr in re.findall(r"\{\{([^}]*)\|\s*safe", line):
                if not re.search(r"svg\s*$", expr.strip()):
                    offenders.append(f"{path.relative_to(CONSOLE)}:{line_no}: {line.strip()}")
    assert offenders == []


def test_locale_files_parse_as_mappings() -> None:
    for path in (CONSOLE / "locales").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict), path.name

"""The configuration editor shows the problems in the page's language; the API keeps English.

Privacy comes first: the editor decides on the English text what it may show (never another
community), and only then gives what it shows in zh-CN or en.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from qunyun.console.pages.config import MAX_TEXT, Section, check, find_section
from tests.console.conftest import OTHER, Site, config_problems, config_section, csrf_of


def _validate(client: TestClient, text: str, lang: str | None) -> list[tuple[int | None, str]]:
    query = f"?lang={lang}" if lang else ""
    answer = client.post(f"/c/demo/config/validate{query}", data={"text": text, "csrf_token": csrf_of(client)},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 200
    return config_problems(answer.text)


def _where(text: str) -> str:
    found = re.match(r"^(.*?:\d+): ", text)
    assert found, text
    return found.group(1)


def _broken(section: str) -> str:
    """The demo's section with its main group listed twice and a setting out of range."""
    assert "\ngroups:\n" in section and "window_days: 10" in section
    return (section.replace("\ngroups:\n", "\ngroups:\n- id: g-main\n  platform: sim\n", 1)
            .replace("window_days: 10", "window_days: -1", 1))


def test_the_editor_speaks_the_pages_language(demo_site: Site) -> None:
    adam = demo_site.client("adam")
    broken = _broken(config_section(adam))
    zh = _validate(adam, broken, "zh-CN")
    en = _validate(adam, broken, "en")
    assert len(zh) == len(en) == 2
    # the same places, the same editor lines, in either language
    assert [(line, _where(text)) for line, text in zh] == [(line, _where(text)) for line, text in en]
    assert all(line is not None for line, _ in zh)
    assert all(_where(text).startswith(f"{demo_site.config}:") for _, text in zh)
    window = "communities.0.playbooks.elimination.window_days"
    assert f"{window}: Input should be greater than or equal to 1" in " ".join(t for _, t in en)
    assert f"{window}: 应大于或等于 1" in " ".join(t for _, t in zh)
    assert any(t.endswith(": group 'g-main' on sim is already in community 'demo'") for _, t in en)
    assert any(t.endswith(": sim 上的群 'g-main' 已属于社群 'demo'") for _, t in zh)
    for _, text in zh:
        assert "Input should" not in text and "already in community" not in text
    # the community's language (zh-CN here) when the page is not told otherwise
    assert _validate(adam, broken, None) == zh
    # the API stays English: the same texts as the English page
    api = adam.post("/api/v1/communities/demo/config/validate", json={"text": broken},
                    headers={"X-CSRF-Token": csrf_of(adam)}).json()["data"]
    assert [p["text"] for p in api["problems"]] == [text for _, text in en]
    # a refused save shows the same problems in the page's language, and saves nothing
    before = demo_site.config.read_text(encoding="utf-8")
    refused = adam.post("/c/demo/config?lang=zh-CN", data={"text": broken, "csrf_token": csrf_of(adam)})
    assert refused.status_code == 422 and config_problems(refused.text) == zh
    assert demo_site.config.read_text(encoding="utf-8") == before


def test_privacy_is_decided_before_the_translation(demo_site: Site) -> None:
    """A group of another community: said about the section in Chinese, the other never named."""
    adam = demo_site.client("adam")
    section = config_section(adam)
    taken = OTHER["groups"][0]["id"]
    edited = (section.replace("\ngroups:\n", f"\ngroups:\n- id: {taken}\n  platform: sim\n", 1)
              .replace("window_days: 10", "window_days: 0", 1))
    zh = _validate(adam, edited, "zh-CN")
    en = _validate(adam, edited, "en")
    assert len(zh) == len(en) == 2
    assert [(line, _where(text)) for line, text in zh] == [(line, _where(text)) for line, text in en]
    texts = " ".join(text for _, text in zh)
    assert f"sim 上的群 '{taken}' 已在本部署的其他地方使用" in texts
    assert "communities.0.playbooks.elimination.window_days: 应大于或等于 1" in texts
    for secret in ("'other'", OTHER["name"], OTHER["groups"][0]["name"], "already"):
        assert secret not in texts
    taken_line = next(line for line, text in zh if taken in text)
    assert taken_line is not None and edited.split("\n")[taken_line - 1] == f"- id: {taken}"


TWO = """communities:
- id: b
  name: Secret B
  groups:
  - id: g-b
    platform: matrix
- id: a
  name: Community A
  groups:
  - id: g-a
    platform: matrix
"""


def _file(tmp_path: Path, body: str = TWO) -> tuple[Path, Section]:
    path = tmp_path / "qunyun.yaml"
    path.write_text(body, encoding="utf-8")
    return path, find_section(body, "a")


def test_check_gives_the_text_in_the_language_asked_and_english_by_default(tmp_path: Path) -> None:
    path, section = _file(tmp_path)
    edited = section.text.replace("platform: matrix", "platform: matrix\n  capacity: lots")
    english = check(path, section, edited, "a").problems
    chinese = check(path, section, edited, "a", "zh-CN").problems
    line = section.first_line + 5
    key = "communities.1.groups.0.capacity"
    assert [p["text"] for p in english] == [
        f"{path}:{line}: {key}: Input should be a valid integer, unable to parse string as an integer"]
    assert [p["text"] for p in chinese] == [f"{path}:{line}: {key}: 应为整数，这段文字不是整数"]
    assert [(p["line"], p["editor_line"], p["say"]) for p in chinese] == [(line, 6, None)]
    assert [(p["line"], p["editor_line"]) for p in english] == [(line, 6)]


def test_a_problem_outside_the_section_stays_hidden_in_chinese(tmp_path: Path) -> None:
    path, section = _file(tmp_path, TWO.replace("  name: Secret B\n", "  name: Secret B\n  locale: klingon\n"))
    problems = check(path, section, section.text, "a", "zh-CN").problems
    assert len(problems) == 1 and problems[0]["say"]["key"] == "config.problem.outside"
    assert "Secret B" not in str(problems) and "klingon" not in str(problems) and "'b'" not in str(problems)


def test_the_editors_own_problems_carry_their_labels(tmp_path: Path) -> None:
    path, section = _file(tmp_path)
    empty = check(path, section, "  \n", "a", "zh-CN").problems
    assert [p["say"]["key"] for p in empty] == ["config.problem.empty"]
    assert empty[0]["say"]["where"] == f"{path}:{section.first_line}"
    long = check(path, section, "x" * (MAX_TEXT + 1), "a").problems
    assert [p["say"]["key"] for p in long] == ["config.problem.too_long"]
    assert long[0]["text"] == f"{path}: the section is longer than {MAX_TEXT:,} characters"


def test_the_editors_own_problems_read_in_both_languages(demo_site: Site) -> None:
    adam = demo_site.client("adam")
    zh = _validate(adam, "  \n", "zh-CN")
    en = _validate(adam, "  \n", "en")
    assert [t.split(": ", 1)[0] for _, t in zh] == [t.split(": ", 1)[0] for _, t in en]
    assert "communities：本段是空的；它必须保留 id: demo" in zh[0][1]
    assert "communities: the section is empty; it must keep id: demo" in en[0][1]

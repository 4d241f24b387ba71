"""The configuration editor never shows another community: its problems say what is wrong in the
edited section, without the other's id or name and without a line outside the section; the CLI keeps
the full text for the operator who owns the whole file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app as cli
from qunyun.console.pages.config import check, find_section, splice
from tests.console.conftest import OTHER, Site, config_problems, config_section, csrf_of


def _with_group(section: str, group: str) -> str:
    assert "\ngroups:\n" in section
    return section.replace("\ngroups:\n", f"\ngroups:\n- id: {group}\n  platform: sim\n", 1)


def _validate(client: TestClient, community: str, text: str, lang: str = "en") -> list[tuple[int | None, str]]:
    answer = client.post(f"/c/{community}/config/validate?lang={lang}",
                         data={"text": text, "csrf_token": csrf_of(client)}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    return config_problems(answer.text)


def _doctor(site: Site, community: str, text: str, tmp_path: Path) -> str:
    whole = site.config.read_text(encoding="utf-8")
    copy = tmp_path / "qunyun.yaml"
    copy.write_text(splice(find_section(whole, community), text), encoding="utf-8")
    out = CliRunner().invoke(cli, ["doctor", "--config", str(copy), "--db", site.db_url],
                             env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert out.exit_code == 1
    return out.output


def _section_lines(site: Site, community: str) -> tuple[int, int]:
    section = find_section(site.config.read_text(encoding="utf-8"), community)
    return section.first_line, section.first_line + section.text.rstrip("\n").count("\n")


def _file_line(text: str) -> int:
    found = re.match(r"^.*?:(\d+): ", text)
    assert found, text
    return int(found.group(1))


def _names(site: Site, community: str) -> list[str]:
    import yaml

    data = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    entry = next(c for c in data["communities"] if c["id"] == community)
    return [f"'{entry['id']}'", str(entry["name"])]


def test_a_group_of_a_later_community_is_not_named(demo_site: Site, tmp_path: Path) -> None:
    """demo comes first in the file: the CLI reports the collision in other's entry (outside demo's)."""
    adam = demo_site.client("adam")  # admin of demo only
    section = config_section(adam, "demo")
    edited = _with_group(section, OTHER["groups"][0]["id"])
    # the CLI, which the file's owner runs, says where and with whom it collides
    full = _doctor(demo_site, "demo", edited, tmp_path)
    assert "o-main" in full and "already in community 'demo'" in full
    shown = _validate(adam, "demo", edited)
    assert len(shown) == 1
    editor_line, text = shown[0]
    what = text.split(": ", 1)[1]
    assert what == "group 'o-main' on sim is already used elsewhere in this deployment; choose another id"
    for secret in (*_names(demo_site, "other"), "Other main"):
        assert secret not in text
    # on the line of that group in the edited text, inside demo's section of the file
    assert edited.split("\n")[editor_line - 1] == "- id: o-main"
    first, _last = _section_lines(demo_site, "demo")
    assert _file_line(text) == first + editor_line - 1
    # in Chinese too, and the same through the API; saving is refused with the same words
    zh = _validate(adam, "demo", edited, lang="zh-CN")
    assert zh[0][0] == editor_line and "已在本部署的其他地方使用" in zh[0][1] and "'other'" not in zh[0][1]
    token = csrf_of(adam)
    api = adam.post("/api/v1/communities/demo/config/validate", json={"text": edited},
                    headers={"X-CSRF-Token": token}).json()["data"]
    assert api["valid"] is False and [p["text"] for p in api["problems"]] == [text]
    assert api["problems"][0]["editor_line"] == editor_line
    refused = adam.post("/c/demo/config?lang=en", data={"text": edited, "csrf_token": token})
    assert refused.status_code == 422 and "Other community" not in refused.text and "'other'" not in refused.text
    assert config_problems(refused.text) == shown


def test_a_group_of_an_earlier_community_is_not_named(demo_site: Site, tmp_path: Path) -> None:
    """other comes after demo: the CLI reports the collision in other's entry, naming demo."""
    otto = demo_site.client("otto")  # owner of other only
    section = config_section(otto, "other")
    edited = _with_group(section, "g-main")
    full = _doctor(demo_site, "other", edited, tmp_path)
    assert "already in community 'demo'" in full
    shown = _validate(otto, "other", edited)
    assert len(shown) == 1
    editor_line, text = shown[0]
    for secret in _names(demo_site, "demo"):
        assert secret not in text
    assert text.endswith(": group 'g-main' on sim is already used elsewhere in this deployment; choose another id")
    assert editor_line is not None and edited.split("\n")[editor_line - 1] == "- id: g-main"
    first, last = _section_lines(demo_site, "other")
    assert first <= _file_line(text) <= last + 2


def test_taking_another_communitys_id_says_what_any_rename_says(demo_site: Site) -> None:
    otto = demo_site.client("otto")
    section = config_section(otto, "other")
    assert section.startswith("id: other\n")
    taken = _validate(otto, "other", section.replace("id: other\n", "id: demo\n", 1))
    unknown = _validate(otto, "other", section.replace("id: other\n", "id: nobody-has-it\n", 1))
    assert taken == unknown and len(taken) == 1
    assert "must keep id: other" in taken[0][1] and "'demo'" not in taken[0][1]


def _file(tmp_path: Path, body: str) -> tuple[Path, Any]:
    path = tmp_path / "qunyun.yaml"
    path.write_text(body, encoding="utf-8")
    return path, find_section(body, "a")


TWO = """communities:
- id: b
  name: Secret B
  catch_all: true
  groups:
  - id: g-b
    platform: matrix
- id: a
  name: Community A
  groups:
  - id: g-a
    platform: matrix
"""


def test_catch_all_twice_is_said_on_the_sections_own_line(tmp_path: Path) -> None:
    path, section = _file(tmp_path, TWO)
    edited = section.text.replace("name: Community A\n", "name: Community A\ncatch_all: true\n")
    checked = check(path, section, edited, "a")
    assert [p["text"] for p in checked.problems] == [
        f"{path}:{section.first_line + 2}: catch_all: true is already set elsewhere in this deployment; "
        "only one community may set it"]
    assert checked.problems[0]["editor_line"] == 3 and edited.split("\n")[2] == "catch_all: true"


def test_a_problem_elsewhere_in_the_file_is_not_shown(tmp_path: Path) -> None:
    broken = TWO.replace("  name: Secret B\n", "  name: Secret B\n  locale: klingon\n")
    path, section = _file(tmp_path, broken)
    checked = check(path, section, section.text, "a")
    assert len(checked.problems) == 1
    problem = checked.problems[0]
    assert "Secret B" not in problem["text"] and "'b'" not in problem["text"] and "locale" not in problem["text"]
    assert problem["line"] == section.first_line and problem["editor_line"] == 1
    assert "outside this community's section" in problem["text"]


def test_the_sections_own_problems_keep_the_cli_text(tmp_path: Path) -> None:
    path, section = _file(tmp_path, TWO)
    edited = section.text.replace("platform: matrix", "platform: matrix\n  capacity: 0")
    checked = check(path, section, edited, "a")
    assert len(checked.problems) == 1 and checked.problems[0]["say"] is None
    assert "communities.1.groups.0.capacity" in checked.problems[0]["text"]
    # a group taken twice inside the section names only the section's own community: kept as the CLI says it
    twice = section.text + "- id: g-a\n  platform: matrix\n"
    problems = check(path, section, twice, "a").problems
    assert [p["say"] for p in problems] == [None] and "already in community 'a'" in problems[0]["text"]

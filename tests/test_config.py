"""Configuration: one YAML file, errors that name the file, line and key.

The configuration is validated with the registry passed in, so these tests
use the finished ``checkin`` playbook and a small test-only one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from qunyun.config import load_settings, settings_from_text
from qunyun.config.model import Settings
from qunyun.core.errors import ConfigError, QunyunError
from qunyun.engine import Playbook, PlaybookConfig, Registry
from qunyun.playbooks.checkin import Checkin, CheckinConfig


class QuietConfig(PlaybookConfig):
    hours: list[int] = Field(default_factory=lambda: [23, 7])


class Quiet(Playbook):
    id = "quiet"
    config_model = QuietConfig


REG = Registry({"checkin": Checkin, "quiet": Quiet})

# Line numbers matter below: they are part of what the tests check.
BASE = """\
communities:
  - id: demo
    name: 演示社群
    timezone: Asia/Shanghai
    groups:
      - id: g-main
      - id: g-quiet
        playbooks:
          checkin:
            enabled: false
      - id: g-study
        playbooks:
          checkin:
            points: 5
            streak_bonus: {7: 50}
    playbooks:
      checkin:
        points: 10
        reminder: "0 21 * * *"
        streak_bonus: {7: 20, 30: 100}
"""


def write(tmp_path: Path, text: str, name: str = "qunyun.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> tuple[Path, list[str], ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), REG)
    return path, info.value.problems, info.value


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# --------------------------------------------------------------------------- valid


def test_a_valid_config_resolves_per_group_overrides(tmp_path: Path) -> None:
    settings = load_settings(str(write(tmp_path, BASE)), REG)
    assert isinstance(settings, Settings)
    community = settings.communities["demo"]
    assert community.timezone == "Asia/Shanghai"
    assert community.tz.key == "Asia/Shanghai"
    main = settings.group("sim", "g-main")
    quiet = settings.group("sim", "g-quiet")
    study = settings.group("sim", "g-study")
    assert main is not None and quiet is not None and study is not None
    # the community's settings
    assert isinstance(main.playbooks["checkin"], CheckinConfig)
    assert main.playbooks["checkin"].points == 10
    assert main.playbooks["checkin"].streak_bonus == {7: 20, 30: 100}
    # the group override wins, the rest is inherited (nested maps merge)
    assert study.playbooks["checkin"].points == 5
    assert study.playbooks["checkin"].reminder == "0 21 * * *"
    assert study.playbooks["checkin"].streak_bonus == {7: 50, 30: 100}
    # enabled: false switches it off in that group only
    assert "checkin" not in quiet.playbooks
    assert settings.group("sim", "g-nowhere") is None
    assert settings.catch_all() is None
    assert settings.source == str(tmp_path / "qunyun.yaml")


def test_defaults(tmp_path: Path) -> None:
    settings = settings_from_text(
        "communities:\n  - id: c\n    name: C\n    groups: [{id: g}]\n", "t.yaml", REG
    )
    community = settings.communities["c"]
    assert (community.timezone, community.locale, community.catch_all) == (
        "Asia/Shanghai", "zh-CN", False,
    )
    group = settings.group("sim", "g")
    assert group is not None
    assert group.playbooks == {}
    assert group.capacity == 500


def test_roles_and_templates(tmp_path: Path) -> None:
    text = edit("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghai\n"
                "    roles:\n      admin: [u-a]\n      owner: [u-o]\n"
                "    templates:\n      checkin.done: \"打卡成功 {name}\"\n")
    settings = settings_from_text(text, "t.yaml", REG)
    community = settings.communities["demo"]
    assert community.role_of("u-a") == "admin"
    assert community.role_of("u-o") == "owner"
    assert community.role_of("u-x") == "member"
    assert community.templates["checkin.done"] == {"zh-CN": "打卡成功 {name}", "en": "打卡成功 {name}"}


def test_groups_on_two_platforms_may_share_an_id() -> None:
    text = edit("      - id: g-main\n", "      - id: g-main\n      - id: g-main\n        platform: telegram\n")
    settings = settings_from_text(text, "t.yaml", REG)
    assert settings.group("telegram", "g-main") is not None
    assert settings.group("sim", "g-main") is not None


# --------------------------------------------------------------------------- errors


def test_a_typo_in_a_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    path, problems, err = problems_of(tmp_path, edit("    timezone:", "    timezon:"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:4: ")
    assert "communities.0.timezon" in problems[0]
    assert "unknown key" in problems[0]
    assert "did you mean 'timezone'?" in problems[0]
    assert err.hint
    assert isinstance(err, QunyunError)
    assert str(path) in str(err)


def test_a_typo_in_a_group_key(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("      - id: g-main\n",
                                                   "      - id: g-main\n        capcity: 3\n"))
    assert problems == [
        f"{path}:7: communities.0.groups.0.capcity: unknown key (did you mean 'capacity'?)"
    ]


def test_a_typo_in_a_playbook_setting(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("        points: 10", "        pionts: 10"))
    assert problems[0].startswith(f"{path}:18: ")
    assert "communities.0.playbooks.checkin.pionts" in problems[0]
    assert "did you mean 'points'?" in problems[0]


def test_a_typo_in_a_group_override(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("            points: 5", "            pionts: 5"))
    assert problems == [
        f"{path}:14: communities.0.groups.2.playbooks.checkin.pionts: unknown key "
        "(did you mean 'points'?)"
    ]


def test_a_bad_community_setting_is_reported_once_at_its_line(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("        points: 10", "        pionts: 10"))
    assert problems == [
        f"{path}:18: communities.0.playbooks.checkin.pionts: unknown key (did you mean 'points'?)"
    ]


def test_a_bad_time_zone(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("Asia/Shanghai", "Mars/Olympus"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:4: communities.0.timezone: ")
    assert "'Mars/Olympus'" in problems[0]
    assert "IANA" in problems[0]


def test_an_invalid_cron_in_checkins_reminder(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("0 21 * * *", "0 25 * * *"))
    assert problems[0].startswith(f"{path}:19: communities.0.playbooks.checkin.reminder: ")
    assert "invalid cron expression '0 25 * * *'" in problems[0]
    assert "five fields" in problems[0]


def test_an_invalid_cron_in_a_group_override(tmp_path: Path) -> None:
    path, problems, _ = problems_of(
        tmp_path, edit("            points: 5", "            points: 5\n            reminder: '* *'")
    )
    assert problems == [
        f"{path}:15: communities.0.groups.2.playbooks.checkin.reminder: Value error, invalid cron "
        "expression '* *': write five fields, minute hour day month weekday (e.g. '0 21 * * *' "
        "for 21:00 every day)"
    ]


def test_an_unknown_playbook(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("      checkin:\n        points: 10",
                                                   "      chekin:\n        points: 10"))
    assert problems[0].startswith(f"{path}:17: ")
    assert "unknown playbook 'chekin'" in problems[0]
    assert "did you mean 'checkin'?" in problems[0]
    assert "installed: checkin, quiet" in problems[0]


def test_a_duplicate_group(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("- id: g-quiet", "- id: g-main"))
    assert problems == [f"{path}:7: group 'g-main' on sim is already in community 'demo'"]


def test_a_group_in_two_communities(tmp_path: Path) -> None:
    text = BASE + "  - id: other\n    name: Other\n    groups:\n      - id: g-study\n"
    path, problems, _ = problems_of(tmp_path, text)
    assert problems == [f"{path}:24: group 'g-study' on sim is already in community 'demo'"]


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path, problems, err = problems_of(tmp_path, edit("    name: 演示社群\n", "    name: 演示社群\n   oops\n"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:4: not valid YAML")
    assert err.hint and "indentation" in err.hint


def test_an_unclosed_bracket_is_a_yaml_error(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("points: 10", "points: [10"))
    assert problems[0].startswith(f"{path}:")
    assert "not valid YAML" in problems[0]


def test_a_key_written_twice(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("        points: 10", "        points: 10\n        points: 11"))
    assert len(problems) == 1
    assert str(path) in problems[0]
    assert "19" in problems[0]
    assert "'points' appears twice" in problems[0]


def test_a_group_override_of_a_playbook_not_enabled(tmp_path: Path) -> None:
    path, problems, _ = problems_of(
        tmp_path, edit("          checkin:\n            points: 5", "          quiet:\n            hours: [22, 8]")
    )
    assert problems == [
        f"{path}:13: playbook 'quiet' is not enabled for community 'demo'; add it under the "
        "community's playbooks first"
    ]


def test_a_bad_value_in_a_group_override(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, edit("            points: 5", "            points: -5"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:14: communities.0.groups.2.playbooks.checkin.points: ")
    assert "greater than or equal to 0" in problems[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = edit("- id: g-quiet", "- id: g-main").replace("      checkin:\n        points: 10",
                                                        "      chekin:\n        points: 10")
    _, problems, _ = problems_of(tmp_path, text)
    joined = "\n".join(problems)
    assert "already in community" in joined
    assert "unknown playbook 'chekin'" in joined


def test_only_one_catch_all_community(tmp_path: Path) -> None:
    text = (
        "communities:\n"
        "  - {id: a, name: A, catch_all: true}\n"
        "  - {id: b, name: B, catch_all: true}\n"
    )
    path, problems, _ = problems_of(tmp_path, text)
    assert problems == [f"{path}: only one community may set catch_all: true"]


def test_a_bad_template_placeholder(tmp_path: Path) -> None:
    text = edit("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghai\n"
                "    templates:\n      checkin.done: \"hi {user.name}\"\n")
    path, problems, _ = problems_of(tmp_path, text)
    assert problems[0].startswith(f"{path}:6: ")
    assert "{user.name}" in problems[0]


def test_an_unknown_template(tmp_path: Path) -> None:
    text = edit("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghai\n"
                "    templates:\n      checkin.dnoe: \"hi\"\n")
    path, problems, _ = problems_of(tmp_path, text)
    assert problems[0].startswith(f"{path}:6: ")
    assert "unknown template 'checkin.dnoe'" in problems[0]
    assert "did you mean 'checkin.done'?" in problems[0]


def test_an_empty_file(tmp_path: Path) -> None:
    path, problems, _ = problems_of(tmp_path, "")
    assert problems == [f"{path}:1: communities: required key is missing"]


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(str(tmp_path / "nope.yaml"), REG)
    assert "file not found" in str(info.value)
    assert "qunyun init" in str(info.value)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("communities: []\n# 群运\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(str(path), REG)


def test_yaml_merge_keys_are_refused(tmp_path: Path) -> None:
    text = "base: &b {points: 1}\ncommunities:\n  - <<: *b\n    id: c\n    name: C\n"
    _, problems, _ = problems_of(tmp_path, text)
    assert "merge keys" in problems[0]


def test_settings_from_text_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_text("communities:\n  - id: c\n    nam: C\n", "inline.yaml", REG)
    assert "inline.yaml:3: communities.0.nam: unknown key (did you mean 'name'?)" in info.value.problems
    assert "inline.yaml:2: communities.0.name: required key is missing" in info.value.problems

"""Tests about the project itself: the README's commands, CI, docs coverage."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", text, re.S)
    assert block, "README must have a '## Two commands' section with a bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_commands_demo_then_tests() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("qunyun demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci.splitlines()


def test_every_builtin_playbook_is_documented_and_registered() -> None:
    from qunyun.engine.registry import default_registry
    from qunyun.playbooks import BUILTINS

    registry = default_registry()
    for pid in BUILTINS:
        assert pid in registry, f"{pid} is not registered through the qunyun.playbooks entry point"
        doc = ROOT / "docs" / "playbooks" / f"{pid}.md"
        assert doc.exists(), f"docs/playbooks/{pid}.md is missing"
        cls = registry[pid]
        assert cls.summary.get("zh-CN") and cls.summary.get("en"), f"{pid} needs a zh-CN and en summary"
        body = doc.read_text(encoding="utf-8")
        for key in cls.config_model.model_fields:
            assert f"`{key}`" in body, f"docs/playbooks/{pid}.md does not document setting `{key}`"


def test_every_template_has_both_languages() -> None:
    from qunyun.engine.registry import default_registry

    for cls in default_registry():
        for name, texts in cls.templates.items():
            assert set(texts) >= {"zh-CN", "en"}, f"{cls.id}.{name} lacks zh-CN or en"
            assert all(t.strip() for t in texts.values()), f"{cls.id}.{name} has an empty text"


def test_every_cli_command_has_help_and_a_test() -> None:
    import qunyun.cli
    from qunyun.cli.app import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert {"init", "migrate", "doctor", "export", "replay", "demo"} <= names
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    for name in names:
        assert re.search(rf"\[\s*\"{name}\"", tests) or f'"{name}",' in tests, f"no CLI test invokes `qunyun {name}`"
    assert qunyun.cli.main


def test_changelog_and_decision_log_exist() -> None:
    assert (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").strip()
    assert (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8").strip()


def test_the_wheel_carries_every_file_the_package_reads(tmp_path: Path) -> None:
    """A plain ``pip install qunyun`` (not editable) gets the console's pages, words and scripts too.

    The wheel is built from a copy of the tracked files only: a ``build/`` left in the checkout would
    otherwise slip stale files into it and hide a gap in package-data.
    """
    import shutil
    import subprocess
    import sys
    import zipfile

    import pytest

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = [f for f in tracked.stdout.splitlines() if (ROOT / f).is_file()]
    needed = {f.removeprefix("src/") for f in files if f.startswith("src/qunyun/")
              and not f.endswith(".py") and "/fixtures/" not in f}  # recorded payloads are the tests' data
    assert needed, "no data files found: the check would pass vacuously"
    source = tmp_path / "src"
    for f in files:
        if f.startswith("src/") or f in ("pyproject.toml", "README.md", "LICENSE"):
            (source / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, source / f)
    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(source), "-w", str(out)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("qunyun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(needed - names)
    assert not missing, f"pyproject's package-data misses {len(missing)} file(s), e.g. {missing[:5]}"

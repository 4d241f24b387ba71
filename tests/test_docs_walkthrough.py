"""The "connect your chat" walkthroughs: every YAML snippet in them really loads.

Each fenced ```yaml block of the adapter pages is a whole ``qunyun.yaml``:
it goes through ``load_run_config`` — the loader ``qunyun run`` and
``qunyun doctor`` use — with the environment variables it names set to
plausible values. A block that is meant as a part of a file says so on its
first line (``# part of qunyun.yaml``) and is checked inside a minimal file.
The walkthroughs must also keep the steps a newcomer needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from qunyun.adapters.config import load_run_config

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("adapters.md", "matrix.md", "onebot.md", "telegram.md")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```yaml[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
PART = "# part of qunyun.yaml"

#: Values of the secrets the snippets name, in the shapes the platforms use.
ENV = {
    "QUNYUN_ONEBOT_TOKEN": "onebot-token-0123456789",
    "QUNYUN_ONEBOT_SECRET": "onebot-secret-0123456789",
    "QUNYUN_WECHAT_TOKEN": "wechat-token-0123456789",
    "QUNYUN_MATRIX_TOKEN": "syt_cXVueXVu_0123456789",
    "QUNYUN_MATRIX_PASSWORD": "correct horse battery staple",
    "QUNYUN_TELEGRAM_TOKEN": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "QUNYUN_TELEGRAM_SECRET": "s3cr3t_webhook-token",
}

def blocks() -> list[tuple[str, int, str]]:
    out = []
    for page in PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            indent = match.group("indent")
            body = "\n".join(
                line[len(indent):] if line.startswith(indent) else line for line in match.group("body").splitlines()
            )
            line = text.count("\n", 0, match.start()) + 1
            out.append((page, line, body))
    return out


BLOCKS = blocks()


def test_the_pages_have_yaml_to_check() -> None:
    per_page = {page: sum(1 for p, _, _ in BLOCKS if p == page) for page in PAGES}
    assert all(n >= 1 for n in per_page.values()), per_page


@pytest.mark.parametrize(("page", "line", "body"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_every_yaml_snippet_loads_through_the_real_loader(page: str, line: int, body: str, tmp_path: Path) -> None:
    doc: Any = yaml.safe_load(body)
    if body.lstrip().startswith(PART):
        # a part of a file: put it into a minimal one (adapters beside a community, or the reverse)
        if "communities" in doc:
            base: dict[str, Any] = {"deployment": {"adapters": [{"type": "onebot", "version": 11}]}}
        else:
            first = doc["deployment"]["adapters"][0]
            platform = first.get("platform", first["type"])  # each type's default platform is its name
            base = {"communities": [{"id": "demo", "name": "Demo", "groups": [
                {"id": "main", "platform": platform, "room": "-1001234567890"}]}]}
        doc = {**base, **doc}
        body = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    path = tmp_path / "qunyun.yaml"
    path.write_text(body, encoding="utf-8")
    settings, adapters = load_run_config(str(path), env=ENV)
    assert adapters, f"{page}:{line}: no adapter configured"
    served = {a.platform for a in adapters}
    for community in settings.communities.values():
        for group in community.groups.values():
            assert group.platform in served, (
                f"{page}:{line}: group {group.key!r} is on {group.platform!r}, which no adapter serves ({served})"
            )


def test_a_wrong_key_in_a_snippet_would_be_caught(tmp_path: Path) -> None:
    """The check can fail: a typo in an adapter block is an error naming the line and key."""
    from qunyun.core.errors import ConfigError

    _, _, body = next(b for b in BLOCKS if b[0] == "telegram.md" and "type: telegram" in b[2])
    path = tmp_path / "qunyun.yaml"
    path.write_text(body.replace("token_env:", "tokn_env:"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tokn_env: unknown key"):
        load_run_config(str(path), env=ENV)
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match="QUNYUN_TELEGRAM_TOKEN is not set"):
        load_run_config(str(path), env={})


@pytest.mark.parametrize("page", ["matrix.md", "onebot.md", "telegram.md"])
def test_each_walkthrough_goes_from_zero_to_a_working_group(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    for needed in ("qunyun doctor", "qunyun run", "qunyun migrate", "Troubleshooting", "Check that it works",
                   "What was checked"):
        assert needed in text, f"docs/{page} lacks {needed!r}"
    # the secrets come from the environment, never from the file
    assert "export QUNYUN_" in text

"""The configuration editor: this community's section, validated as the CLI does, saved with history."""

from __future__ import annotations

import html
import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app as cli
from qunyun.console.pages.config import find_section, splice
from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of

XSS = "<script>alert(1)</script>"


def _section(client: TestClient) -> tuple[str, str]:
    page = client.get("/c/demo/config")
    found = re.search(r'<textarea[^>]*data-testid="config-text">(.*?)</textarea>', page.text, re.S)
    assert found, "no editor on the page"
    base = re.search(r'name="base" value="([0-9a-f]+)"', page.text)
    assert base
    return html.unescape(found.group(1)), base.group(1)


def _problems(page: str) -> list[str]:
    return [html.unescape(p) for p in re.findall(r'<li data-testid="config-problem">.*?<code>(.*?)</code>', page, re.S)]


def test_viewer_reads_only_this_community(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    page = vera.get("/c/demo/config?lang=en")
    assert page.status_code == 200
    assert 'data-testid="config-form"' not in page.text and "an admin can edit it" in page.text
    whole = demo_site.config.read_text(encoding="utf-8")
    section = find_section(whole, "demo")
    assert html.escape(section.text, quote=True).split("\n")[1] in page.text
    # the other community in the same file stays invisible
    assert "Other community" not in page.text and "o-main" not in page.text
    token = csrf_of(vera)
    assert vera.post("/c/demo/config/validate", data={"text": "x", "csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/config", data={"text": "x", "csrf_token": token}).status_code == 403
    api = vera.get("/api/v1/communities/demo/config").json()["data"]
    assert api["text"] == section.text and api["first_line"] == section.first_line
    # otto owns the other community only: nothing of demo's
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/config").status_code == 404
    assert otto.put("/api/v1/communities/demo/config", json={"text": "id: demo"},
                    headers={"X-CSRF-Token": csrf_of(otto)}).status_code == 404
    assert "o-main" in otto.get("/c/other/config").text
    zh = vera.get("/c/demo/config?lang=zh-CN")
    assert "管理员可以编辑" in zh.text


def test_validate_shows_the_cli_problems(demo_site: Site, tmp_path: Path) -> None:
    adam = demo_site.client("adam")
    section, _base = _section(adam)
    assert "window_days: 10" in section
    broken = section.replace("window_days: 10", "window_dayz: 10").replace("kpi: messages + checkins >= 1",
                                                                            "kpi: __import__('os')")
    token = csrf_of(adam)
    answer = adam.post("/c/demo/config/validate?lang=en", data={"text": broken, "csrf_token": token},
                       headers={"HX-Request": "true"})
    assert answer.status_code == 200
    shown = _problems(answer.text)
    assert len(shown) == 2
    # the CLI, loading the same file with the same edit, says the same (path aside)
    whole = demo_site.config.read_text(encoding="utf-8")
    copy = tmp_path / "qunyun.yaml"
    copy.write_text(splice(find_section(whole, "demo"), broken), encoding="utf-8")
    out = CliRunner().invoke(cli, ["doctor", "--config", str(copy), "--db", demo_site.db_url],
                             env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert out.exit_code == 1
    for problem in shown:
        assert problem.replace(str(demo_site.config), str(copy)) in out.output
    assert any("unknown key (did you mean 'window_days'?)" in p for p in shown)
    assert any("function calls are not allowed" in p for p in shown)
    zone = section.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus")
    zoned = _problems(adam.post("/c/demo/config/validate?lang=en", data={"text": zone, "csrf_token": token}).text)
    assert zoned == [f"{demo_site.config}:4: communities.0.timezone: Value error, unknown time zone 'Mars/Olympus'; "
                     "use an IANA name like Asia/Shanghai or Europe/Berlin"]
    # line numbers: in the file, and in the editor box
    line = next(i for i, text_line in enumerate(broken.split("\n"), 1) if "window_dayz" in text_line)
    assert f"editor line {line}" in adam.post("/c/demo/config/validate?lang=en",
                                              data={"text": broken, "csrf_token": token},
                                              headers={"HX-Request": "true"}).text
    # YAML that does not parse: the line is named
    bad_yaml = section.replace("locale: zh-CN", "locale: [zh-CN")
    problems = _problems(adam.post("/c/demo/config/validate?lang=en", data={"text": bad_yaml, "csrf_token": token}).text)
    assert problems and f"{demo_site.config}:" in problems[0] and "not valid YAML" in problems[0]
    # a valid text validates
    ok = adam.post("/c/demo/config/validate", data={"text": section, "csrf_token": token},
                   headers={"HX-Request": "true"})
    assert 'data-testid="config-valid"' in ok.text
    api = adam.post("/api/v1/communities/demo/config/validate", json={"text": broken},
                    headers={"X-CSRF-Token": token}).json()["data"]
    assert api["valid"] is False and [p["text"] for p in api["problems"]] == shown
    # hostile YAML is shown escaped, never as markup
    hostile = section.replace("name: 晨光成长营", f'name: "{XSS}"\nbogus_{XSS}: 1', 1)
    page = adam.post("/c/demo/config/validate", data={"text": hostile, "csrf_token": token})
    assert XSS not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # nothing was saved by validating
    assert demo_site.config.read_text(encoding="utf-8") == whole


def test_save_writes_history_reloads_and_audits(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    section, base = _section(adam)
    before_file = fresh_site.config.read_text(encoding="utf-8")
    old = find_section(before_file, "demo")
    token = csrf_of(adam)
    # CSRF is required
    assert adam.post("/c/demo/config", data={"text": section, "base": base}).status_code == 403
    edited = section.replace("window_days: 10", "window_days: 12")
    saved = adam.post("/c/demo/config", data={"text": edited, "base": base, "note": "a longer window",
                                              "csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303 and "msg=msg.saved" in saved.headers["location"]
    after_file = fresh_site.config.read_text(encoding="utf-8")
    # only the section changed: everything before and after it is byte for byte the same
    assert after_file[: old.start] == before_file[: old.start]
    assert after_file.endswith(before_file[old.end :])
    assert yaml.safe_load(after_file)["communities"][1] == yaml.safe_load(before_file)["communities"][1]
    # the running app reloaded its settings
    settings = adam.app.state.console.settings  # type: ignore[attr-defined]
    assert settings.communities["demo"].playbook_specs["elimination"]["window_days"] == 12
    assert "over the last 12 days" in adam.get("/c/demo/elimination?lang=en").text
    # history: the version found on disk, then the new one
    engine = open_engine(fresh_site.db_url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT id, actor, note, text FROM config_versions "
                                     "WHERE community_id = 'demo' ORDER BY id")).all()
        entry = conn.execute(text("SELECT actor, action, target, before, after FROM audit_log "
                                  "WHERE action = 'config.save'")).all()
    assert [(v.actor, v.note) for v in versions] == [("(file)", "as found on disk"), ("adam", "a longer window")]
    assert versions[0].text == old.text and versions[1].text == edited
    assert len(entry) == 1 and entry[0].actor == "adam" and entry[0].target == str(fresh_site.config)
    assert old.digest in entry[0].before and '"added":1' in entry[0].after and '"removed":1' in entry[0].after
    # the diff view
    diff = adam.get(f"/c/demo/config/versions/{versions[1].id}")
    assert "-      window_days: 10" in html.unescape(diff.text) or "-    window_days: 10" in html.unescape(diff.text)
    assert "+" in diff.text and "window_days: 12" in diff.text

    # refused: a stale base, a renamed community, an edit that breaks validation
    _section_now, base_now = _section(adam)
    stale = adam.post("/c/demo/config", data={"text": edited, "base": base, "csrf_token": token})
    assert stale.status_code == 409
    renamed = adam.post("/c/demo/config", data={"text": edited.replace("id: demo", "id: demo2", 1), "base": base_now,
                                                "csrf_token": token})
    assert renamed.status_code == 422
    broken = adam.post("/c/demo/config", data={"text": edited.replace("window_days: 12", "window_days: -1"),
                                               "base": base_now, "csrf_token": token})
    assert broken.status_code == 422 and _problems(broken.text)
    assert fresh_site.config.read_text(encoding="utf-8") == after_file
    # the viewer cannot restore; the admin can
    vera = fresh_site.client("vera")
    assert vera.post(f"/c/demo/config/versions/{versions[0].id}/restore",
                     data={"csrf_token": csrf_of(vera)}).status_code == 403
    back = adam.post(f"/c/demo/config/versions/{versions[0].id}/restore",
                     data={"base": base_now, "csrf_token": token}, follow_redirects=False)
    assert back.status_code == 303
    assert fresh_site.config.read_text(encoding="utf-8") == before_file
    assert adam.app.state.console.settings.communities["demo"].playbook_specs["elimination"]["window_days"] == 10  # type: ignore[attr-defined]

    # through the API: PUT validates (422 in the one error shape) and saves
    current = adam.get("/api/v1/communities/demo/config").json()["data"]
    bad = adam.put("/api/v1/communities/demo/config", json={"text": current["text"] + "bogus: 1\n"},
                   headers={"X-CSRF-Token": token})
    assert bad.status_code == 422 and set(bad.json()) == {"ok", "error", "code"} and "bogus" in bad.json()["error"]
    named = current["text"].replace("name: 晨光成长营", f'name: "{XSS}"', 1)
    good = adam.put("/api/v1/communities/demo/config", json={"text": named, "note": XSS, "base": current["sha256"]},
                    headers={"X-CSRF-Token": token})
    assert good.status_code == 200 and good.json()["data"]["saved"] is True
    # the hostile community name and note are shown escaped everywhere
    for path in ("/c/demo/config", "/c/demo/overview", "/c/demo/audit", f"/c/demo/config/versions/{good.json()['data']['version']}"):
        page = adam.get(path)
        assert XSS not in page.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in adam.get("/c/demo/config").text

"""Digests: the list, a safe preview, editing, publishing and export; the playbook's edit and publish commands."""

from __future__ import annotations

import json
from typing import Any

from qunyun.content.markdown import to_html
from tests.console.conftest import Site, csrf_of, sql

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def _digest_state(site: Site, key: str) -> Any:
    rows = sql(site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'digest' "
                      "AND key = :k", k=key)
    return json.loads(rows[0][0]) if rows else None


def test_markdown_converter_is_safe() -> None:
    html = str(to_html(f"# Title {HOSTILE}\n\n**bold** \\*not\\* [x](javascript:alert(1))\n\n> {HOSTILE}\n\n- a\n- b"))
    assert "<script>" not in html and "<img" not in html and "href" not in html
    assert "<h1>Title &lt;script&gt;" in html and "<strong>bold</strong> *not*" in html
    assert "<blockquote>&lt;script&gt;" in html and "<ul><li>a</li><li>b</li></ul>" in html


def test_list_shows_published_periods(demo_site: Site) -> None:
    published = sql(demo_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' "
                                "AND playbook = 'digest' AND key LIKE 'published:%' ORDER BY key DESC")
    page = demo_site.client("vera").get("/c/demo/digests?lang=en")
    assert page.status_code == 200 and "Digests" in page.text
    for key, value in published:
        label = key.split(":", 1)[1]
        row = page.text.split(f'data-period="{label}"', 1)[1].split("</tr>", 1)[0]
        assert f'<td class="num">{json.loads(value)["entries"]:,}</td>' in row
    order = [k.split(":", 1)[1] for k, _ in published]
    assert page.text.split('data-period="')[1].startswith(order[0])
    assert "精华周报" in demo_site.client("vera").get("/c/demo/digests").text


def test_preview_is_the_rendered_digest(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    page = vera.get("/c/demo/digests/2026-W46?lang=en")
    assert page.status_code == 200
    assert 'data-testid="digest-preview"' in page.text and "<h2>" in page.text
    assert 'data-testid="digest-edit-form"' not in page.text  # viewers read only
    md = vera.get("/c/demo/digests/2026-W46/export.md")
    assert md.status_code == 200 and md.headers["content-disposition"].endswith('digest-2026-W46.md"')
    assert md.text.startswith("# ") and "2026-W46" in md.text.splitlines()[0]
    html = vera.get("/c/demo/digests/2026-W46/export.html")
    assert html.status_code == 200 and html.text.startswith("<!DOCTYPE html>")
    # each entry heading of the Markdown is in the preview
    headings = [line[4:] for line in md.text.splitlines() if line.startswith("### ")]
    assert headings and page.text.count("<h3>") == len(headings)
    assert vera.get("/c/demo/digests/nonsense").status_code == 404
    assert demo_site.client("otto").get("/c/demo/digests/2026-W46").status_code == 404
    api = vera.get("/api/v1/communities/demo/digests/2026-W46").json()["data"]
    assert api["md"] == md.text and api["edited"] is False and api["published"]["entries"] >= 1


def test_viewer_cannot_edit_or_publish(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    token = csrf_of(vera)
    assert vera.post("/c/demo/digests/2026-W46/edit", data={"md": "x", "csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/digests/2026-W46/publish", data={"csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/digests/2026-W46/discard", data={"csrf_token": token}).status_code == 403


def test_edit_preview_publish_export(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    label = "2026-W46"
    before = _digest_state(fresh_site, f"published:{label}")
    edited = f"# Edited digest {label}\n\nA note {HOSTILE}\n\n> quoted **well**\n"
    saved = adam.post(f"/c/demo/digests/{label}/edit", data={"md": edited, "csrf_token": csrf_of(adam)},
                      follow_redirects=False)
    assert saved.status_code == 303 and "msg=digests.saved" in saved.headers["location"]
    draft = _digest_state(fresh_site, f"draft:{label}")
    assert draft["md"] == edited and draft["by"] == "console:adam"
    page = adam.get(f"/c/demo/digests/{label}")
    assert 'data-testid="digest-edited"' in page.text
    assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<blockquote>quoted <strong>well</strong></blockquote>" in page.text
    assert adam.get(f"/c/demo/digests/{label}/export.md").text == edited
    exported = adam.get(f"/c/demo/digests/{label}/export.html").text
    assert "<script>alert" not in exported and "&lt;script&gt;" in exported
    # publish: notice in the groups that run the digest, authors credited only once per period
    records_before = sql(fresh_site, "SELECT count(*) FROM records WHERE playbook = 'digest' "
                                      "AND kind = 'digest_included'")[0][0]
    actions_before = sql(fresh_site, "SELECT count(*) FROM actions WHERE playbook = 'digest'")[0][0]
    done = adam.post(f"/c/demo/digests/{label}/publish", data={"notice": "yes", "csrf_token": csrf_of(adam)},
                     follow_redirects=False)
    assert done.status_code == 303 and "msg=digests.published" in done.headers["location"]
    published = _digest_state(fresh_site, f"published:{label}")
    assert published["edited"] is True and published["by"] == "console:adam"
    assert published["times"] == (int(before.get("times", 1)) + 1 if before else 1)
    notices = sql(fresh_site, "SELECT group_key, payload FROM actions WHERE playbook = 'digest' ORDER BY seq")
    assert len(notices) > actions_before and label in json.loads(notices[-1][1])["text"]
    records_after = sql(fresh_site, "SELECT count(*) FROM records WHERE playbook = 'digest' "
                                     "AND kind = 'digest_included'")[0][0]
    if before:
        assert records_after == records_before  # credited when it was first published
    else:
        assert records_after > records_before
    audit = [r[0] for r in sql(fresh_site, "SELECT action FROM audit_log WHERE action LIKE 'digest.%' ORDER BY id")]
    assert audit == ["digest.edit", "digest.publish"]
    # discard the edit: back to the generated digest
    adam.post(f"/c/demo/digests/{label}/discard", data={"csrf_token": csrf_of(adam)})
    assert _digest_state(fresh_site, f"draft:{label}") is None
    assert adam.get(f"/c/demo/digests/{label}/export.md").text != edited
    # an empty period cannot be published
    empty = adam.post("/c/demo/digests/2025-W01/publish", data={"csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert "error=" in empty.headers["location"]
    assert _digest_state(fresh_site, "published:2025-W01") is None

"""Sharing sessions: calendar, pipeline, one session, and planning, stages and cancelling."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.console.conftest import Site, csrf_of, sql


def _session(site: Site, sid: str) -> dict[str, Any]:
    rows = sql(site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'sessions' "
                      "AND key = :k", k=f"s:{sid}")
    return dict(json.loads(rows[0][0]))


def test_calendar_and_pipeline_show_the_session(demo_site: Site) -> None:
    s = _session(demo_site, "1")
    page = demo_site.client("vera").get("/c/demo/sessions?lang=en")
    assert page.status_code == 200 and "Sharing sessions" in page.text
    day = s["starts_at"][:10]  # stored in the community's offset: its local day
    cell = page.text.split(f'data-day="{day}"', 1)[1].split("</td>", 1)[0]
    assert s["topic"] in cell and s["starts_at"][11:16] in cell
    row = page.text.split('data-testid="sessions-row" data-sid="1"', 1)[1].split("</tr>", 1)[0]
    assert row.count('data-testid="sessions-stage"') == len(s["stages"])
    done = sum(1 for st in s["stages"] if st["done"])
    assert row.count("✓") == done
    # other months have no session
    other = demo_site.client("vera").get("/c/demo/sessions?month=2026-12")
    assert 'data-testid="sessions-calendar-item"' not in other.text
    assert demo_site.client("vera").get("/c/demo/sessions?month=2026-13").status_code == 422
    assert "分享会" in demo_site.client("vera").get("/c/demo/sessions").text


def test_session_page_lists_questions_and_summary(demo_site: Site) -> None:
    s = _session(demo_site, "1")
    questions = sql(demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                "AND playbook = 'sessions' AND key LIKE 's:1:q:%'")
    page = demo_site.client("vera").get("/c/demo/sessions/1?lang=en")
    assert page.status_code == 200
    assert page.text.count('data-testid="session-question-row"') == len(questions) == s["questions"]
    if s.get("summary"):
        assert 'data-testid="session-summary"' in page.text
    assert 'data-testid="session-stage-form"' not in page.text  # a viewer gets no forms
    assert demo_site.client("vera").get("/c/demo/sessions/999").status_code == 404
    assert demo_site.client("otto").get("/c/demo/sessions/1").status_code == 404


def test_viewer_cannot_plan_or_cancel(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    token = csrf_of(vera)
    assert vera.post("/c/demo/sessions", data={"topic": "x", "speaker": "u-1", "starts_at": "2027-01-01 20:00",
                                                "csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/sessions/1/cancel", data={"csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/sessions/1/stage", data={"stage": "invite", "done": "yes",
                                                        "csrf_token": token}).status_code == 403
    answer = vera.post("/api/v1/communities/demo/sessions", headers={"X-CSRF-Token": token},
                       json={"topic": "x", "speaker": "u-1", "starts_at": "2027-01-01 20:00"})
    assert answer.status_code == 403


def test_plan_tick_and_cancel(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    made = adam.post("/c/demo/sessions", data={"topic": hostile, "speaker": "u-0003", "host": "u-0001",
                                                "starts_at": "2026-03-20 20:00", "duration": "90",
                                                "csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert made.status_code == 303, made.text
    sid = re.search(r"/c/demo/sessions/(\d+)", made.headers["location"]).group(1)  # type: ignore[union-attr]
    s = _session(fresh_site, sid)
    assert s["topic"] == hostile and s["duration"] == 90 and s["status"] == "scheduled"
    assert s["starts_at"].startswith("2026-03-20T20:00")
    page = adam.get(f"/c/demo/sessions/{sid}")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    cal = adam.get("/c/demo/sessions?month=2026-03")
    assert 'data-day="2026-03-20"' in cal.text and "&lt;script&gt;" in cal.text and "<img src=x" not in cal.text
    # tick a stage, move another one's due day and owner
    ticked = adam.post(f"/c/demo/sessions/{sid}/stage", data={"stage": "design", "done": "yes",
                                                              "csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert ticked.status_code == 303 and "msg=msg.saved" in ticked.headers["location"]
    adam.post(f"/c/demo/sessions/{sid}/stage", data={"stage": "summary", "owner": "u-0002", "due": "2026-03-25",
                                                     "csrf_token": csrf_of(adam)})
    stages = {st["id"]: st for st in _session(fresh_site, sid)["stages"]}
    assert stages["design"]["done"] and stages["design"]["done_by"] == "console:adam"
    assert stages["summary"]["owner"] == "u-0002" and stages["summary"]["due"] == "2026-03-25"
    bad = adam.post(f"/c/demo/sessions/{sid}/stage", data={"stage": "nope", "done": "yes",
                                                           "csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert "error=" in bad.headers["location"]
    # cancel
    gone = adam.post(f"/c/demo/sessions/{sid}/cancel", data={"reason": "speaker ill", "csrf_token": csrf_of(adam)},
                     follow_redirects=False)
    assert gone.status_code == 303
    assert _session(fresh_site, sid)["status"] == "cancelled"
    audit = sql(fresh_site, "SELECT actor, action FROM audit_log WHERE action LIKE 'sessions.%' ORDER BY id")
    assert [a for _, a in audit] == ["sessions.create", "sessions.stage", "sessions.stage", "sessions.cancel"]
    assert {u for u, _ in audit} == {"adam"}
    # a session in the past is refused with the playbook's reason, nothing is made
    past = adam.post("/c/demo/sessions", data={"topic": "late", "speaker": "u-0003", "starts_at": "2020-01-01 20:00",
                                                "csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert "error=" in past.headers["location"]
    assert len(sql(fresh_site, "SELECT id FROM audit_log WHERE action = 'sessions.create'")) == 1


def test_api_lists_and_plans(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    before = adam.get("/api/v1/communities/demo/sessions").json()["data"]
    made = adam.post("/api/v1/communities/demo/sessions", headers={"X-CSRF-Token": csrf_of(adam)},
                     json={"topic": "API talk", "speaker": "u-0003", "starts_at": "2026-04-02 19:30"})
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    assert data["topic"] == "API talk" and len(data["stages"]) == 9
    after = adam.get("/api/v1/communities/demo/sessions").json()["data"]
    assert len(after) == len(before) + 1 and after[0]["id"] == data["id"]  # latest start first
    refused = adam.post("/api/v1/communities/demo/sessions", headers={"X-CSRF-Token": csrf_of(adam)},
                        json={"topic": "x", "speaker": "u-0003", "starts_at": "tomorrow"})
    assert refused.status_code == 409 and refused.json()["code"] == "refused"
    assert adam.get("/api/v1/communities/demo/sessions?limit=0").status_code == 422

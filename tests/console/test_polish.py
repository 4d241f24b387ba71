"""What an operator reading the Chinese pages should never meet: raw English status words, bare user ids, empty charts drawn as axes.

Each test renders a page in zh-CN and checks the Chinese word is there and
the stored English value is not (and the English page still reads well).
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from markupsafe import escape

from qunyun.console.i18n import Labels
from tests.console.conftest import Site, csrf_of, sql
from tests.console.test_elimination import _due, _pending, _require_approval

ZH, EN = Labels("zh-CN"), Labels("en")
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(1)</script>'


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _badge(page: str, testid: str) -> list[tuple[str, str]]:
    """(data-status, shown text) of every badge with this data-testid."""
    return re.findall(rf'data-testid="{testid}" data-status="([^"]+)">([^<]*)</span>', page)


# -------------------------------------------------------------------- Q&A


def test_qa_award_status_is_translated(demo_site: Site) -> None:
    awards = {str(k)[6:]: _json(v)["status"] for k, v in sql(
        demo_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'fund' "
                   "AND key LIKE 'award:%'")}
    paid = sorted(w for w, s in awards.items() if s == "paid")
    assert paid, "the demo pays weekly awards"
    client = demo_site.client("vera")
    week = paid[-1]
    zh = client.get(f"/c/demo/qa?week={week}&lang=zh-CN")
    assert zh.status_code == 200
    assert _badge(zh.text, "qa-award-status") == [("paid", "已发放")]
    assert ">paid<" not in zh.text
    en = client.get(f"/c/demo/qa?week={week}&lang=en")
    assert _badge(en.text, "qa-award-status") == [("paid", "paid")]


def test_qa_question_statuses_are_translated(demo_site: Site) -> None:
    statuses = {_json(v).get("status") for (v,) in sql(
        demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'qa' AND key LIKE 'q:Q%'")}
    page = demo_site.client("vera").get("/c/demo/qa?lang=zh-CN&status=all").text
    shown = _badge(page, "qa-question-status")
    assert shown and {s for s, _ in shown} <= statuses
    for status, word in shown:
        assert word == ZH(f"qa.status.{status}") and word != status and re.search(r"[\u4e00-\u9fff]", word)


def test_qa_pick_options_are_short(demo_site: Site) -> None:
    """The pick-answer list stays narrow: an option is the answerer, the votes and a short excerpt."""
    page = demo_site.client("adam").get("/c/demo/qa?lang=zh-CN&status=answered").text
    options = re.findall(r'<select name="answer" data-testid="qa-pick-answer"[^>]*>(.*?)</select>', page, re.S)
    assert options, "the demo has questions waiting for a best answer"
    for select in options:
        for option in re.findall(r"<option [^>]*>(.*?)</option>", select, re.S):
            assert len(html.unescape(option)) <= 90, option


# ------------------------------------------------------------- elimination


def test_elimination_batch_shows_names_and_translated_outcomes(fresh_site: Site) -> None:
    _require_approval(fresh_site)
    engine = fresh_site.app().state.console.engine
    engine.advance_to(_due(fresh_site, "g-main"))
    batch = _pending(fresh_site, "g-main", "warn")
    listed = [e["member"] for e in _json(sql(
        fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'elimination' "
                    "AND key = :k", k=f"batch:{batch}")[0][0])["members"]]
    assert len(listed) >= 2
    # one member with a hostile name: shown escaped
    sql(fresh_site, "UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :u", n=HOSTILE, u=listed[1])
    names = dict(sql(fresh_site, "SELECT user_id, name FROM members WHERE community_id = 'demo'"))
    adam = fresh_site.client("adam")

    page = adam.get(f"/c/demo/elimination/batch/{batch}?lang=zh-CN").text
    rows = re.findall(r'data-testid="elimination-batch-member" data-member="([^"]+)">(.*?)</tr>', page, re.S)
    assert [m for m, _ in rows] == listed
    for member, row in rows:
        assert str(escape(names[member])) in row
        assert f'<span class="muted">{member}</span>' in row
        assert "messages=" not in row and ZH("elimination.counter.messages") in row
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    done = adam.post(f"/c/demo/elimination/batch/{batch}/approve",
                     data={"exclude": [listed[0]], "csrf_token": csrf_of(adam)}, headers={"Accept-Language": "zh-CN"})
    assert done.status_code == 200, done.text
    skipped = re.search(r'data-testid="elimination-result-skipped">(.*?)</span></p>', done.text, re.S)
    assert skipped and "(excluded)" not in skipped.group(1)
    assert f"({ZH('elimination.skipped.excluded')})" in skipped.group(1)
    statuses = {r[0] for r in sql(fresh_site, "SELECT status FROM actions WHERE cause LIKE :c",
                                   c=f"cmd:approve-{batch}-%")}
    assert statuses, "the approval queued actions"
    shown = _badge(done.text, "elimination-action-status")
    assert shown and {s for s, _ in shown} == statuses
    for status, word in shown:
        assert word == ZH(f"elimination.action_status.{status}") and word != status
    assert ">pending<" not in done.text
    # who approved, when: in the community's zone (no "UTC" label on a local time), the group by its name
    config = yaml.safe_load(fresh_site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    tz = ZoneInfo(demo.get("timezone") or "Asia/Shanghai")
    state = _json(sql(fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                   "AND playbook = 'elimination' AND key = :k", k=f"batch:{batch}")[0][0])
    at = datetime.fromisoformat(state["approved_at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    seen = adam.get(f"/c/demo/elimination/batch/{batch}?lang=zh-CN").text
    by = re.search(r'data-testid="elimination-approved-by">([^<]*)</p>', seen)
    assert by and by.group(1) == ZH("elimination.approved_by", who="adam", at=at) and "UTC" not in by.group(1)
    group = sql(fresh_site, "SELECT name FROM groups WHERE community_id = 'demo' AND key = 'g-main'")[0][0]
    assert group and f'<div class="value">{escape(group)}</div>' in seen


def test_elimination_preview_names_first_and_counters_translated(demo_site: Site) -> None:
    page = demo_site.client("vera").get("/c/demo/elimination?lang=zh-CN").text
    rows = re.findall(r'data-testid="elimination-warn-row" data-member="([^"]+)">\s*<td>(.*?)</td>', page, re.S)
    assert rows
    names = dict(sql(demo_site, "SELECT user_id, name FROM members WHERE community_id = 'demo'"))
    for member, cell in rows:
        assert cell == f'{escape(names[member] or member)} <span class="muted">{member}</span>'
    assert f'title="messages">{ZH("elimination.counter.messages")}</th>' in page


# -------------------------------------------------------------- moderation


def test_moderation_details_are_translated(demo_site: Site) -> None:
    lapsed = [_json(d) for (d,) in sql(
        demo_site, "SELECT data FROM records WHERE community_id = 'demo' AND playbook = 'rules' AND kind = 'lapsed'")]
    consequences = {d["consequence"] for d in lapsed if d.get("consequence")}
    assert consequences, "the demo has members who did not acknowledge the rules"
    client = demo_site.client("vera")
    zh = client.get("/c/demo/moderation?kind=rules.lapsed&lang=zh-CN").text
    for value in consequences:
        assert f'<span class="muted">{ZH("moderation.detail.consequence")}</span> {ZH(f"moderation.value.consequence.{value}")}' in zh
        assert f"> {value}</span>" not in zh
    assert ">consequence<" not in zh
    en = client.get("/c/demo/moderation?kind=rules.lapsed&lang=en").text
    assert f'<span class="muted">consequence</span> {EN(f"moderation.value.consequence.{min(consequences)}")}' in en


# ---------------------------------------------------------------- overview


def test_empty_lurker_chart_says_no_data(demo_site: Site) -> None:
    from qunyun.analytics.charts import LABELS
    from qunyun.console.pages.overview import chart_data

    app = demo_site.app()
    state = app.state.console
    data = chart_data(state, state.settings.communities["demo"])
    assert data is not None and data.lurkers == [], "the 28-day demo has nobody silent for 30 days"
    client = demo_site.client("vera")
    for lang in ("zh-CN", "en"):
        svg = client.get(f"/c/demo/overview/chart/lurkers?lang={lang}").text
        assert LABELS[lang]["empty"] in svg
        assert "0.04" not in svg and "−0.04" not in svg
        assert LABELS[lang]["lurkers.title"] in svg

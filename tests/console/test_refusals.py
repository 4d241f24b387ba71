"""A refused command's reason reads in the page's language; the API's stays English.

Pages give the reason (``CommandError.localized``) in zh-CN or en, as the
rest of the page. The API answers in English on purpose: scripts match on
its text, and ``code`` is the stable part.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import yaml
from markupsafe import escape

from qunyun.core.errors import Msg
from tests.console.conftest import Site, csrf_of, sql

CJK = re.compile(r"[\u4e00-\u9fff]")


def _flash(html: str) -> str:
    found = re.search(r'<div class="flash error" role="alert">(.*?)</div>', html, re.S)
    assert found, "the page shows no refusal"
    return found.group(1)


def _both(reason: Msg) -> tuple[str, str]:
    """(English, zh-CN) of ``reason`` as a page shows them (HTML-escaped); they must differ."""
    en, zh = str(escape(str(reason))), str(escape(reason.in_lang("zh-CN")))
    assert en != zh and CJK.search(zh) and not CJK.search(en), (en, zh)
    return en, zh


def test_a_refused_pick_reads_in_the_pages_language(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    # the qa playbook refuses a question that does not exist
    en, zh = _both(Msg("there is no question {question}", question="Q99999"))
    seen = {}
    for lang in ("zh-CN", "en"):
        answer = adam.post(f"/c/demo/qa/pick?lang={lang}", follow_redirects=False,
                           data={"question": "Q99999", "answer": "m-1", "csrf_token": csrf_of(adam)})
        assert answer.status_code == 303 and "error=" in answer.headers["location"]
        seen[lang] = _flash(adam.get(answer.headers["location"]).text)
    assert seen["zh-CN"] == f"未执行：{zh}"
    assert seen["en"] == f"Refused: {en}"
    assert not sql(fresh_site, "SELECT id FROM audit_log WHERE action = 'qa.pick'")

    api = adam.post("/api/v1/communities/demo/qa/pick?lang=zh-CN", json={"question": "Q99999", "member": "u-1"},
                    headers={"X-CSRF-Token": csrf_of(adam), "Accept-Language": "zh-CN"})
    assert api.status_code == 409 and api.json()["code"] == "refused"
    assert api.json()["error"].startswith("there is no question Q99999") and not CJK.search(api.json()["error"])


def test_a_refused_elimination_approval_reads_in_the_pages_language(fresh_site: Site) -> None:
    config = yaml.safe_load(fresh_site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo["playbooks"]["elimination"]["require_approval"] = True
    fresh_site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    due = sql(fresh_site, "SELECT due_at FROM jobs WHERE id = 'demo/sim/g-main/elimination/period'")[0].due_at
    due = datetime.fromisoformat(due) if isinstance(due, str) else due
    fresh_site.app().state.console.engine.advance_to(due.replace(tzinfo=UTC) if due.tzinfo is None else due)
    batch = str(sql(fresh_site, "SELECT key FROM playbook_state WHERE community_id = 'demo' "
                                 "AND playbook = 'elimination' AND key LIKE 'batch:warn-%-g-main'")[0].key)[6:]
    adam = fresh_site.client("adam")
    # only members listed in the batch can be left out
    en, zh = _both(Msg("not in batch {batch!r}: {members}", batch=batch, members="u-nobody"))
    for lang, reason, other in (("zh-CN", zh, en), ("en", en, zh)):
        page = adam.post(f"/c/demo/elimination/batch/{batch}/approve?lang={lang}",
                         data={"exclude": ["u-nobody"], "csrf_token": csrf_of(adam)})
        assert page.status_code == 409
        assert reason in page.text and other not in page.text
    assert "提示" in adam.post(f"/c/demo/elimination/batch/{batch}/approve?lang=zh-CN",
                             data={"exclude": ["u-nobody"], "csrf_token": csrf_of(adam)}).text

    api = adam.post("/api/v1/communities/demo/elimination/approve?lang=zh-CN",
                    json={"batch": batch, "exclude": ["u-nobody"]},
                    headers={"X-CSRF-Token": csrf_of(adam), "Accept-Language": "zh-CN"})
    assert api.status_code == 409 and api.json()["code"] == "refused"
    assert api.json()["error"].startswith(f"not in batch {batch!r}: u-nobody") and not CJK.search(api.json()["error"])
    status = sql(fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND key = :k",
                  k=f"batch:{batch}")[0].value
    assert '"pending"' in status  # nothing was approved

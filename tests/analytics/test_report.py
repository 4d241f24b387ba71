"""The health report: files, offline HTML, escaping, both languages; and `qunyun report`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.analytics import charts
from qunyun.analytics.metrics import AnalyticsError
from qunyun.analytics.report import build_report, summary_markdown, summary_text, write_report
from qunyun.cli.app import app
from qunyun.testing import Chat

from .test_metrics import END, MON1, three_weeks

Make = Callable[..., Chat]
EVIL = "<script>alert('x')</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fakes() -> tuple[SimpleNamespace, SimpleNamespace]:
    """Stand-ins with the agreed lifecycle/value signatures (their own modules are tested elsewhere)."""
    lifecycle = SimpleNamespace(
        group_states=lambda conn, community, as_of: [
            SimpleNamespace(group_key="g-main", name="主群", age_days=20, state="alive",
                            last_active=as_of, members=5)
        ],
        survival_curve=lambda conn, community, as_of, max_age=90: SimpleNamespace(
            ages=[0, 7, 14, 30], alive=[1.0, 1.0, 1.0, 1.0], at7=1.0, at30=1.0, n=1
        ),
        early_warning=lambda conn, community, as_of: [
            SimpleNamespace(group_key="g-main", score=0.7, reasons=[f"few speakers {EVIL}"])
        ],
    )
    value = SimpleNamespace(
        member_values=lambda conn, community, as_of: [
            SimpleNamespace(member_id="u1", name="U1", score=9.0, level="L2", archetype="sharer"),
            SimpleNamespace(member_id="u3", name="U3", score=1.0, level="L0", archetype="lurker"),
        ]
    )
    return lifecycle, value


@pytest.fixture
def chat(make_chat: Make) -> Chat:
    c = make_chat({})
    c.join("evil", EVIL)
    three_weeks(c)
    for _ in range(12):  # the most active member: in the top contributors
        c.say("evil", "hello")
    return c


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_report_files_are_complete_offline_and_escaped(chat: Chat, tmp_path: Path, lang: str) -> None:
    lifecycle, value = _fakes()
    with chat.db.connect() as conn:
        rep = build_report(conn, "test", start=MON1, end=END, lang=lang, silent_days=7,
                           lifecycle=lifecycle, value=value)
    written = write_report(rep, tmp_path)
    names = {p.name for p in written.files}
    assert {f"{c}.png" for c in charts.CHARTS} | {"report.html", "summary.txt", "summary.md"} == names
    for c in charts.CHARTS:
        data = (tmp_path / f"{c}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 8_000, c
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # self-contained: nothing fetched from anywhere
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(//|(?!data:)[a-z]+:)""", html, re.I)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    # the name is shown, escaped, in the tables and in the inline SVG
    assert "&lt;script&gt;alert(" in html
    assert html.count("<svg") == len(charts.CHARTS)
    title = "社群健康报告" if lang == "zh-CN" else "community health report"
    assert title in html
    assert ("潜水" if lang == "zh-CN" else "Lurkers") in html
    assert "sharer" in html and "主群" in html  # the lifecycle and value parts
    text = (tmp_path / "summary.txt").read_text(encoding="utf-8")
    assert ("本周消息" if lang == "zh-CN" else "messages this week") in text
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "\\<script\\>" in md


def test_summary_numbers(chat: Chat) -> None:
    lifecycle, value = _fakes()
    with chat.db.connect() as conn:
        rep = build_report(conn, "test", start=MON1, end=END, lang="en", silent_days=7,
                           lifecycle=lifecycle, value=value)
    # last 7 days (Nov 16-22): u1 1, u6 1; the 7 before: u1 1, u4 1, evil's 12 were on Nov 16 too
    assert (rep.week.start, rep.week.end) == (date(2026, 11, 16), END)
    assert rep.week.messages == 14 and rep.previous_week.messages == 2
    text = summary_text(rep)
    assert "14 messages this week (up 600% on last week), 3 people spoke" in text
    assert "Groups: 1 alive, 0 declining, 0 silent, 0 dead." in text
    assert "New groups to watch: g-main." in text
    assert "Thanks to this week's most active: <script>alert('x')</script>, U1, U6!" in text
    assert summary_markdown(rep).startswith("**📊")


def test_without_the_lifecycle_modules_the_report_says_so(chat: Chat, tmp_path: Path) -> None:
    broken = SimpleNamespace()  # no functions at all
    with chat.db.connect() as conn:
        rep = build_report(conn, "test", start=MON1, end=END, lang="en", lifecycle=broken, value=broken)
    assert rep.states is None and rep.values is None
    assert any("lifecycle data is not available" in n for n in rep.notes)
    write_report(rep, tmp_path)
    assert "lifecycle data is not available" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_with_the_real_lifecycle_module(chat: Chat) -> None:
    """End to end with the lifecycle module (task H), if it is installed."""
    lifecycle = pytest.importorskip("qunyun.analytics.lifecycle")
    with chat.db.connect() as conn:
        rep = build_report(conn, "test", start=MON1, end=END, lang="en", lifecycle=lifecycle)
    assert rep.states is not None and [g.group_key for g in rep.states] == ["g-main"]
    assert rep.survival is not None


def test_png_names_the_fonts_cannot_draw_fall_back_to_the_user_id() -> None:
    assert charts.drawable("Bob 123")
    if charts.cjk_font() is None:
        assert not charts.drawable("小王")
        assert charts.png_language("zh-CN") == "en"
    assert not charts.drawable("\U0001f9ff\U0001fae0")  # emoji: no font here draws them


def test_an_empty_community_is_an_error_not_an_empty_report(make_chat: Make) -> None:
    chat = make_chat({})
    chat.engine.setup_groups()
    with chat.db.connect() as conn, pytest.raises(AnalyticsError):
        build_report(conn, "test")


def test_cli_report(chat: Chat, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["report", "--db", db_url, "--out", str(out), "--lang", "en",
                                      "--since", "2026-11-02", "--silent-days", "7"])
    assert result.exit_code == 0, result.output
    assert "messages this week" in result.output
    assert (out / "report.html").exists() and (out / "lurkers.png").exists()
    bad = CliRunner().invoke(app, ["report", "--db", db_url, "--out", str(out), "--since", "2.11.2026"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in str(bad.exception)
    nope = CliRunner().invoke(app, ["report", "--db", db_url, "--out", str(out), "--community", "nope"])
    assert nope.exit_code != 0 and "no community 'nope'" in str(nope.exception)


# ------------------------------------------------- what a reader would trip on


def test_small_shares_are_not_shown_as_zero() -> None:
    from qunyun.analytics.report import pct

    assert pct(3 / 2468) == "0.1%" and pct(0.00004) == "<0.1%"
    assert pct(0.0) == "0%" and pct(0.5) == "50%" and pct(None) == "–" and pct(0.004, 1) == "0.4%"


def test_markdown_summary_escapes_markup_but_not_plain_punctuation() -> None:
    from qunyun.analytics.report import _md

    assert _md("11 messages (down 65%)! Thanks *a*_b_ [x](y) <b>") == (
        "11 messages (down 65%)! Thanks \\*a\\*\\_b\\_ \\[x\\](y) \\<b\\>"
    )


def test_date_ticks_carry_the_year_when_the_axis_spans_years() -> None:
    import matplotlib.pyplot as plt

    spans = (([date(2018, 12, 24), date(2019, 1, 7)], "2018-12-24"), ([date(2019, 3, 4), date(2019, 3, 11)], "Mar 04"))
    for days, first in spans:
        fig, ax = plt.subplots()
        charts._date_axis(ax, days, "en")
        assert ax.get_xticklabels()[0].get_text() == first
        plt.close(fig)


def test_lurker_chart_starts_at_the_lurker_threshold_and_groups_table_uses_report_members(
    chat: Chat, tmp_path: Path
) -> None:
    import matplotlib.pyplot as plt

    lifecycle, value = _fakes()  # its group_states says 5 members; the metrics count differently
    with chat.db.connect() as conn:
        rep = build_report(conn, "test", start=MON1, end=END, lang="en", silent_days=10,
                           lifecycle=lifecycle, value=value)
    fig = charts.lurker_chart(rep, charts.LABELS["en"], "en")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    plt.close(fig)
    assert labels[:2] == ["10-13", "14-29"] and "7-13" not in labels
    members = {g.key: g.members for g in rep.groups}["g-main"]
    assert members != 5
    write_report(rep, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    row = re.search(r"<tr><td>主群</td>.*?</tr>", html)
    assert row is not None and f'<td class="num">{members:,}</td><td>' in row.group(0)
    assert re.search(r"Check-in rate</div><div class=\"value\">–<", html)

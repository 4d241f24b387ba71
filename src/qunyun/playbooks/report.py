"""report (运营周报): the weekly health report, posted to the admins.

Once a week (``schedule``, Monday 09:00 community time by default) the
playbook reads the community's rollups up to the last complete day, posts a
short summary to the admins' group (a ``notify_admins`` action: messages,
speakers, active ratio and their change on the week before, members joined
and left, newcomer activation, concentration, lurkers, group states) and, if
``out_dir`` is set, writes the full report there: ``report.html`` with the
charts, one PNG per chart and ``summary.txt``/``summary.md``, in
``<out_dir>/<community>/<last day>/``.

The job runs in one group only, so the community gets one report: the
admins' group (``admin: true``), or the first group of the community if it
has none. An owner or admin typing one of ``keywords`` in that group gets the
summary at once; the ``run`` command does the same from the CLI or console.

The report reads aggregates (the rollups); it keeps nothing about any
member, so there is nothing to export or erase. For a very large community
(hundreds of groups), prefer ``qunyun report`` from cron: the report is
computed inside the engine's transaction and takes seconds there.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron

_JOB = "weekly"


class ReportConfig(PlaybookConfig):
    schedule: str = Field(
        default="0 9 * * 1",
        description="Cron (community time zone) for the weekly report; the default is Monday 09:00.",
    )
    weeks: int = Field(default=12, ge=1, le=104, description="Weeks of history the charts show.")
    silent_days: int = Field(
        default=30, ge=1, le=3650, description="A member silent this many days or more counts as a lurker."
    )
    out_dir: str | None = Field(
        default=None,
        description=(
            "Directory to write the full report into (HTML, PNG charts, text summaries), "
            "under <community>/<last day>/; null: post the summary only."
        ),
    )
    lang: Literal["zh-CN", "en"] | None = Field(
        default=None, description="Language of the report; null: the community's locale."
    )
    keywords: list[str] = Field(
        default_factory=lambda: ["周报", "运营周报", "weekly report"],
        description="An owner or admin posting exactly one of these in the report's group gets the summary now.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("out_dir")
    @classmethod
    def _dir(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a directory path, or null to post the summary only")
        return value


class Report(Playbook):
    id = "report"
    version = "1"
    config_model = ReportConfig
    handles = frozenset({"message"})
    emits = frozenset({"notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "run": "Post the report summary to the admins now (and write the files if out_dir is set).",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "每周运营报告：活跃、留存、集中度、潜水与群状态，发到管理群并生成 HTML 与图表。",
        "en": "Weekly operator report: activity, retention, concentration, lurkers and group states, "
        "posted to the admins with HTML and charts.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "weekly": {
            "zh-CN": "{summary}",
            "en": "{summary}",
        },
        "files": {
            "zh-CN": "完整报告（含图表）已保存到：{path}",
            "en": "The full report with charts is saved in: {path}",
        },
        "no_data": {
            "zh-CN": "📊 运营周报：截至 {end} 还没有任何群聊数据。",
            "en": "📊 Weekly report: there is no chat data up to {end} yet.",
        },
    }

    # ------------------------------------------------------------ schedule

    @staticmethod
    def _is_home(ctx: Context) -> bool:
        """Whether this group is where the community's report is made."""
        groups = list(ctx.community.groups.values())
        admins = [g for g in groups if g.admin and "report" in g.playbooks]
        home = admins[0] if admins else next((g for g in groups if "report" in g.playbooks), None)
        return home is not None and (home.platform, home.key) == (ctx.group.platform, ctx.group.key)

    def setup(self, ctx: Context) -> None:
        cfg: ReportConfig = ctx.config
        if self._is_home(ctx):
            ctx.schedule(_JOB, cron=cfg.schedule)
        else:
            ctx.cancel(_JOB)

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == _JOB:
            self._post(ctx, cause="schedule")

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: ReportConfig = ctx.config
        text = (event.text or "").strip()
        if not text or len(text) > 64 or text.casefold() not in {k.casefold() for k in cfg.keywords}:
            return
        if ctx.role(event.actor.id) not in ("owner", "admin") or not self._is_home(ctx):
            return
        self._post(ctx, cause="keyword")

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        if command.name != "run":
            return super().on_command(ctx, command)
        return self._post(ctx, cause="command")

    # -------------------------------------------------------------- report

    def _post(self, ctx: Context, *, cause: str) -> dict[str, Any]:
        from qunyun.analytics.metrics import AnalyticsError
        from qunyun.analytics.report import build_report, summary_text, write_report

        cfg: ReportConfig = ctx.config
        end = ctx.today - timedelta(days=1)  # the last complete day
        start = end - timedelta(days=7 * cfg.weeks - 1)
        lang = cfg.lang or ctx.locale
        try:
            rep = build_report(
                ctx.db, ctx.community.id, start=start, end=end, lang=lang, silent_days=cfg.silent_days
            )
        except AnalyticsError:
            rep = None
        if rep is None or (not rep.has_data and rep.members == 0):
            ctx.notify_admins(ctx.render("no_data", end=end.isoformat()))
            ctx.record("report", cause=cause, end=end.isoformat(), data=False)
            return {"end": end.isoformat(), "data": False}
        text = summary_text(rep).rstrip("\n")
        result: dict[str, Any] = {"end": end.isoformat(), "data": rep.has_data, "lang": lang}
        folder = None
        if cfg.out_dir:
            folder = Path(cfg.out_dir).expanduser() / _safe_part(ctx.community.id) / end.isoformat()
            written = write_report(rep, folder)
            text += "\n" + ctx.render("files", path=str(folder))
            result["files"] = [str(p) for p in written.files]
        ctx.notify_admins(ctx.render("weekly", summary=text))
        ctx.record("report", cause=cause, end=end.isoformat(), data=rep.has_data, dir=str(folder) if folder else None)
        return result


def _safe_part(value: str) -> str:
    """A path component from an id (community ids are configuration, but stay careful)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in value).strip(".")
    return cleaned or "community"

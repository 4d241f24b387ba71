"""API: a community's health numbers, its groups, one group (the overview and groups pages' data)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from qunyun.analytics import lifecycle as lc
from qunyun.console.api.common import ERRORS, Ok, Reader, ok
from qunyun.console.i18n import LANGS
from qunyun.console.pages import groups as gp
from qunyun.console.pages import overview as ov

router = APIRouter(tags=["analytics"], responses=ERRORS)

State = Literal["alive", "declining", "silent", "dead"]


class WindowOut(BaseModel):
    """A community over 7 days: members at the end, distinct speakers, sums."""

    start: date
    end: date
    members: int
    speakers: int
    messages: int
    joins: int
    leaves: int
    active_ratio: float | None = Field(description="speakers ÷ members at the end")
    messages_per_speaker: float | None


class AlertOut(BaseModel):
    kind: str = Field(description="quiet, group_silent, group_declining, more_groups, group_risk, "
                                  "concentration, lurkers, activation, survival_7, survival_30")
    level: Literal["bad", "warn"]
    group: str | None = Field(description="the group's key, for alerts about one group")
    values: dict[str, Any]
    text: dict[str, str] = Field(description="the alert in words, per language (zh-CN, en)")


class SurvivalOut(BaseModel):
    groups: int
    alive_at_7: float | None
    alive_at_30: float | None
    base_alive_at_7: float
    base_alive_at_30: float


class DriftOut(BaseModel):
    """The member structure over the last 28 days and the 28 before."""

    top10_share_now: float | None
    top10_share_before: float | None
    lurker_share_now: float | None
    lurker_share_before: float | None
    activation_now: float | None
    activation_before: float | None


class OverviewOut(BaseModel):
    community: str
    as_of: date | None = Field(description="the last local day with activity (None: no data yet)")
    groups: int
    last_7_days: WindowOut | None
    previous_7_days: WindowOut | None
    speakers_30_days: int
    newcomer_activation: float | None = Field(description="newcomers of the last 14 days who wrote within 7 days")
    newcomers: int
    states: dict[str, int]
    survival: SurvivalOut | None
    drift: DriftOut | None
    alerts: list[AlertOut]


class GroupOut(BaseModel):
    key: str
    name: str
    platform: str
    members: int
    speakers_7d: int
    messages_7d: int
    active_ratio: float | None
    state: State
    age_days: int
    last_active: date | None
    size_bucket: str


class GroupPage(BaseModel):
    items: list[GroupOut]
    total: int
    page: int
    per_page: int
    sort: str
    desc: bool


class LifecycleOut(BaseModel):
    state: State
    reason: str = Field(description="the rule that decided: alive, new, declining, silent, dead, dead_empty")
    last_active: date | None
    quiet_days: int
    speakers_last_7_days: int
    weekly_speakers_before: list[int]
    members: int


class RiskOut(BaseModel):
    score: float
    warning: bool
    reasons: list[str]


class SpeakerOut(BaseModel):
    user_id: str
    name: str | None
    messages: int
    share: float


class GroupDetailOut(BaseModel):
    key: str
    name: str
    platform: str
    as_of: date | None
    age_days: int
    members: int
    speakers_7d: int
    messages_7d: int
    messages_28d: int
    active_ratio: float | None
    top10_share: float | None
    gini: float | None
    newcomer_activation: float | None
    lurkers: int
    checkin_rate: float | None
    lifecycle: LifecycleOut | None
    early_warning: RiskOut | None
    top_speakers: list[SpeakerOut]
    playbooks: list[str]


def _window(w: ov.Window | None) -> WindowOut | None:
    if w is None:
        return None
    return WindowOut(start=w.start, end=w.end, members=w.members, speakers=w.speakers, messages=w.messages,
                     joins=w.joins, leaves=w.leaves, active_ratio=w.active_ratio, messages_per_speaker=w.per_speaker)


@router.get("/communities/{community}/overview", response_model=Ok[OverviewOut],
            summary="A community's health: members, speakers, trends, lifecycle states, survival, alerts")
def overview(call: Reader) -> dict[str, Any]:
    head = ov.cached_headline(call.state, call.community)
    health = ov.health(call.state, call.community)
    s, d = health.survival, health.drift
    return ok(OverviewOut(
        community=call.community.id, as_of=head.as_of, groups=head.groups,
        last_7_days=_window(head.week), previous_7_days=_window(head.previous),
        speakers_30_days=head.speakers_30d, newcomer_activation=head.activation, newcomers=head.newcomers,
        states=health.counts,
        survival=None if s is None else SurvivalOut(
            groups=s.n, alive_at_7=s.at7, alive_at_30=s.at30,
            base_alive_at_7=1 - lc.BASE_SILENT_WITHIN_WEEK, base_alive_at_30=lc.BASE_ALIVE_AFTER_MONTH),
        drift=None if d is None else DriftOut(
            top10_share_now=d.top10_now, top10_share_before=d.top10_before,
            lurker_share_now=d.lurkers_now, lurker_share_before=d.lurkers_before,
            activation_now=d.activation_now, activation_before=d.activation_before),
        alerts=[AlertOut(kind=a.kind, level=a.level, group=a.group, values=a.values,
                         text={lang: ov.alert_text(a, lang) for lang in LANGS}) for a in health.alerts],
    ))


def _group(r: gp.GroupRow) -> GroupOut:
    return GroupOut(key=r.key, name=r.name, platform=r.platform, members=r.members, speakers_7d=r.speakers_7d,
                    messages_7d=r.messages_7d, active_ratio=r.active_ratio, state=r.state,
                    age_days=r.age_days, last_active=r.last_active, size_bucket=r.bucket)


@router.get("/communities/{community}/groups", response_model=Ok[GroupPage],
            summary="The community's groups with their numbers and lifecycle state, sorted and paged")
def groups(
    call: Reader,
    page: int = Query(1, ge=1, le=1_000_000),
    per_page: int = Query(gp.PER_PAGE, ge=1, le=gp.MAX_PER_PAGE),
    sort: Literal["name", "members", "speakers", "ratio", "messages", "state", "age"] = gp.DEFAULT_SORT,
    direction: Literal["asc", "desc"] = Query("desc", alias="dir"),
) -> dict[str, Any]:
    desc = direction == "desc"
    rows = gp.sort_rows(gp.cached_rows(call.state, call.community), sort, desc)
    start = (page - 1) * per_page
    return ok(GroupPage(items=[_group(r) for r in rows[start : start + per_page]], total=len(rows), page=page,
                        per_page=per_page, sort=sort, desc=desc))


@router.get("/communities/{community}/groups/{key}", response_model=Ok[GroupDetailOut],
            summary="One group: its dashboard numbers, lifecycle state and why, early warning, top speakers")
def group(call: Reader, key: str) -> dict[str, Any]:
    g = gp.load_detail(call.state, call.community, key)
    v, d, risk = g.verdict, g.dashboard, g.risk
    return ok(GroupDetailOut(
        key=g.key, name=g.name, platform=g.platform, as_of=g.as_of, age_days=g.age_days, members=g.members,
        speakers_7d=g.speakers_7d, messages_7d=g.messages_7d, messages_28d=g.messages_28d,
        active_ratio=g.active_ratio,
        top10_share=d.concentration.top10_share if d else None, gini=d.concentration.gini if d else None,
        newcomer_activation=g.activation[0], lurkers=d.lurkers if d else 0,
        checkin_rate=d.checkins.rate if d else None,
        lifecycle=None if v is None else LifecycleOut(
            state=v.state, reason=v.reason.rsplit(".", 1)[-1], last_active=v.last_active,
            quiet_days=v.quiet_days, speakers_last_7_days=v.recent, weekly_speakers_before=v.weeks,
            members=v.members),
        early_warning=None if risk is None else RiskOut(score=risk.score, warning=risk.score >= lc.WARN_AT,
                                                        reasons=list(risk.reasons)),
        top_speakers=[SpeakerOut(user_id=c.user_id, name=c.name, messages=c.messages, share=c.share) for c in g.top],
        playbooks=g.playbooks,
    ))

"""hours (闭群): the group is open for chat in windows; outside them it rests.

The operator lists open windows per weekday, in the community's time zone::

    windows:
      mon-fri: ["08:30-09:00", "15:00-16:00", "20:00-22:00"]
      sat: ["10:00-12:00", "22:00-01:00"]      # a window may run past midnight

At each boundary the bot posts a short "open" or "closed" notice (a one-shot
job at the next boundary, computed from the windows, so daylight-saving
changes are followed). Someone who speaks while the group is closed gets one
gentle reminder per closed period; with ``strikes`` on, further messages in
closed time count as strikes, and after ``max_strikes`` strikes (within
``strike_window_days``) the admins are told or the member is muted until the
group opens again. Admins, assistants and guests are exempt by default.

Dates may be opened all day (``open_dates``) or closed all day
(``closed_dates``, e.g. holidays) whatever the weekday says; a window that
started the day before still runs to its end.

Times are local wall-clock times. On a day that skips an hour (spring
forward), a time inside the gap is read with the offset before the change
(02:30 becomes 03:30); on a day that repeats an hour, the first 01:30 is
meant. A window is from its start (included) to its end (excluded);
windows that touch or overlap are merged, so "20:00-24:00" and "00:00-02:00"
make one evening with no notice at midnight.

State (community-scoped):

- ``g:<platform>:<group>`` → ``{"open": bool, "next": iso | null}``
- ``m:<uid>`` → ``{"period": "<when the group reopens>", "strikes": [iso, ...]}``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig
from qunyun.playbooks.faq import ConfigCache

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALIASES = {
    "daily": DAYS,
    "*": DAYS,
    "everyday": DAYS,
    "weekdays": DAYS[:5],
    "weekends": DAYS[5:],
}
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_JOB = "boundary"
#: How far ahead a boundary is looked for before giving up (a schedule of open dates only).
_HORIZON_DAYS = 400


def parse_days(spec: str) -> tuple[int, ...]:
    """Weekday numbers (0 = Monday) of ``mon``, ``mon-fri``, ``sat,sun``, ``fri-mon``, ``daily``…"""
    out: list[int] = []
    for part in spec.lower().replace("，", ",").split(","):
        part = part.strip()
        if part in _ALIASES:
            out += [DAYS.index(d) for d in _ALIASES[part]]
            continue
        first, sep, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if first not in DAYS or (sep and last not in DAYS):
            raise ValueError(
                f"unknown day {spec!r}; write mon..sun, a range like mon-fri, a list like sat,sun, or daily"
            )
        a = DAYS.index(first)
        b = DAYS.index(last) if sep else a
        out += [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    return tuple(sorted(set(out)))


def parse_window(text: str) -> tuple[int, int]:
    """``"22:00-01:00"`` → (start, end) in minutes after the day's midnight; end may pass 1440."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"window {text!r} must look like 08:30-09:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"window {text!r} has an impossible time (00:00 to 23:59, or 24:00 as an end)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"window {text!r} is empty; for a whole day write 00:00-24:00")
    if end < start:
        end += 1440  # runs past midnight
    return start, end


class HoursConfig(PlaybookConfig):
    windows: dict[str, list[str]] = Field(
        default_factory=lambda: {"daily": ["08:00-23:00"]},
        description=(
            "Open windows per weekday in the community's time zone: {mon-fri: [\"08:30-09:00\", "
            "\"20:00-22:00\"], sat: [...]}. Days: mon..sun, ranges, lists, daily, weekdays, weekends."
        ),
    )
    open_dates: list[date] = Field(
        default_factory=list, description="Dates open all day, whatever the windows say (YYYY-MM-DD)."
    )
    closed_dates: list[date] = Field(
        default_factory=list, description="Dates with no window at all, e.g. holidays (YYYY-MM-DD)."
    )
    notices: bool = Field(default=True, description="Post an 'open' / 'closed' notice at each boundary.")
    remind: bool = Field(
        default=True, description="Remind someone who speaks in closed time (once per closed period)."
    )
    strikes: bool = Field(
        default=False, description="Count further messages in the same closed period as strikes."
    )
    max_strikes: int = Field(default=3, ge=1, le=100, description="Act at this many strikes.")
    strike_window_days: int = Field(
        default=30, ge=1, le=365, description="Strikes older than this many days are forgotten."
    )
    strike_action: Literal["notify_admins", "mute"] = Field(
        default="notify_admins",
        description="At max_strikes: tell the admins, or mute the member until the group opens again.",
    )
    exempt_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin", "assistant", "guest"],
        description="Roles that may speak at any time.",
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for spec, windows in value.items():
            parse_days(spec)
            for window in windows:
                parse_window(window)
        return value

    @field_validator("exempt_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from qunyun.config.model import ROLES

        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value


@dataclass(frozen=True, slots=True)
class Schedule:
    """Windows by weekday, with the date exceptions: pure computation, no clock."""

    by_day: tuple[tuple[tuple[int, int], ...], ...]
    open_dates: frozenset[date]
    closed_dates: frozenset[date]

    def intervals(self, tz: ZoneInfo, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """Open intervals (UTC, start included, end excluded) of windows starting on
        ``first``..``last`` (local dates), merged where they touch or overlap."""
        raw: list[tuple[datetime, datetime]] = []
        day = first
        while day <= last:
            if day in self.open_dates:
                raw.append((_at(tz, day, 0), _at(tz, day, 1440)))
            elif day not in self.closed_dates:
                raw += [(_at(tz, day, s), _at(tz, day, e)) for s, e in self.by_day[day.weekday()]]
            day += timedelta(days=1)
        raw = [iv for iv in raw if iv[0] < iv[1]]  # a window lost in a DST gap
        raw.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start, end in raw:
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def status(self, tz: ZoneInfo, when: datetime) -> tuple[bool, datetime | None]:
        """(open at ``when``, the next boundary after it — or None if there is none)."""
        today = when.astimezone(tz).date()
        first, last = today - timedelta(days=1), today + timedelta(days=8)
        while True:
            for start, end in self.intervals(tz, first, last):
                if start <= when < end:
                    return True, end
                if start > when:
                    return False, start
            if (last - today).days >= _HORIZON_DAYS:
                return False, None
            # nothing this week (a schedule of open dates only): look further ahead
            first, last = last + timedelta(days=1), last + timedelta(days=60)


def _at(tz: ZoneInfo, day: date, minutes: int) -> datetime:
    """Local ``day`` + ``minutes`` (may pass midnight) as an aware UTC datetime."""
    day = day + timedelta(days=minutes // 1440)
    minutes %= 1440
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


def _compile(cfg: HoursConfig) -> Schedule:
    by_day: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for spec, windows in cfg.windows.items():
        for weekday in parse_days(spec):
            by_day[weekday] += [parse_window(w) for w in windows]
    return Schedule(
        tuple(tuple(sorted(set(d))) for d in by_day),
        frozenset(cfg.open_dates),
        frozenset(cfg.closed_dates),
    )


class Hours(Playbook):
    id = "hours"
    config_model = HoursConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "mute", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "闭群时段：按开放时间窗开放聊天，边界处发开/闭群通知，休息时间发言先温和提醒。",
        "en": "Open hours: the group opens in windows, announces each opening and closing, and gently reminds people who speak while it rests.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "opened": {
            "zh-CN": "☀️ 开放时间到，欢迎畅聊！本次开放到 {until}。",
            "en": "☀️ We're open: chat away! Open until {until}.",
        },
        "closed": {
            "zh-CN": "🌙 群进入休息时间，{next} 再开放。有急事请私信管理员。",
            "en": "🌙 The group is resting now and opens again at {next}. For anything urgent, message an admin.",
        },
        "closed_forever": {
            "zh-CN": "🌙 群进入休息时间，暂时没有安排下次开放。",
            "en": "🌙 The group is resting now; no next opening is planned yet.",
        },
        "reminder": {
            "zh-CN": "{name}，现在是休息时间哦，{next} 再开放，到时候再聊～",
            "en": "{name}, the group is resting right now; it opens again at {next}. Talk then!",
        },
        "strike": {
            "zh-CN": "{name}，休息时间请不要发言（第 {strikes}/{max_strikes} 次提醒）。",
            "en": "{name}, please hold your messages until we open ({strikes} of {max_strikes}).",
        },
        "muted": {
            "zh-CN": "{name} 在休息时间多次发言，禁言到 {next} 开放。",
            "en": "{name} kept posting while the group was resting and is muted until we open at {next}.",
        },
        "admin_strikes": {
            "zh-CN": "⏰ {name}（{member}）在「{group}」休息时间已发言 {strikes} 次，提醒无效，请留意。",
            "en": "⏰ {name} ({member}) has posted {strikes} times in {group} while it was closed, despite reminders.",
        },
        "never": {"zh-CN": "（未定）", "en": "(not planned)"},
    }

    def __init__(self) -> None:
        self._schedules: ConfigCache[HoursConfig, Schedule] = ConfigCache(_compile)

    def _status(self, ctx: Context, when: datetime) -> tuple[bool, datetime | None]:
        return self._schedules.get(ctx.config).status(ctx.community.tz, when)

    def _when(self, ctx: Context, moment: datetime | None) -> str:
        """A boundary as the group reads it: "20:00" today, else "11-03 20:00"."""
        if moment is None:
            return ctx.render("never")
        local = moment.astimezone(ctx.community.tz)
        if local.date() == ctx.today:
            return local.strftime("%H:%M")
        return local.strftime("%m-%d %H:%M")

    # ------------------------------------------------------------- the clock

    def setup(self, ctx: Context) -> None:
        is_open, nxt = self._status(ctx, ctx.now)
        gkey = _gkey(ctx)
        st = ctx.state.get(gkey) or {}
        new = {"open": is_open, "next": nxt.isoformat() if nxt else None}
        if st != new:
            ctx.state.put(gkey, new)
        if nxt is not None:
            ctx.schedule(_JOB, at=nxt)
        else:
            ctx.cancel(_JOB)

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != _JOB:
            return
        cfg: HoursConfig = ctx.config
        is_open, nxt = self._status(ctx, ctx.now)
        gkey = _gkey(ctx)
        st = ctx.state.get(gkey) or {}
        if cfg.notices and st.get("open") != is_open:
            if is_open:
                ctx.send(ctx.render("opened", until=self._when(ctx, nxt)))
            elif nxt is None:
                ctx.send(ctx.render("closed_forever"))
            else:
                ctx.send(ctx.render("closed", next=self._when(ctx, nxt)))
        ctx.state.put(gkey, {"open": is_open, "next": nxt.isoformat() if nxt else None})
        if nxt is not None:
            ctx.schedule(_JOB, at=nxt)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: HoursConfig = ctx.config
        uid: str = event.actor.id
        if event.content_type == "system" or ctx.role(uid) in cfg.exempt_roles:
            return
        if not cfg.remind and not cfg.strikes:
            return
        is_open, reopens = self._status(ctx, event.ts)
        if is_open:
            return
        period = reopens.isoformat() if reopens else "never"
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        name = ctx.name(uid)
        nxt = self._when(ctx, reopens)
        if st.get("period") != period and cfg.remind:
            st["period"] = period
            ctx.state.put(key, st)
            ctx.send(ctx.render("reminder", name=name, next=nxt), mentions=[uid], reply_to=event.msg_id)
            ctx.record("reminder", member=uid)
            return
        if not cfg.strikes:
            return
        st["period"] = period
        since = event.ts - timedelta(days=cfg.strike_window_days)
        strikes = [s for s in st.get("strikes", []) if datetime.fromisoformat(s) > since]
        strikes.append(event.ts.isoformat())
        count = len(strikes)
        ctx.record("strike", member=uid, strikes=count)
        if count < cfg.max_strikes:
            st["strikes"] = strikes
            ctx.state.put(key, st)
            ctx.send(
                ctx.render("strike", name=name, strikes=count, max_strikes=cfg.max_strikes),
                mentions=[uid],
                reply_to=event.msg_id,
            )
            return
        st.pop("strikes", None)
        ctx.state.put(key, st)
        if cfg.strike_action == "mute":
            until = reopens or (event.ts + timedelta(days=1))
            ctx.mute(uid, until)
            ctx.send(ctx.render("muted", name=name, next=nxt), mentions=[uid])
            ctx.record("muted", member=uid, until=until.isoformat())
        else:
            from qunyun.core.text import display_name

            ctx.notify_admins(
                ctx.render(
                    "admin_strikes",
                    name=name,
                    member=display_name(uid, "?", limit=64),
                    group=display_name(ctx.group.name, ctx.group.key, limit=64),
                    strikes=count,
                )
            )


def _gkey(ctx: Context) -> str:
    return f"g:{ctx.group.platform}:{ctx.group.key}"

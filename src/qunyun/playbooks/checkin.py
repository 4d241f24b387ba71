"""checkin (打卡): a daily check-in with streaks, points and boards.

A message that starts with a check-in keyword (or matches the configured
pattern) records the member's check-in for the local day in the community's
time zone — once per day. Consecutive days make a streak; a missed day
breaks it. Each check-in earns points through the ledger, with bonuses when
the streak reaches a multiple of a milestone. An evening job reminds members
whose streak would break tonight; boards show today's and this week's
check-ins on request.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron


class CheckinConfig(PlaybookConfig):
    keywords: list[str] = Field(
        default_factory=lambda: ["打卡", "#打卡", "签到", "check in", "check-in", "checkin"],
        description="A message starting with one of these (case-insensitive) is a check-in.",
    )
    pattern: str | None = Field(
        default=None, description="Optional regular expression; a match also counts as a check-in."
    )
    min_length: int = Field(
        default=0, ge=0, description="Characters required besides the keyword (e.g. what you did today)."
    )
    require_image: bool = Field(
        default=False, description="Only an image whose caption carries the keyword counts."
    )
    points: int = Field(default=10, ge=0, description="Points per check-in.")
    streak_bonus: dict[int, int] = Field(
        default_factory=lambda: {7: 20, 30: 100},
        description="Extra points when the streak reaches a multiple of N days: {N: points}.",
    )
    reply: bool = Field(default=True, description="Confirm each check-in in the group.")
    reminder: str | None = Field(
        default="0 21 * * *",
        description="Cron (community time zone) for the evening reminder; null to switch off.",
    )
    reminder_limit: int = Field(default=20, ge=1, le=200, description="At most this many @-mentions per reminder.")
    board_keywords: list[str] = Field(
        default_factory=lambda: ["打卡榜", "checkin board"],
        description="A message that is exactly one of these shows today's board.",
    )
    week_board_keywords: list[str] = Field(
        default_factory=lambda: ["打卡周榜", "weekly checkin board"],
        description="A message that is exactly one of these shows this week's board.",
    )
    board_size: int = Field(default=10, ge=1, le=50, description="Rows on a board.")

    @field_validator("reminder")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @field_validator("streak_bonus")
    @classmethod
    def _positive(cls, value: dict[int, int]) -> dict[int, int]:
        for days, pts in value.items():
            if days < 1 or pts < 0:
                raise ValueError("streak_bonus needs days >= 1 and points >= 0")
        return value


class _Matcher:
    """Casefolded keywords of one config, computed once (configs are immutable)."""

    __slots__ = ("board", "longest", "pattern", "prefixes", "week_board")

    def __init__(self, cfg: CheckinConfig) -> None:
        self.board = frozenset(k.casefold() for k in cfg.board_keywords)
        self.week_board = frozenset(k.casefold() for k in cfg.week_board_keywords)
        words = [k.casefold() for k in (*cfg.keywords, *cfg.board_keywords, *cfg.week_board_keywords)]
        self.prefixes = tuple(w for w in words if w)
        # leading blanks are allowed before a keyword; look a little further than the longest
        self.longest = max((len(w) for w in words), default=0) + 16
        self.pattern = re.compile(cfg.pattern) if cfg.pattern else None


_MATCHERS: dict[int, tuple[CheckinConfig, _Matcher]] = {}


def _matcher(cfg: CheckinConfig) -> _Matcher:
    found = _MATCHERS.get(id(cfg))
    if found is None or found[0] is not cfg:
        found = (cfg, _Matcher(cfg))
        _MATCHERS[id(cfg)] = found
    return found[1]


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class Checkin(Playbook):
    id = "checkin"
    config_model = CheckinConfig
    handles = frozenset({"message"})
    emits = frozenset({"send"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "每日打卡：连续天数、积分与排行榜，晚间提醒。",
        "en": "Daily check-in with streaks, points, boards and an evening reminder.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "done": {
            "zh-CN": "✅ {name} 今日打卡成功！连续 {streak} 天，累计 {total} 天，+{points} 积分{bonus}",
            "en": "✅ {name} checked in! {streak}-day streak, {total} days in all, +{points} points{bonus}",
        },
        "bonus": {
            "zh-CN": "（含连续 {days} 天奖励 {extra}）",
            "en": " (incl. {extra} for a {days}-day streak)",
        },
        "already": {
            "zh-CN": "{name} 今天已经打过卡啦，明天继续加油～",
            "en": "{name}, you have already checked in today. See you tomorrow!",
        },
        "too_short": {
            "zh-CN": "{name} 打卡内容太短啦：请写下今天做了什么（至少 {min} 个字）。",
            "en": "{name}, tell us a little more about today (at least {min} characters) to check in.",
        },
        "reminder": {
            "zh-CN": "🌙 今天还没打卡的小伙伴，别让连续记录断掉哦：{names}",
            "en": "🌙 Still time to check in today and keep your streak alive: {names}",
        },
        "board": {
            "zh-CN": "📋 今日打卡 {count} 人。连续天数榜：\n{lines}",
            "en": "📋 {count} checked in today. Longest streaks:\n{lines}",
        },
        "week_board": {
            "zh-CN": "📅 本周（{week}）打卡榜：\n{lines}",
            "en": "📅 Check-ins this week ({week}):\n{lines}",
        },
        "board_line": {
            "zh-CN": "{rank}. {name} · {value} 天",
            "en": "{rank}. {name} · {value} days",
        },
        "board_empty": {
            "zh-CN": "还没有人打卡，来做第一个吧！",
            "en": "Nobody has checked in yet. Be the first!",
        },
    }

    def setup(self, ctx: Context) -> None:
        cfg: CheckinConfig = ctx.config
        if cfg.reminder:
            ctx.schedule("reminder", cron=cfg.reminder)
        else:
            ctx.cancel("reminder")

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: CheckinConfig = ctx.config
        text: str = event.text
        if not text:
            return
        m = _matcher(cfg)
        # cheap first look at the start of the message: most messages stop here
        head = text[: m.longest].lstrip().casefold()
        if not head.startswith(m.prefixes) and m.pattern is None:
            return
        text = text.strip()
        low = text.casefold()
        if low in m.board:
            self._board(ctx)
            return
        if low in m.week_board:
            self._week_board(ctx)
            return
        rest = self._match(cfg, text, low)
        if rest is None:
            return
        if cfg.require_image and event.content_type != "image":
            return
        uid = event.actor.id
        name = ctx.name(uid)
        if len(rest) < cfg.min_length:
            ctx.send(ctx.render("too_short", name=name, min=cfg.min_length), mentions=[uid], reply_to=event.msg_id)
            return
        day = ctx.local_day(event.ts)
        key = f"m:{uid}"
        st: dict[str, Any] = dict(ctx.state.get(key) or {})
        today = day.isoformat()
        if st.get("last") == today:
            if st.get("told") != today:
                st["told"] = today
                ctx.state.put(key, st)
                ctx.send(ctx.render("already", name=name), mentions=[uid], reply_to=event.msg_id)
            return
        last = st.get("last")
        if last is not None and date.fromisoformat(last) > day:
            return  # a late event from before the latest check-in: already counted or superseded
        streak = int(st.get("streak", 0)) + 1 if last == (day - timedelta(days=1)).isoformat() else 1
        week = _iso_week(day)
        month = today[:7]
        st.update(
            last=today,
            streak=streak,
            best=max(streak, int(st.get("best", 0))),
            total=int(st.get("total", 0)) + 1,
            wk=week,
            wkn=int(st.get("wkn", 0)) + 1 if st.get("wk") == week else 1,
            mo=month,
            mon=int(st.get("mon", 0)) + 1 if st.get("mo") == month else 1,
            group=ctx.group.key,
        )
        ctx.state.put(key, st)
        # Who checked in here today: the evening reminder reads yesterday's list
        # instead of scanning every member. Only two days are kept.
        day_key = f"g:{ctx.group.key}:day:{today}"
        ctx.state.put(day_key, [*(ctx.state.get(day_key) or []), uid])
        ctx.state.delete(f"g:{ctx.group.key}:day:{(day - timedelta(days=2)).isoformat()}")
        ctx.count("checkins")
        bonus_total = 0
        bonus_days = 0
        for days, extra in sorted(cfg.streak_bonus.items()):
            if streak % days == 0:
                bonus_total += extra
                bonus_days = days
        points = cfg.points + bonus_total
        if points:
            ctx.ledger.award_points(uid, points, "checkin" if not bonus_total else f"checkin+streak{bonus_days}")
            ctx.count("points", points)
        if cfg.reply:
            bonus = ctx.render("bonus", days=bonus_days, extra=bonus_total) if bonus_total else ""
            ctx.send(
                ctx.render("done", name=name, streak=streak, total=st["total"], points=points, bonus=bonus),
                mentions=[uid],
                reply_to=event.msg_id,
            )

    @staticmethod
    def _match(cfg: CheckinConfig, text: str, low: str) -> str | None:
        """The content after the keyword if ``text`` is a check-in, else None."""
        for kw in cfg.keywords:
            k = kw.casefold()
            if low.startswith(k):
                return text[len(kw) :].strip(" \t:：,，-—!！")
        if cfg.pattern and re.search(cfg.pattern, text):
            return text
        return None

    # --------------------------------------------------------------- privacy

    def erase_member(self, ctx: Context, member: str) -> None:
        super().erase_member(ctx, member)
        for key, uids in list(ctx.state.scan("g:")):
            if ":day:" in key and member in uids:
                ctx.state.put(key, [u for u in uids if u != member])

    def merge_member(self, ctx: Context, source: str, target: str) -> list[str]:
        """Two ids of one person: one record of check-ins (see :func:`_combine`)."""
        mine, theirs = ctx.state.get(f"m:{target}"), ctx.state.get(f"m:{source}")
        if theirs is not None:
            ctx.state.put(f"m:{target}", dict(theirs) if mine is None else _combine(mine, theirs))
            ctx.state.delete(f"m:{source}")
        for key, uids in list(ctx.state.scan("g:")):
            if ":day:" in key and source in uids:
                ctx.state.put(key, list(dict.fromkeys(target if u == source else u for u in uids)))
        return []

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "reminder":
            return
        cfg: CheckinConfig = ctx.config
        today = ctx.today
        yesterday = (today - timedelta(days=1)).isoformat()
        due = [
            uid
            for uid in ctx.state.get(f"g:{ctx.group.key}:day:{yesterday}") or []
            if (ctx.state.get(f"m:{uid}") or {}).get("last") == yesterday
        ]
        if not due:
            return  # nothing to say: stay quiet
        due = due[: cfg.reminder_limit]
        names = "、".join(f"@{ctx.name(u)}" for u in due) if ctx.locale == "zh-CN" else ", ".join(
            f"@{ctx.name(u)}" for u in due
        )
        ctx.send(ctx.render("reminder", names=names), mentions=due)

    # ---------------------------------------------------------------- boards

    def _board(self, ctx: Context) -> None:
        """Today's check-ins, longest streaks first."""
        today = ctx.today.isoformat()
        rows = [(st.get("streak", 0), key[2:]) for key, st in ctx.state.scan("m:") if st.get("last") == today]
        self._post_board(ctx, rows, "board", count=len(rows))

    def _week_board(self, ctx: Context) -> None:
        """This ISO week's check-in counts."""
        week = _iso_week(ctx.today)
        rows = [(st.get("wkn", 0), key[2:]) for key, st in ctx.state.scan("m:") if st.get("wk") == week]
        self._post_board(ctx, rows, "week_board", week=week)

    def _post_board(self, ctx: Context, rows: list[tuple[int, str]], template: str, **values: Any) -> None:
        cfg: CheckinConfig = ctx.config
        if not rows:
            ctx.send(ctx.render("board_empty"))
            return
        rows.sort(key=lambda r: (-r[0], r[1]))
        lines = "\n".join(
            ctx.render("board_line", rank=i + 1, name=ctx.name(uid), value=value)
            for i, (value, uid) in enumerate(rows[: cfg.board_size])
        )
        ctx.send(ctx.render(template, lines=lines, **values))


def _combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The check-in record of one person who checked in under two ids.

    The streak is the later record's; when the earlier id's last check-in was
    the day before that streak began, the two runs join. (Only the last run
    of each id is known: ids that took turns day by day before they were
    linked get the last two runs, not the whole.) Totals add, minus one when
    both checked in on the same last day; the best streak is the best of all.
    """
    later, earlier = (a, b) if str(a.get("last") or "") >= str(b.get("last") or "") else (b, a)
    last, before = later.get("last"), earlier.get("last")
    streak = int(later.get("streak", 0))
    same_day = 1 if last is not None and before == last else 0
    if same_day:
        streak = max(streak, int(earlier.get("streak", 0)))
    elif last is not None and before is not None and (
        date.fromisoformat(before) == date.fromisoformat(last) - timedelta(days=streak)
    ):
        streak += int(earlier.get("streak", 0))
    out = dict(later)
    out["streak"] = streak
    out["best"] = max(streak, int(a.get("best", 0)), int(b.get("best", 0)))
    out["total"] = int(a.get("total", 0)) + int(b.get("total", 0)) - same_day
    for period, n in (("wk", "wkn"), ("mo", "mon")):
        if a.get(period) is not None and a.get(period) == b.get(period):
            out[n] = int(a.get(n, 0)) + int(b.get(n, 0)) - same_day
    told = [t for t in (a.get("told"), b.get("told")) if t]
    if told:
        out["told"] = max(told)
    return out

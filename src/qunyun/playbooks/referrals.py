"""referrals (裂变): personal invite codes, attributed joins, boards and the cascade.

Every member has one personal invite code: six characters of Crockford
base32, derived from an HMAC of ``"<platform>:<uid>"`` (key: the configured
``secret``, or the community id), so the same member always gets the same
code. A member asks for it in the group (``我的邀请码`` / ``my invite code``)
and gets it privately, with a join link if one is configured.

A join is attributed to the person who brought the newcomer in: the inviter
the platform reports on ``member_joined``, or the owner of a code the
newcomer presents — in the answers of a ``join_request``, or by saying
``邀请码 XXXXXX`` in the group within a window after joining. The first
attribution wins and is never counted twice (not even when the newcomer
leaves and comes back); self-referrals, codes of members who left and codes
that belong to nobody are refused. Each referral is logged
(``referral`` records), may earn the inviter points through the ledger, and
feeds the day / week / month boards (community time zone) and the invitation
cascade (who invited whom, how deep, how large each subtree is).

State (scoped to the community):

- ``m:<uid>`` — the member: ``code``, ``joined`` (first join seen), ``in``
  (groups they are in), ``left``, ``by`` (their inviter), ``day`` (local day
  of the attributed join), ``via``, ``group``, ``pending`` (a code from a join
  request), counters.
- ``code:<CODE>`` — ``{"member": uid, "platform": ..., "issued": iso}``; the
  ``gate`` playbook reads these to check codes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator
from sqlalchemy import select, update

from qunyun.core.errors import CommandError, Msg, PlaybookError
from qunyun.engine import Command, Context, Playbook, PlaybookConfig

#: Crockford's base32 alphabet: no I, L, O, U (they read as 1, 1, 0 or a word).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 6
#: A collision with another member's code appends the next HMAC characters,
#: up to this length (a 6-character collision is ~1 in 10^9 per pair already).
MAX_CODE_LENGTH = 10
_VALID = frozenset(ALPHABET)
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})
_DROP = re.compile(r"[\s\-‐‑‒–—―_.·]+")
#: Longer input cannot be a code; it is refused before any work is done on it.
_MAX_INPUT = 64
#: What a typed code may look like after the keyword (after NFKC).
_ATTEMPT = re.compile(r"[0-9A-Za-z][0-9A-Za-z \-‐‑‒–—―_.·]{0,40}")
_SPLIT = re.compile(r"[\s,，;；:：/|。.!！?？()（）\[\]【】<>《》\"'“”‘’]+")


def normalise_code(text: str) -> str | None:
    """The invite code in ``text`` as stored, or None if it is not one.

    Forgiving about how people type: surrounding blanks, lower case,
    full-width characters, spaces and dashes inside (``ab-12 cd``), and the
    look-alikes O→0, I→1, L→1. The result has 6 characters of
    ``0123456789ABCDEFGHJKMNPQRSTVWXYZ`` — or, for the rare member whose
    6-character code collided with someone else's, up to 10.
    """
    if not isinstance(text, str) or len(text) > _MAX_INPUT:
        return None
    folded = unicodedata.normalize("NFKC", text).strip().upper().translate(_FOLD)
    folded = _DROP.sub("", folded)
    if not CODE_LENGTH <= len(folded) <= MAX_CODE_LENGTH:
        return None
    if not all(c in _VALID for c in folded):
        return None
    return folded


def derive_code(key: str, platform: str, uid: str, length: int = CODE_LENGTH) -> str:
    """The first ``length`` × 5 bits of HMAC-SHA256(key, "<platform>:<uid>") in Crockford base32."""
    digest = hmac.new(key.encode(), f"{platform}:{uid}".encode(), hashlib.sha256).digest()
    bits = int.from_bytes(digest, "big")
    total = len(digest) * 8
    return "".join(ALPHABET[(bits >> (total - 5 * (i + 1))) & 31] for i in range(length))


#: Prefix of the anonymous node an erased member becomes in the invitation tree.
ERASED = "~erased-"

_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ReferralsConfig(PlaybookConfig):
    secret: str | None = Field(
        default=None,
        description="Key of the HMAC that derives invite codes; `${VAR}` reads an environment variable. "
        "Unset: the community id (codes can then be computed by anyone who knows a member's id).",
    )
    link_template: str | None = Field(
        default=None,
        description="A join link with the code in it, e.g. `https://example.org/join?c={code}`; "
        "sent with the code when set.",
    )
    ask_keywords: list[str] = Field(
        default_factory=lambda: ["我的邀请码", "my invite code", "my referral code"],
        description="A message that is exactly one of these gets the member their code, privately.",
    )
    code_keywords: list[str] = Field(
        default_factory=lambda: ["邀请码", "invite code", "referral code"],
        description="A newcomer's message starting with one of these, followed by a code, presents the code.",
    )
    window_hours: int = Field(
        default=72, ge=1, le=24 * 90, description="How long after their first join a newcomer may present a code."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Codes one newcomer may try in the group before they are ignored."
    )
    points: int = Field(default=0, ge=0, description="Points the inviter earns per referral (0: none).")
    points_daily_limit: int = Field(
        default=20, ge=1, description="Referrals per local day that earn one inviter points (the rest still count)."
    )
    notify_inviter: bool = Field(default=True, description="Tell the inviter privately when someone joins through them.")
    board_keywords: list[str] = Field(
        default_factory=lambda: ["邀请榜", "referral board"],
        description="A message that is exactly one of these shows today's referral board.",
    )
    week_board_keywords: list[str] = Field(
        default_factory=lambda: ["邀请周榜", "weekly referral board", "referral board week"],
        description="A message that is exactly one of these shows this week's referral board.",
    )
    month_board_keywords: list[str] = Field(
        default_factory=lambda: ["邀请月榜", "monthly referral board", "referral board month"],
        description="A message that is exactly one of these shows this month's referral board.",
    )
    board_size: int = Field(default=10, ge=1, le=50, description="Rows on a board.")

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        found = _ENV.match(value.strip())
        if found:
            env = os.environ.get(found.group(1))
            if not env:
                raise ValueError(f"environment variable {found.group(1)} (named by secret) is not set or empty")
            return env
        if len(value) < 8:
            raise ValueError("secret is too short: use at least 8 characters (better: ${VAR} with a random value)")
        return value

    @field_validator("link_template")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None and "{code}" not in value:
            raise ValueError("link_template must contain {code}, e.g. https://example.org/join?c={code}")
        return value

    @field_validator(
        "ask_keywords", "code_keywords", "board_keywords", "week_board_keywords", "month_board_keywords"
    )
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        words = [w.strip() for w in value]
        if any(not w for w in words):
            raise ValueError("keywords must not be empty")
        return words


class _Words:
    """Casefolded keywords of one config, computed once (configs are immutable)."""

    __slots__ = ("ask", "boards", "prefixes")

    def __init__(self, cfg: ReferralsConfig) -> None:
        self.ask = frozenset(w.casefold() for w in cfg.ask_keywords)
        self.boards = {
            w.casefold(): period
            for words, period in (
                (cfg.board_keywords, "day"),
                (cfg.week_board_keywords, "week"),
                (cfg.month_board_keywords, "month"),
            )
            for w in words
        }
        self.prefixes = tuple({*self.ask, *self.boards, *(w.casefold() for w in cfg.code_keywords)})


_WORDS: dict[int, tuple[ReferralsConfig, _Words]] = {}


def _words(cfg: ReferralsConfig) -> _Words:
    found = _WORDS.get(id(cfg))
    if found is None or found[0] is not cfg:
        found = (cfg, _Words(cfg))
        _WORDS[id(cfg)] = found
    return found[1]


PERIODS = ("day", "week", "month")


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _period_of(day: date, period: str) -> str:
    if period == "day":
        return day.isoformat()
    if period == "week":
        return _iso_week(day)
    return day.isoformat()[:7]


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _day_arg(value: Any) -> date | None:
    """The ``day`` argument of ``board``: None when absent, else an ISO date (``2026-11-02``)."""
    if value is None:
        return None
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    shown = (value if isinstance(value, str) else repr(value))[:40]
    raise CommandError(Msg("day must be a date written 2026-11-02, not {day!r}", day=shown),
                       hint=Msg("leave day out for today"))


class Referrals(Playbook):
    id = "referrals"
    version = "1"
    config_model = ReferralsConfig
    handles = frozenset({"message", "member_joined", "member_left", "join_request"})
    emits = frozenset({"send", "direct"})
    commands: ClassVar[dict[str, str]] = {
        "code": "a member's invite code (issues it if needed): member=UID",
        "board": "the referral board: period=day|week|month, day=YYYY-MM-DD (default: today)",
        "cascade": "the invitation tree: max depth, roots, subtree sizes (group_key=KEY for one group, top=N)",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "裂变：每人专属邀请码，入群归属邀请人，日/周/月邀请榜与邀请链。",
        "en": "Referrals: personal invite codes, attributed joins, day/week/month boards and the invitation cascade.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "your_code": {
            "zh-CN": "你的专属邀请码：{code}\n朋友入群后在群里发送“邀请码 {code}”（或在入群申请里填写），就会记在你名下。",
            "en": "Your invite code: {code}\nA friend who joins and says \"invite code {code}\" in the group "
            "(or writes it in the join request) is counted as your referral.",
        },
        "your_link": {
            "zh-CN": "你的专属邀请码：{code}\n邀请链接：{link}\n朋友通过链接入群，或入群后发送“邀请码 {code}”，都会记在你名下。",
            "en": "Your invite code: {code}\nYour invite link: {link}\nFriends who join through the link, or say "
            "\"invite code {code}\" after joining, are counted as your referrals.",
        },
        "code_ok": {
            "zh-CN": "已记录：你是由 {inviter} 邀请入群的，欢迎！",
            "en": "Noted: {inviter} invited you. Welcome!",
        },
        "code_bad": {
            "zh-CN": "这个邀请码无效，请核对后再发一次（还可尝试 {left} 次）。",
            "en": "That invite code is not valid. Please check it and try again ({left} tries left).",
        },
        "code_self": {
            "zh-CN": "这是你自己的邀请码哦，请填写邀请你的朋友的邀请码。",
            "en": "That is your own code. Please enter the code of the friend who invited you.",
        },
        "code_taken": {
            "zh-CN": "你的邀请人已经记录为 {inviter}，不能再更改。",
            "en": "Your inviter is already recorded as {inviter} and cannot be changed.",
        },
        "inviter_news": {
            "zh-CN": "🎉 {name} 通过你的邀请加入了社群！你已累计邀请 {total} 人。{points}",
            "en": "🎉 {name} joined through your invitation! You have brought in {total} so far. {points}",
        },
        "points_note": {
            "zh-CN": "积分 +{points}",
            "en": "+{points} points",
        },
        "board_day": {
            "zh-CN": "📣 今日邀请榜（{period}）：\n{lines}",
            "en": "📣 Referrals today ({period}):\n{lines}",
        },
        "board_week": {
            "zh-CN": "📣 本周邀请榜（{period}）：\n{lines}",
            "en": "📣 Referrals this week ({period}):\n{lines}",
        },
        "board_month": {
            "zh-CN": "📣 本月邀请榜（{period}）：\n{lines}",
            "en": "📣 Referrals this month ({period}):\n{lines}",
        },
        "board_line": {
            "zh-CN": "{rank}. {name} · 邀请 {value} 人",
            "en": "{rank}. {name} · {value} invited",
        },
        "board_empty": {
            "zh-CN": "这段时间还没有人邀请新朋友，发送“我的邀请码”获取你的专属邀请码吧！",
            "en": "No referrals in this period yet. Say \"my invite code\" to get yours!",
        },
        "erased_name": {
            "zh-CN": "（已注销成员）",
            "en": "(former member)",
        },
    }

    # ------------------------------------------------------------------ codes

    @staticmethod
    def _key(ctx: Context) -> str:
        cfg: ReferralsConfig = ctx.config
        return cfg.secret or ctx.community.id

    def issue_code(self, ctx: Context, uid: str) -> str:
        """The member's code, issued (stored both ways) on first use."""
        key = f"m:{uid}"
        st: dict[str, Any] = dict(ctx.state.get(key) or {})
        code = st.get("code")
        if isinstance(code, str):
            return code
        platform = ctx.group.platform
        secret = self._key(ctx)
        for length in range(CODE_LENGTH, MAX_CODE_LENGTH + 1):
            candidate = derive_code(secret, platform, uid, length)
            owner = ctx.state.get(f"code:{candidate}")
            if owner is None or (owner.get("member") == uid and owner.get("platform") == platform):
                break
        else:  # pragma: no cover - five successive HMAC collisions
            raise PlaybookError(f"no free invite code for {uid!r} up to {MAX_CODE_LENGTH} characters")
        issued = ctx.now.isoformat()
        ctx.state.put(f"code:{candidate}", {"member": uid, "platform": platform, "issued": issued})
        st["code"] = candidate
        ctx.state.put(key, st)
        return candidate

    def _owner(self, ctx: Context, code: str) -> str | None:
        found = ctx.state.get(f"code:{code}")
        if not isinstance(found, dict) or found.get("platform") != ctx.group.platform:
            return None
        member = found.get("member")
        return member if isinstance(member, str) else None

    @staticmethod
    def _departed(st: dict[str, Any]) -> bool:
        """Seen leaving every group we saw them in (and not back since)."""
        return bool(st.get("left")) and not st.get("in")

    def _code_text(self, ctx: Context, code: str) -> str:
        cfg: ReferralsConfig = ctx.config
        if cfg.link_template:
            return ctx.render("your_link", code=code, link=cfg.link_template.replace("{code}", code))
        return ctx.render("your_code", code=code)

    # ----------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        etype = event.type
        if etype == "message":
            self._message(ctx, event)
        elif etype == "member_joined":
            self._joined(ctx, event)
        elif etype == "member_left":
            self._left(ctx, event)
        elif etype == "join_request":
            self._request(ctx, event)

    def _message(self, ctx: Context, event: Any) -> None:
        text: str = event.text
        if not text or len(text) > 200:
            return  # no command of ours is that long
        cfg: ReferralsConfig = ctx.config
        words = _words(cfg)
        low = text.strip().casefold()
        if not low.startswith(words.prefixes):
            return  # most messages stop here
        uid = event.actor.id
        if low in words.ask:
            self._ask(ctx, uid)
            return
        period = words.boards.get(low)
        if period is not None:
            self._post_board(ctx, period)
            return
        for word in cfg.code_keywords:
            if low.startswith(word.casefold()):
                rest = unicodedata.normalize("NFKC", text.strip()[len(word) :]).strip(" \t:,=")
                if _ATTEMPT.fullmatch(rest):  # "邀请码是什么？" is a question, not a code
                    self._present(ctx, event, uid, rest)
                return

    def _ask(self, ctx: Context, uid: str) -> None:
        # at most three replies a day: the code does not change, and DMs are not free
        key = f"m:{uid}"
        today = ctx.local_day(ctx.event.ts if ctx.event is not None else ctx.now).isoformat()
        st: dict[str, Any] = dict(ctx.state.get(key) or {})
        asked = int(st.get("asked_n", 0)) if st.get("asked_day") == today else 0
        if asked >= 3:
            return
        code = self.issue_code(ctx, uid)
        st = dict(ctx.state.get(key) or {})
        st.update(asked_day=today, asked_n=asked + 1)
        groups = list(st.get("in") or [])
        if ctx.group.key not in groups:  # they are talking here, so they are here
            st["in"] = [*groups, ctx.group.key]
            st.pop("left", None)
        ctx.state.put(key, st)
        ctx.direct(uid, self._code_text(ctx, code))

    def _present(self, ctx: Context, event: Any, uid: str, raw: str) -> None:
        """A newcomer says ``邀请码 XXXXXX`` in the group."""
        cfg: ReferralsConfig = ctx.config
        key = f"m:{uid}"
        st: dict[str, Any] = dict(ctx.state.get(key) or {})
        joined = st.get("joined")
        if not joined:
            return  # we never saw them join: not a newcomer
        if event.ts - datetime.fromisoformat(joined) > timedelta(hours=cfg.window_hours):
            return
        tries = int(st.get("tries", 0))
        if tries >= cfg.max_attempts:
            return
        st["tries"] = tries + 1
        ctx.state.put(key, st)
        if st.get("by"):
            if not st.get("told_taken"):
                st["told_taken"] = True
                ctx.state.put(key, st)
                ctx.direct(uid, ctx.render("code_taken", inviter=self._display(ctx, st["by"])))
            return
        code = normalise_code(raw)
        inviter = self._owner(ctx, code) if code else None
        if inviter == uid:
            ctx.direct(uid, ctx.render("code_self"))
            return
        verdict = "bad"
        if inviter is not None:
            verdict = self._attribute(
                ctx, uid, inviter, via="code", at=datetime.fromisoformat(joined), group=st.get("group_joined")
            )
        if verdict == "ok":
            assert inviter is not None
            ctx.direct(uid, ctx.render("code_ok", inviter=ctx.name(inviter)))
        else:
            left = cfg.max_attempts - tries - 1
            if left > 0:
                ctx.direct(uid, ctx.render("code_bad", left=left))

    def _request(self, ctx: Context, event: Any) -> None:
        """Remember a code written in a join request; it is attributed when they join."""
        answers = event.answers
        values = list(answers.values()) if isinstance(answers, dict) else list(answers)
        uid = event.actor.id
        for value in values[:20]:
            code = self._find_code(ctx, value)
            if code is None:
                continue
            st: dict[str, Any] = dict(ctx.state.get(f"m:{uid}") or {})
            if st.get("by") or st.get("joined"):
                return  # already attributed, or not a newcomer
            st["pending"] = {"code": code, "at": event.ts.isoformat()}
            ctx.state.put(f"m:{uid}", st)
            return

    def _find_code(self, ctx: Context, value: Any) -> str | None:
        """An issued code in one answer: the whole answer, or one of its first words."""
        if not isinstance(value, str) or not value:
            return None
        whole = normalise_code(value[:_MAX_INPUT])
        if whole is not None and ctx.state.get(f"code:{whole}") is not None:
            return whole
        for token in _SPLIT.split(value[:500])[:50]:
            code = normalise_code(token)
            if code is not None and ctx.state.get(f"code:{code}") is not None:
                return code
        return None

    def _joined(self, ctx: Context, event: Any) -> None:
        uid = event.actor.id
        key = f"m:{uid}"
        st: dict[str, Any] = dict(ctx.state.get(key) or {})
        first = not st.get("joined")
        groups = list(st.get("in") or [])
        if ctx.group.key not in groups:
            groups.append(ctx.group.key)
        st["in"] = groups
        st.pop("left", None)
        if first:
            st["joined"] = event.ts.isoformat()
            st["group_joined"] = ctx.group.key
        pending = st.pop("pending", None)
        ctx.state.put(key, st)
        if not first or st.get("by"):
            return  # a returning member is not a new referral; the first attribution stands
        cfg: ReferralsConfig = ctx.config
        inviter: str | None = None
        via = "platform"
        if isinstance(pending, dict) and isinstance(pending.get("code"), str):
            at = datetime.fromisoformat(pending["at"])
            if event.ts - at <= timedelta(hours=cfg.window_hours):
                inviter = self._owner(ctx, pending["code"])
                via = "code"
        if inviter is None and event.inviter:
            inviter = event.inviter
            via = "platform"
        if inviter is None or inviter == uid:
            return
        self._attribute(ctx, uid, inviter, via=via, at=event.ts, group=ctx.group.key)

    def _left(self, ctx: Context, event: Any) -> None:
        uid = event.actor.id
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if not isinstance(st, dict):
            return  # never seen joining nor holding a code: nothing to keep
        st = dict(st)
        st["in"] = [g for g in (st.get("in") or []) if g != ctx.group.key]
        st["left"] = event.ts.isoformat()
        ctx.state.put(key, st)

    # ------------------------------------------------------------ attribution

    def _attribute(
        self, ctx: Context, invitee: str, inviter: str, *, via: str, at: datetime, group: str | None
    ) -> str:
        """Record ``inviter`` as who brought ``invitee`` in. Returns ok | taken | self | departed | cycle."""
        if inviter == invitee:
            return "self"
        ikey = f"m:{invitee}"
        st: dict[str, Any] = dict(ctx.state.get(ikey) or {})
        if st.get("by"):
            return "taken"
        who: dict[str, Any] = dict(ctx.state.get(f"m:{inviter}") or {})
        if self._departed(who):
            return "departed"
        # no loops: the inviter must not have been brought in by the invitee, directly or not
        step, seen = who.get("by"), 0
        while isinstance(step, str) and seen < 10_000:
            if step == invitee:
                return "cycle"
            step = (ctx.state.get(f"m:{step}") or {}).get("by")
            seen += 1
        day = ctx.local_day(at)
        st.update(by=inviter, via=via, at=at.isoformat(), day=day.isoformat(), group=group or ctx.group.key)
        ctx.state.put(ikey, st)
        cfg: ReferralsConfig = ctx.config
        total = int(who.get("invited", 0)) + 1
        who["invited"] = total
        earned = 0
        if cfg.points:
            today = ctx.local_day(ctx.now).isoformat()
            rewarded = int(who.get("rewarded_n", 0)) if who.get("rewarded_day") == today else 0
            if rewarded < cfg.points_daily_limit:
                earned = cfg.points
                who.update(rewarded_day=today, rewarded_n=rewarded + 1)
        ctx.state.put(f"m:{inviter}", who)
        ctx.record("referral", inviter, invitee=invitee, via=via, group=group or ctx.group.key, day=day.isoformat())
        if earned:
            ctx.ledger.award_points(inviter, earned, "referral")
            ctx.count("points", earned, member=inviter)
        if cfg.notify_inviter:
            note = ctx.render("points_note", points=earned) if earned else ""
            ctx.direct(inviter, ctx.render("inviter_news", name=ctx.name(invitee), total=total, points=note).strip())
        return "ok"

    # ----------------------------------------------------------------- boards

    def _edges(self, ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
        """Every attribution: (invitee, inviter, invitee's state)."""
        return [
            (key[2:], st["by"], st)
            for key, st in ctx.state.scan("m:")
            if isinstance(st, dict) and isinstance(st.get("by"), str)
        ]

    def board(self, ctx: Context, period: str, day: date | None = None) -> tuple[str, list[tuple[str, int]]]:
        """(period label, [(inviter, referrals)]) for the local day/week/month that contains ``day``
        (default: today)."""
        label, rows, _latest = self._board(ctx, period, day)
        return label, rows

    def _board(
        self, ctx: Context, period: str, day: date | None
    ) -> tuple[str, list[tuple[str, int]], str | None]:
        """The board, and the local day of the latest referral of any period (None without any)."""
        if period not in PERIODS:
            raise CommandError(Msg("unknown period {period!r}", period=period), hint=Msg("use day, week or month"))
        current = _period_of(day if day is not None else ctx.today, period)
        counts: dict[str, int] = {}
        latest: str | None = None
        for _invitee, inviter, st in self._edges(ctx):
            joined = st.get("day")
            if not isinstance(joined, str):
                continue
            if _period_of(date.fromisoformat(joined), period) == current:
                counts[inviter] = counts.get(inviter, 0) + 1
            if latest is None or joined > latest:  # ISO days sort as text
                latest = joined
        return current, sorted(counts.items(), key=lambda r: (-r[1], r[0])), latest

    def _display(self, ctx: Context, uid: str) -> str:
        return ctx.render("erased_name") if uid.startswith(ERASED) else ctx.name(uid)

    def _post_board(self, ctx: Context, period: str) -> None:
        cfg: ReferralsConfig = ctx.config
        label, rows = self.board(ctx, period)
        if not rows:
            ctx.send(ctx.render("board_empty"))
            return
        lines = "\n".join(
            ctx.render("board_line", rank=i + 1, name=self._display(ctx, uid), value=n)
            for i, (uid, n) in enumerate(rows[: cfg.board_size])
        )
        ctx.send(ctx.render(f"board_{period}", period=label, lines=lines))

    def cascade(self, ctx: Context, group: str | None = None, top: int = 50) -> dict[str, Any]:
        """The invitation tree (of one group's joins, or the whole community's)."""
        parent: dict[str, str] = {}
        for invitee, inviter, st in self._edges(ctx):
            if group is None or st.get("group") == group:
                parent[invitee] = inviter
        children: dict[str, list[str]] = {}
        for child, par in parent.items():
            children.setdefault(par, []).append(child)
        nodes = set(parent) | set(children)
        roots = sorted(n for n in nodes if n not in parent)
        depth: dict[str, int] = {}
        order: list[str] = []
        stack = [(r, 0) for r in roots]
        while stack:
            node, d = stack.pop()
            if node in depth:
                continue
            depth[node] = d
            order.append(node)
            stack.extend((c, d + 1) for c in children.get(node, ()))
        subtree: dict[str, int] = {}
        for node in reversed(order):  # children come after their parent in ``order``
            subtree[node] = sum(1 + subtree.get(c, 0) for c in children.get(node, ()))

        def row(uid: str) -> dict[str, Any]:
            return {
                "member": uid,
                "name": self._display(ctx, uid),
                "inviter": parent.get(uid),
                "depth": depth.get(uid, 0),
                "invited": len(children.get(uid, ())),
                "subtree": subtree.get(uid, 0),
            }

        ranked = sorted(nodes, key=lambda u: (-subtree.get(u, 0), -len(children.get(u, ())), u))
        return {
            "group": group,
            "referrals": len(parent),
            "members": len(nodes),
            "max_depth": max(depth.values(), default=0),
            "roots": [
                {"member": r, "name": self._display(ctx, r), "subtree": subtree.get(r, 0)}
                for r in sorted(roots, key=lambda u: (-subtree.get(u, 0), u))[:top]
            ],
            "nodes": [row(u) for u in ranked[:top]],
        }

    # --------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        if command.name == "code":
            member = args.get("member")
            if not isinstance(member, str) or not member.strip():
                raise CommandError(Msg("code needs member=UID"), hint=Msg("e.g. member=u-17"))
            code = self.issue_code(ctx, member)
            cfg: ReferralsConfig = ctx.config
            link = cfg.link_template.replace("{code}", code) if cfg.link_template else None
            return {"member": member, "code": code, "link": link}
        if command.name == "board":
            period = str(args.get("period", "day"))
            label, rows, latest = self._board(ctx, period, _day_arg(args.get("day")))
            return {
                "period": period,
                "label": label,
                "rows": [{"member": u, "name": self._display(ctx, u), "referrals": n} for u, n in rows],
                "latest": latest,
            }
        if command.name == "cascade":
            group = args.get("group_key")
            if group is not None and not isinstance(group, str):
                raise CommandError(Msg("group_key must be a group key"))
            top = args.get("top", 50)
            if type(top) is not int or not 1 <= top <= 10_000:
                raise CommandError(Msg("top must be a whole number from 1 to 10000"))
            return self.cascade(ctx, group, top)
        return super().on_command(ctx, command)

    # ---------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        code = (found.get(f"m:{member}") or {}).get("code")
        if isinstance(code, str) and ctx.state.get(f"code:{code}") is not None:
            found[f"code:{code}"] = ctx.state.get(f"code:{code}")
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        own: dict[str, Any] = dict(ctx.state.get(f"m:{member}") or {})
        code = own.get("code")
        if isinstance(code, str) and (ctx.state.get(f"code:{code}") or {}).get("member") == member:
            ctx.state.delete(f"code:{code}")
        super().erase_member(ctx, member)
        # The invitation tree keeps its shape and the boards their counts: the
        # erased member becomes an anonymous node "~erased-N" without a name.
        children = [(k, st) for k, st in ctx.state.scan("m:") if isinstance(st, dict) and st.get("by") == member]
        if own.get("by") or children:
            n = int(ctx.state.get("erased_seq") or 0) + 1
            ctx.state.put("erased_seq", n)
            alias = f"{ERASED}{n}"
            if own.get("by"):
                kept = {k: own[k] for k in ("by", "via", "day", "group", "invited") if k in own}
                ctx.state.put(f"m:{alias}", kept)
            for key, st in children:
                ctx.state.put(key, {**st, "by": alias})
        # the referral log names invitees in its data: drop this member from it
        self._scrub_records(ctx, member)

    @staticmethod
    def _scrub_records(ctx: Context, member: str) -> None:
        from qunyun.store import models as m

        t = m.table(m.Record)
        conn = ctx.db
        rows = conn.execute(
            select(t.c.id, t.c.data).where(
                t.c.community_id == ctx.community.id, t.c.playbook == Referrals.id, t.c.kind == "referral"
            )
        ).all()
        for rid, data in rows:
            if isinstance(data, dict) and data.get("invitee") == member:
                conn.execute(update(t).where(t.c.id == rid).values(data={**data, "invitee": None}))

"""fund (群基金): the community fund — money in, weekly awards out, tips, statements.

Money is kept in the double-entry ledger in integer minor units (fen) of one
currency (``currency``, default CNY):

- ``community:fund:<CUR>`` — the fund. Entry fees arrive here from the
  ``gate`` playbook; dues and donations from members arrive here from
  ``payment`` events whose memo carries a keyword, or from the ``record``
  command when an admin took the money outside the chat.
- ``community:dues:<CUR>`` — admin dues (群管供养), which the ``duty``
  playbook pays to the admins on duty: payments with an admin-dues keyword,
  and ``admin_dues_share`` percent of ordinary dues.
- ``community:suspense:<CUR>`` — money nobody could match (no keyword, a
  wrong currency). Nothing is lost: ``reconcile`` lists it; ``match`` moves it
  where it belongs and ``refund`` sends it back.
- ``external:payments:<CUR>`` — where outside money comes from (it goes
  negative: minus everything received); ``external:payouts:<CUR>`` — where
  member balances go when an admin paid them out (``payout``).
- member accounts (``ctx.ledger.member_account``) — awards, tips, top-ups
  and challenge refunds; a member tips from here (``打赏 @某人 5``).

The season: ``season_start`` (default: the day the fund first ran) and
``season_weeks`` (52). Each week the award job (``award_cron``, community
time zone) awards the ISO week of the day before it runs: the pool is
``fund balance // weeks remaining in the season`` (this week included;
floor), split into an answers pool and a shares pool, paid by rank (floor
per rank; every fen not paid stays in the fund) to the week's best answerers
(``qa`` state ``week:<W>``) and sharers (``sessions`` state ``week:<W>``),
ties by score then user id.

State: ``season`` → ``{"start", "weeks", "source"}``; ``award:<W>`` →
``{"pool", "paid": {uid: fen}, "ts", "status", "lines"}``; ``m:<uid>`` → ``{"since", "left", "dues", "months",
"unmatched"}`` (dues paid and unmatched payments of one member).

Statements (in, out, balance) are read from the ledger's postings to the
fund account over local days, so money any playbook moved in any group
counts (the gate's entry fees in a group without the fund, a challenge's
leftovers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import case, func, select

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron
from qunyun.playbooks.money import (
    dues_account,
    external_account,
    fmt_money,
    fund_account,
    home_group,
    payouts_account,
    suspense_account,
)
from qunyun.store import models as m

#: Roles that pay no dues by default.
STAFF = ("owner", "admin", "assistant", "guest")
#: What a payment (or a recorded payment) is for.
Kind = Literal["dues", "admin_dues", "donation", "topup"]
KINDS: tuple[str, ...] = ("dues", "admin_dues", "donation", "topup")
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
_NUMBER = re.compile(r"^[-+−]?\d+(?:\.\d+)?$")
_MAX_UNMATCHED = 50
#: Where an erased winner's award amount is kept in ``award:<W>["paid"]``.
ERASED = "(erased)"
#: Words after a statement keyword that choose its period.
_PERIODS = {"": "week", "本周": "week", "week": "week", "本月": "month", "month": "month",
            "本季": "season", "赛季": "season", "season": "season"}


# --------------------------------------------------------------- money helpers




def parse_amount(token: str) -> int | None:
    """A typed amount in major units (``5``, ``5.5``, ``¥5.20``, ``5元``) → minor units.

    Returns None if ``token`` is not a number with at most two decimals;
    a negative or zero amount comes back as such (the caller refuses it).
    """
    text = unicodedata.normalize("NFKC", token).strip()
    text = text.lstrip("¥$").rstrip("元块圆").replace("−", "-")
    if text.upper().endswith("CNY"):
        text = text[:-3]
    if not _NUMBER.match(text) or len(text) > 16:
        return None
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    if len(frac) > 2:
        return None
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_monday(week: str) -> date:
    """``YYYY-Www`` → the Monday of that ISO week (ValueError if malformed)."""
    m = re.fullmatch(r"(\d{4})-W(\d{2})", week)
    if not m:
        raise ValueError(f"not an ISO week: {week!r}")
    return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)


def weeks_remaining(start: date, weeks: int, week: str) -> int:
    """Weeks left in the season that starts on ``start`` and lasts ``weeks``, counting ``week`` itself.

    The week holding ``start`` is week 1. Zero or less: ``week`` is outside the season
    (after it; a week before the start gives 0 as well).
    """
    first = start - timedelta(days=start.weekday())
    index = (week_monday(week) - first).days // 7
    if index < 0:
        return 0
    return weeks - index


def _clean_words(value: list[str]) -> list[str]:
    words = [w.strip() for w in value]
    if any(not w for w in words):
        raise ValueError("keywords must be non-empty texts")
    return words


def _hit(words: list[str], text: str) -> bool:
    low = text.casefold()
    return any(w.casefold() in low for w in words)


# ---------------------------------------------------------------------- config


class FundConfig(PlaybookConfig):
    currency: str = Field(default="CNY", description="The fund's currency (ISO code); amounts are in its minor units.")
    home_group: str | None = Field(
        default=None,
        description="The group (its id) where the weekly award and statements are posted; "
        "default: the first non-admin group that runs the fund.",
    )
    season_start: date | None = Field(
        default=None, description="First day of the season (YYYY-MM-DD); default: the day the fund first ran."
    )
    season_weeks: int = Field(default=52, ge=1, le=520, description="Length of the season in weeks.")
    award_cron: str | None = Field(
        default="0 10 * * 1",
        description="Cron (community time zone) of the weekly award; it awards the ISO week of the day "
        "before it runs (Monday 10:00: last week). null switches awards off.",
    )
    answers_percent: int = Field(
        default=70, ge=0, le=100, description="Percent of the weekly pool for the week's best answerers (qa)."
    )
    shares_percent: int = Field(
        default=30, ge=0, le=100, description="Percent of the weekly pool for the week's sharers (sessions)."
    )
    answer_ranks: list[int] = Field(
        default_factory=lambda: [50, 30, 20],
        description="Percent of the answers pool for rank 1, 2, 3…; what is not paid stays in the fund.",
    )
    share_ranks: list[int] = Field(
        default_factory=lambda: [50, 30, 20],
        description="Percent of the shares pool for rank 1, 2, 3…; what is not paid stays in the fund.",
    )
    min_answer_score: int = Field(default=1, ge=1, description="An answerer needs at least this week score.")
    exclude_roles: list[str] = Field(
        default_factory=list, description="Roles never awarded (e.g. [owner, admin] if staff should not be paid)."
    )
    require_approval: bool = Field(
        default=False,
        description="The award job only prepares the awards and tells the admins; the approve_awards command pays.",
    )
    announce: bool = Field(default=True, description="Announce the awards in the home group.")
    dues_keywords: list[str] = Field(
        default_factory=lambda: ["会费", "dues"],
        description="A payment whose memo contains one of these is a member's dues.",
    )
    admin_dues_keywords: list[str] = Field(
        default_factory=lambda: ["群管费", "admin dues", "admin fee"],
        description="A payment whose memo contains one of these goes entirely to the admin dues account.",
    )
    admin_dues_share: int = Field(
        default=0, ge=0, le=100,
        description="Percent of ordinary dues that go to the admin dues account (floor; the rest to the fund).",
    )
    donation_keywords: list[str] = Field(
        default_factory=lambda: ["基金", "捐赠", "donation"],
        description="A payment whose memo contains one of these is a gift to the fund.",
    )
    topup_keywords: list[str] = Field(
        default_factory=lambda: ["充值", "top up", "topup"],
        description="A payment whose memo contains one of these tops up the payer's own balance (for tips).",
    )
    dues_amount: int = Field(
        default=0, ge=0, description="Dues expected per member per month, minor units (0: no dues expected)."
    )
    dues_exempt_roles: list[str] = Field(
        default_factory=lambda: list(STAFF), description="Roles that owe no dues."
    )
    tip_keywords: list[str] = Field(
        default_factory=lambda: ["打赏", "tip"],
        description="A message starting with one of these, an @-mention and an amount in major units "
        "(打赏 @小王 5) tips that member from the sender's balance.",
    )
    tip_max: int = Field(default=100_000, ge=1, description="Largest single tip, minor units.")
    statement_keywords: list[str] = Field(
        default_factory=lambda: ["基金账单", "fund statement"],
        description="A message starting with one of these posts the fund statement "
        "(add 本月/month or 本季/season for a longer period; default this week).",
    )
    statement_cron: str | None = Field(
        default=None, description="Cron (community time zone) to post this week's statement; null: only on request."
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("a currency code in capitals, e.g. CNY or USD")
        return value

    @field_validator("award_cron", "statement_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("answer_ranks", "share_ranks")
    @classmethod
    def _ranks(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value) or sum(value) > 100:
            raise ValueError("rank percents must be >= 0 and add up to at most 100")
        if len(value) > 50:
            raise ValueError("at most 50 ranks")
        return value

    @field_validator(
        "dues_keywords", "admin_dues_keywords", "donation_keywords", "topup_keywords", "tip_keywords",
        "statement_keywords",
    )
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        return _clean_words(value)

    @model_validator(mode="after")
    def _pools(self) -> FundConfig:
        if self.answers_percent + self.shares_percent > 100:
            raise ValueError(
                f"answers_percent + shares_percent is {self.answers_percent + self.shares_percent}; at most 100"
            )
        return self


# --------------------------------------------------------------------- helpers














def fund_moves(ctx: Context, account: str, first: date, last: date) -> tuple[int, int]:
    """(in, out) of ``account`` over the local days ``first``..``last``, from the ledger's postings.

    Read-only, on the engine's ledger tables (like ``qunyun ledger --statement``). Postings
    of the transaction under way are not in them yet.
    """
    tz = ctx.community.tz
    begin = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    acc, tx, p = m.table(m.Account), m.table(m.LedgerTransaction), m.table(m.Posting)
    row = ctx.db.execute(
        select(
            func.coalesce(func.sum(case((p.c.amount > 0, p.c.amount), else_=0)), 0),
            func.coalesce(func.sum(case((p.c.amount < 0, -p.c.amount), else_=0)), 0),
        )
        .select_from(p.join(acc, acc.c.id == p.c.account_id).join(tx, tx.c.id == p.c.transaction_id))
        .where(acc.c.community_id == ctx.community.id, acc.c.code == account, tx.c.ts >= begin, tx.c.ts < end)
    ).one()
    return int(row[0]), int(row[1])


def runs_anywhere(ctx: Context, pid: str) -> bool:
    """Whether playbook ``pid`` runs in any group of the community (its state is community-wide,
    so the award and reconciliation read it even when it runs in another group than ours)."""
    return any(pid in g.playbooks for g in ctx.community.groups.values())


def _positive_amount(args: Mapping[str, Any], key: str = "amount", *, required: bool = True) -> int | None:
    amount = args.get(key)
    if amount is None and not required:
        return None
    if type(amount) is not int or amount <= 0:
        raise CommandError(
            Msg("{option} must be a positive whole number of minor units, got {amount!r}", option=key, amount=amount),
            hint=Msg("e.g. 1000 for 10.00"),
        )
    return amount


def _member_arg(args: Mapping[str, Any]) -> str:
    member = str(args.get("member") or "").strip().lstrip("@")
    if not member:
        raise CommandError(Msg("this command needs a member"),
                           hint=Msg("give the member's platform user id: member=u-17"))
    return member


def _currency_arg(args: Mapping[str, Any], default: str) -> str:
    currency = str(args.get("currency") or default)
    if not _CURRENCY.match(currency):
        raise CommandError(Msg("{currency!r} is not a currency code", currency=currency), hint=Msg("e.g. CNY"))
    return currency


class Fund(Playbook):
    id = "fund"
    version = "1"
    config_model = FundConfig
    handles = frozenset({"message", "payment", "member_joined", "member_left"})
    emits = frozenset({"send", "direct", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "群基金：入群费和会费入账，按赛季每周给最佳回答和分享发奖，成员互相打赏，账目公开可查。",
        "en": "Community fund: fees and dues in, weekly awards for the best answers and shares over a season, "
        "tips between members, open statements.",
    }
    commands: ClassVar[dict[str, str]] = {
        "record": "Record a payment taken outside the chat (args: member, amount, kind=dues|admin_dues|donation|topup, currency?).",
        "reconcile": "Dues expected vs paid per member for a month, and unmatched money (args: month=YYYY-MM?).",
        "match": "Move a member's unmatched payment out of suspense (args: member, kind, amount?).",
        "refund": "Send a member's unmatched payment back (args: member, amount?, currency?).",
        "payout": "Pay out a member's balance outside the chat (args: member, amount, currency?).",
        "award": "Run the weekly award now for a week (args: week=YYYY-Www?, default last week).",
        "approve_awards": "Pay the awards prepared for a week (args: week?, default the oldest waiting).",
        "statement": "The fund's in, out and balance (args: period=week|month|season, post=false).",
        "season": "Start a new season (args: start=YYYY-MM-DD, weeks=52).",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "award": {
            "zh-CN": "🏆 {week} 周奖励发放（奖池 {pool}，本季还剩 {weeks} 周）：\n{lines}\n基金结余 {balance}，感谢每一位贡献者！",
            "en": "🏆 Awards for {week} (pool {pool}, {weeks} weeks left in the season):\n{lines}\n"
            "The fund now holds {balance}. Thank you all!",
        },
        "award_answer": {
            "zh-CN": "{rank}. {name} · 答疑 {score} 分 · {amount}",
            "en": "{rank}. {name} · answers, score {score} · {amount}",
        },
        "award_share": {
            "zh-CN": "{rank}. {name} · 分享 {score} 次 · {amount}",
            "en": "{rank}. {name} · {score} shares · {amount}",
        },
        "award_pending": {
            "zh-CN": "📝 {week} 周奖励已备好，共 {total}，等待审批（approve_awards）：\n{lines}",
            "en": "📝 Awards for {week} are ready, {total} in all, waiting for approval (approve_awards):\n{lines}",
        },
        "tip_done": {
            "zh-CN": "💝 {giver} 打赏了 {name} {amount}，谢谢你的用心！",
            "en": "💝 {giver} tipped {name} {amount}. Thanks for the good work!",
        },
        "tip_usage": {
            "zh-CN": "打赏的写法：打赏 @某人 5（金额单位为元，最多两位小数）。",
            "en": "To tip: tip @someone 5 (an amount in {currency}, at most two decimals).",
        },
        "tip_self": {
            "zh-CN": "{name}，不能打赏自己哦。",
            "en": "{name}, you cannot tip yourself.",
        },
        "tip_bad_amount": {
            "zh-CN": "{name}，打赏金额要大于 0，且单笔不超过 {max}。",
            "en": "{name}, a tip must be more than zero and at most {max}.",
        },
        "tip_short": {
            "zh-CN": "{name}，余额不足：你的余额是 {balance}，打赏需要 {amount}。",
            "en": "{name}, your balance is {balance}; not enough for a {amount} tip.",
        },
        "statement": {
            "zh-CN": "📊 群基金账单（{period}）\n收入：{income}\n支出：{spent}\n当前结余：{balance}",
            "en": "📊 Fund statement ({period})\nIn: {income}\nOut: {spent}\nBalance now: {balance}",
        },
        "period_week": {"zh-CN": "本周 {week}", "en": "this week, {week}"},
        "period_month": {"zh-CN": "本月 {month}", "en": "this month, {month}"},
        "period_season": {"zh-CN": "本季 {start} 起", "en": "the season since {start}"},
        "paid_dues": {
            "zh-CN": "已收到 {name} 的会费 {amount}，谢谢支持！",
            "en": "Thank you, {name}: your dues of {amount} are received.",
        },
        "paid_donation": {
            "zh-CN": "已收到 {name} 给群基金的 {amount}，谢谢！",
            "en": "Thank you, {name}: {amount} received for the community fund.",
        },
        "paid_topup": {
            "zh-CN": "{name} 的余额已充值 {amount}，当前余额 {balance}。",
            "en": "{name}, {amount} added to your balance; it is now {balance}.",
        },
        "unmatched": {
            "zh-CN": "收到你的付款 {amount}，但没能确认用途（付款备注里写上“会费”等字样可自动入账）。管理员会尽快核对处理。",
            "en": "We received your payment of {amount} but could not tell what it is for (write e.g. \"dues\" in "
            "the memo next time). An admin will sort it out.",
        },
        "admin_unmatched": {
            "zh-CN": "💰 {name}（{member}）的一笔付款 {amount} 未能匹配（备注：{memo}），已暂存待处理账户，请用 match 或 refund 命令处理。",
            "en": "💰 A payment of {amount} from {name} ({member}) could not be matched (memo: {memo}); it is held "
            "in suspense. Use the match or refund command.",
        },
    }

    # ----------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: FundConfig = ctx.config
        self._season(ctx)
        home = home_group(ctx, self.id, cfg.home_group) == ctx.group.key
        if home and cfg.award_cron:
            ctx.schedule("award", cron=cfg.award_cron)
        else:
            ctx.cancel("award")
        if home and cfg.statement_cron:
            ctx.schedule("statement", cron=cfg.statement_cron)
        else:
            ctx.cancel("statement")

    def _season(self, ctx: Context) -> dict[str, Any]:
        """The season in force; created from the configuration when there is none yet."""
        cfg: FundConfig = ctx.config
        season = ctx.state.get("season")
        wanted = {
            "start": (cfg.season_start or ctx.today).isoformat(),
            "weeks": cfg.season_weeks,
            "source": "config",
        }
        if season is None or (
            season.get("source") == "config"
            and (
                (cfg.season_start is not None and season.get("start") != wanted["start"])
                or season.get("weeks") != cfg.season_weeks
            )
        ):
            ctx.state.put("season", wanted)
            return wanted
        return dict(season)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: FundConfig = ctx.config
        uid: str = event.actor.id
        etype = event.type
        if etype == "payment":
            self._payment(ctx, event)
        elif etype == "member_joined":
            if cfg.dues_amount:
                self._seen(ctx, uid, ctx.local_day(event.ts), rejoin=True)
        elif etype == "member_left":
            if cfg.dues_amount:
                st = ctx.state.get(f"m:{uid}")
                if st is not None and "since" in st:
                    ctx.state.put(f"m:{uid}", {**st, "left": ctx.local_day(event.ts).isoformat()})
        elif etype == "message":
            text: str = event.text or ""
            head = unicodedata.normalize("NFKC", text[:64]).strip().casefold()
            tip = next((w for w in cfg.tip_keywords if head.startswith(w.casefold())), None)
            if tip is not None and (event.mentions or head[len(tip):].lstrip().startswith("@")):
                self._tip(ctx, event)
                return
            said = next((w for w in cfg.statement_keywords if head.startswith(w.casefold())), None)
            period = _PERIODS.get(head[len(said):].strip()) if said is not None else None
            if period is not None:
                ctx.send(self._statement_text(ctx, period), reply_to=event.msg_id)
            elif cfg.dues_amount:
                self._seen(ctx, uid, ctx.local_day(event.ts))

    def _seen(self, ctx: Context, uid: str, day: date, *, rejoin: bool = False) -> None:
        """Remember since when ``uid`` is a member (for the dues they owe)."""
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if st is None or "since" not in st:
            ctx.state.put(key, {**(st or {}), "since": day.isoformat(), "left": None})
        elif rejoin and st.get("left"):
            ctx.state.put(key, {**st, "left": None})

    # -------------------------------------------------------------- payments

    def _payment(self, ctx: Context, event: Any) -> None:
        cfg: FundConfig = ctx.config
        uid: str = event.actor.id
        amount: int = event.amount
        currency: str = event.currency
        memo: str = event.memo or ""
        if amount <= 0 or self._belongs_elsewhere(ctx, uid, memo):
            return
        kind = self._kind(cfg, memo)
        if kind is None or currency != cfg.currency:
            self._unmatched(ctx, uid, amount, currency, memo, event.id)
        else:
            self._take(ctx, uid, amount, kind, source="payment")
        ctx.suppress()

    @staticmethod
    def _kind(cfg: FundConfig, memo: str) -> str | None:
        # admin dues first: "admin dues" also contains "dues"
        if _hit(cfg.admin_dues_keywords, memo):
            return "admin_dues"
        if _hit(cfg.dues_keywords, memo):
            return "dues"
        if _hit(cfg.donation_keywords, memo):
            return "donation"
        if _hit(cfg.topup_keywords, memo):
            return "topup"
        return None

    @staticmethod
    def _belongs_elsewhere(ctx: Context, uid: str, memo: str) -> bool:
        """A payment the gate (an entry fee) or a challenge (a deposit) will take."""
        if ctx.enabled("gate"):
            gate = ctx.state_of("gate").get(f"m:{uid}") or {}
            rec = (gate.get("groups") or {}).get(f"{ctx.group.platform}:{ctx.group.key}") or {}
            if rec.get("status") == "pending" and rec.get("mode") in ("paid", "bounty"):
                return True
        if ctx.enabled("challenge"):
            from qunyun.playbooks.challenge import challenge_for_memo

            if challenge_for_memo(ctx.state_of("challenge"), memo) is not None:
                return True
        return False

    def _take(self, ctx: Context, uid: str, amount: int, kind: str, *, source: str,
              origin: str | None = None, tell: bool = True) -> dict[str, Any]:
        """Book ``amount`` (the fund's currency) for ``kind`` from ``origin`` (default: outside money)."""
        cfg: FundConfig = ctx.config
        cur = cfg.currency
        origin = origin or external_account(cur)
        name = ctx.name(uid)
        if kind == "dues":
            to_admins = amount * cfg.admin_dues_share // 100
            ctx.ledger.post(
                [(origin, -amount), (dues_account(cur), to_admins), (fund_account(cur), amount - to_admins)],
                cur, "dues",
            )
            key = f"m:{uid}"
            st = dict(ctx.state.get(key) or {})
            st.setdefault("since", ctx.today.isoformat())
            st.setdefault("left", None)
            month = ctx.today.isoformat()[:7]
            st["dues"] = int(st.get("dues", 0)) + amount
            months = dict(st.get("months") or {})
            months[month] = int(months.get(month, 0)) + amount
            st["months"] = months
            ctx.state.put(key, st)
            if tell:
                ctx.direct(uid, ctx.render("paid_dues", name=name, amount=fmt_money(amount, cur, ctx.locale)))
        elif kind == "admin_dues":
            ctx.ledger.transfer(origin, dues_account(cur), amount, cur, "admin dues")
            if tell:
                ctx.direct(uid, ctx.render("paid_dues", name=name, amount=fmt_money(amount, cur, ctx.locale)))
        elif kind == "donation":
            ctx.ledger.transfer(origin, fund_account(cur), amount, cur, "donation to the fund")
            if tell:
                ctx.direct(uid, ctx.render("paid_donation", name=name, amount=fmt_money(amount, cur, ctx.locale)))
        else:
            mine = ctx.ledger.member_account(uid, cur)
            ctx.ledger.transfer(origin, mine, amount, cur, "top-up")
            if tell:
                ctx.direct(uid, ctx.render("paid_topup", name=name, amount=fmt_money(amount, cur, ctx.locale),
                                           balance=fmt_money(ctx.ledger.balance(mine), cur, ctx.locale)))
        ctx.record("payment", uid, amount=amount, currency=cur, purpose=kind, source=source)
        return {"member": uid, "amount": amount, "currency": cur, "kind": kind}

    def _unmatched(self, ctx: Context, uid: str, amount: int, currency: str, memo: str, ref: str) -> None:
        ctx.ledger.transfer(external_account(currency), suspense_account(currency), amount, currency,
                            "unmatched payment")
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        entries = list(st.get("unmatched") or [])
        entries.append({"amount": amount, "currency": currency, "memo": clip(memo, 80), "ts": ctx.now.isoformat(),
                        "ref": clip(ref, 128)})
        if len(entries) > _MAX_UNMATCHED:  # keep the record bounded: merge the oldest two
            first, second = entries[0], entries[1]
            if first["currency"] == second["currency"]:
                entries[:2] = [{**second, "amount": first["amount"] + second["amount"]}]
        st["unmatched"] = entries
        ctx.state.put(key, st)
        money = fmt_money(amount, currency, ctx.locale)
        ctx.record("unmatched", uid, amount=amount, currency=currency)
        ctx.direct(uid, ctx.render("unmatched", amount=money))
        ctx.notify_admins(ctx.render("admin_unmatched", name=ctx.name(uid), member=clip(uid, 64), amount=money,
                                     memo=clip(memo, 80) or "-"))

    # ------------------------------------------------------------------ tips

    def _tip(self, ctx: Context, event: Any) -> None:
        cfg: FundConfig = ctx.config
        uid: str = event.actor.id
        name = ctx.name(uid)
        cur = cfg.currency
        targets = list(dict.fromkeys(event.mentions or ()))
        tokens = [t for t in unicodedata.normalize("NFKC", event.text[:500]).split() if not t.startswith("@")]
        amounts = [a for a in (parse_amount(t) for t in tokens[1:]) if a is not None]
        if not targets or not amounts:
            ctx.send(ctx.render("tip_usage", currency=cur), reply_to=event.msg_id)
            return
        target = targets[0]
        if uid in targets:
            ctx.send(ctx.render("tip_self", name=name), mentions=[uid], reply_to=event.msg_id)
            return
        amount = amounts[-1]
        if amount <= 0 or amount > cfg.tip_max:
            ctx.send(ctx.render("tip_bad_amount", name=name, max=fmt_money(cfg.tip_max, cur, ctx.locale)),
                     mentions=[uid], reply_to=event.msg_id)
            return
        mine = ctx.ledger.member_account(uid, cur)
        balance = ctx.ledger.balance(mine)
        if amount > balance:
            ctx.send(ctx.render("tip_short", name=name, balance=fmt_money(balance, cur, ctx.locale),
                                amount=fmt_money(amount, cur, ctx.locale)), mentions=[uid], reply_to=event.msg_id)
            return
        ctx.ledger.transfer(mine, ctx.ledger.member_account(target, cur), amount, cur, "tip")
        ctx.record("tip", uid, to=target, amount=amount, currency=cur)
        ctx.send(ctx.render("tip_done", giver=name, name=ctx.name(target), amount=fmt_money(amount, cur, ctx.locale)),
                 mentions=[target], reply_to=event.msg_id)

    # ----------------------------------------------------------- statements

    def statement(self, ctx: Context, period: str) -> dict[str, Any]:
        """In, out and balance of the fund for ``period`` (week, month or season) up to today."""
        cfg: FundConfig = ctx.config
        today = ctx.today
        if period == "week":
            first = today - timedelta(days=today.weekday())
        elif period == "month":
            first = today.replace(day=1)
        elif period == "season":
            first = date.fromisoformat(self._season(ctx)["start"])
        else:
            raise CommandError(Msg("unknown period {period!r}", period=period), hint=Msg("one of: week, month, season"))
        income, spent = fund_moves(ctx, fund_account(cfg.currency), first, today)
        return {
            "period": period,
            "from": first.isoformat(),
            "to": today.isoformat(),
            "currency": cfg.currency,
            "in": income,
            "out": spent,
            "balance": ctx.ledger.balance(fund_account(cfg.currency)),
        }

    def _statement_text(self, ctx: Context, period: str) -> str:
        st = self.statement(ctx, period)
        cur = st["currency"]
        if period == "week":
            label = ctx.render("period_week", week=iso_week(ctx.today))
        elif period == "month":
            label = ctx.render("period_month", month=ctx.today.isoformat()[:7])
        else:
            label = ctx.render("period_season", start=st["from"])
        return ctx.render(
            "statement", period=label, income=fmt_money(st["in"], cur, ctx.locale),
            spent=fmt_money(st["out"], cur, ctx.locale), balance=fmt_money(st["balance"], cur, ctx.locale),
        )

    # ---------------------------------------------------------------- awards

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == "award":
            self._award(ctx, iso_week(ctx.today - timedelta(days=1)))
        elif job.name == "statement":
            ctx.send(self._statement_text(ctx, "week"))

    def plan(self, ctx: Context, week: str) -> dict[str, Any]:
        """What the award of ``week`` would pay now: pool, weeks left and one line per rank."""
        cfg: FundConfig = ctx.config
        season = self._season(ctx)
        left = weeks_remaining(date.fromisoformat(season["start"]), int(season["weeks"]), week)
        balance = ctx.ledger.balance(fund_account(cfg.currency))
        if left <= 0 or left > int(season["weeks"]) or balance <= 0:
            return {"week": week, "pool": 0, "weeks": max(left, 0), "lines": []}
        pool = balance // left
        lines: list[dict[str, Any]] = []
        if runs_anywhere(ctx, "qa"):
            data = ctx.state_of("qa").get(f"week:{week}") or {}
            scores = {u: s for u, s in (data.get("answerers") or {}).items()
                      if isinstance(s, int) and s >= cfg.min_answer_score}
            lines += self._ranked(ctx, "answers", scores, pool * cfg.answers_percent // 100, cfg.answer_ranks)
        if runs_anywhere(ctx, "sessions"):
            data = ctx.state_of("sessions").get(f"week:{week}") or {}
            counts = {u: n for u, n in (data.get("shares") or {}).items() if isinstance(n, int) and n > 0}
            lines += self._ranked(ctx, "shares", counts, pool * cfg.shares_percent // 100, cfg.share_ranks)
        return {"week": week, "pool": pool, "weeks": left, "lines": [ln for ln in lines if ln["amount"] > 0]}

    @staticmethod
    def _ranked(ctx: Context, kind: str, scores: Mapping[str, int], pot: int, ranks: list[int]) -> list[dict[str, Any]]:
        cfg: FundConfig = ctx.config
        eligible = [(u, s) for u, s in scores.items() if ctx.role(u) not in cfg.exclude_roles]
        eligible.sort(key=lambda us: (-us[1], us[0]))  # ties: score, then user id
        return [
            {"uid": u, "kind": kind, "rank": i + 1, "score": s, "amount": pot * pct // 100}
            for i, ((u, s), pct) in enumerate(zip(eligible, ranks, strict=False))
        ]

    def _award(self, ctx: Context, week: str) -> dict[str, Any]:
        cfg: FundConfig = ctx.config
        key = f"award:{week}"
        done = ctx.state.get(key)
        if done is not None:
            return {**done, "week": week, "already": True}
        plan = self.plan(ctx, week)
        record = {"pool": plan["pool"], "paid": {}, "ts": ctx.now.isoformat(), "weeks": plan["weeks"],
                  "lines": plan["lines"], "status": "empty" if not plan["lines"] else "pending"}
        if not plan["lines"]:
            ctx.state.put(key, record)
            return {**record, "week": week}
        if cfg.require_approval:
            ctx.state.put(key, record)
            total = sum(ln["amount"] for ln in plan["lines"])
            ctx.notify_admins(ctx.render("award_pending", week=week, total=fmt_money(total, cfg.currency, ctx.locale),
                                         lines=self._lines(ctx, plan["lines"])))
            return {**record, "week": week}
        return self._pay(ctx, week, record)

    def _pay(self, ctx: Context, week: str, record: dict[str, Any]) -> dict[str, Any]:
        cfg: FundConfig = ctx.config
        cur = cfg.currency
        fund = fund_account(cur)
        lines = [ln for ln in record["lines"] if ln.get("uid")]  # an erased winner is not paid
        paid: dict[str, int] = {}
        for ln in lines:
            paid[ln["uid"]] = paid.get(ln["uid"], 0) + int(ln["amount"])
        total = sum(paid.values())
        balance = ctx.ledger.balance(fund)
        if total > balance:
            raise CommandError(
                Msg("the fund holds {balance}, the awards of {week} need {total}", balance=fmt_money(balance, cur, "en"),
                    week=week, total=fmt_money(total, cur, "en")),
                hint=Msg("record the money first, or run `award` again after discarding the plan"),
            )
        if total:
            ctx.ledger.post([(fund, -total), *((ctx.ledger.member_account(u, cur), a) for u, a in sorted(paid.items()))],
                            cur, f"weekly award {week}")
        for ln in lines:
            ctx.record("award", ln["uid"], week=week, pool_of=ln["kind"], rank=ln["rank"], amount=ln["amount"],
                       currency=cur)
        record = {**record, "paid": paid, "status": "paid", "ts": ctx.now.isoformat()}
        ctx.state.put(f"award:{week}", record)
        if cfg.announce and lines:
            text = ctx.render("award", week=week, pool=fmt_money(record["pool"], cur, ctx.locale),
                              weeks=record.get("weeks", 0), lines=self._lines(ctx, lines),
                              balance=fmt_money(ctx.ledger.balance(fund), cur, ctx.locale))
            ctx.send(text, mentions=sorted(paid), group=home_group(ctx, self.id, cfg.home_group))
        return {**record, "week": week}

    def _lines(self, ctx: Context, lines: list[dict[str, Any]]) -> str:
        cfg: FundConfig = ctx.config
        out = []
        for ln in lines:
            template = "award_answer" if ln["kind"] == "answers" else "award_share"
            name = ctx.name(ln["uid"]) if ln.get("uid") else "-"
            out.append(ctx.render(template, rank=ln["rank"], name=name, score=ln["score"],
                                  amount=fmt_money(ln["amount"], cfg.currency, ctx.locale)))
        return "\n".join(out)

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: FundConfig = ctx.config
        args = command.args
        name = command.name
        if name == "record":
            member = _member_arg(args)
            amount = _positive_amount(args)
            assert amount is not None
            kind = str(args.get("kind") or "dues")
            if kind not in KINDS:
                raise CommandError(Msg("unknown kind {kind!r}", kind=kind), hint=Msg("one of: {kinds}", kinds=", ".join(KINDS)))
            currency = _currency_arg(args, cfg.currency)
            if currency != cfg.currency:
                raise CommandError(Msg("the fund keeps {kept}, not {currency}", kept=cfg.currency, currency=currency),
                                   hint=Msg("record it in the fund's currency, or refund it"))
            return self._take(ctx, member, amount, kind, source="admin", tell=False)
        if name == "reconcile":
            return self._reconcile(ctx, str(args.get("month") or ctx.today.isoformat()[:7]))
        if name == "match":
            return self._match(ctx, _member_arg(args), args)
        if name == "refund":
            return self._refund(ctx, _member_arg(args), args)
        if name == "payout":
            member = _member_arg(args)
            amount = _positive_amount(args)
            assert amount is not None
            currency = _currency_arg(args, cfg.currency)
            mine = ctx.ledger.member_account(member, currency)
            balance = ctx.ledger.balance(mine)
            if amount > balance:
                raise CommandError(Msg("{member} has {balance}, less than {amount}", member=member,
                                       balance=fmt_money(balance, currency, "en"),
                                       amount=fmt_money(amount, currency, "en")),
                                   hint=Msg("pay out at most the balance"))
            ctx.ledger.transfer(mine, payouts_account(currency), amount, currency, "payout")
            ctx.record("payout", member, amount=amount, currency=currency, by=clip(command.actor, 64))
            return {"member": member, "paid_out": amount, "currency": currency, "balance": balance - amount}
        if name == "award":
            week = str(args.get("week") or iso_week(ctx.today - timedelta(days=7)))
            self._check_week(week)
            return self._award(ctx, week)
        if name == "approve_awards":
            return self._approve(ctx, args.get("week"))
        if name == "statement":
            period = str(args.get("period") or "week")
            result = self.statement(ctx, period)
            if args.get("post"):
                ctx.send(self._statement_text(ctx, period), group=home_group(ctx, self.id, cfg.home_group))
            return result
        if name == "season":
            try:
                start = date.fromisoformat(str(args.get("start") or ctx.today.isoformat()))
            except ValueError:
                raise CommandError(Msg("start {start!r} is not a date", start=args.get("start")),
                                   hint=Msg("YYYY-MM-DD")) from None
            weeks = args.get("weeks", cfg.season_weeks)
            if type(weeks) is not int or not 1 <= weeks <= 520:
                raise CommandError(Msg("weeks must be a whole number from 1 to 520, got {weeks!r}", weeks=weeks))
            season = {"start": start.isoformat(), "weeks": weeks, "source": "command"}
            ctx.state.put("season", season)
            return season
        raise CommandError(Msg("fund has no command {command!r}", command=name),
                           hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))))

    @staticmethod
    def _check_week(week: str) -> None:
        try:
            week_monday(week)
        except ValueError:
            raise CommandError(Msg("{week!r} is not an ISO week", week=week), hint=Msg("e.g. 2026-W45")) from None

    def _approve(self, ctx: Context, week: Any) -> dict[str, Any]:
        if week is None:
            waiting = sorted(k[6:] for k, v in ctx.state.scan("award:") if v.get("status") == "pending")
            if not waiting:
                raise CommandError(Msg("no awards are waiting for approval"))
            week = waiting[0]
        week = str(week)
        self._check_week(week)
        record = ctx.state.get(f"award:{week}")
        if record is None or record.get("status") != "pending":
            raise CommandError(Msg("no awards of {week} are waiting for approval", week=week),
                               hint=Msg("`award` prepares them when require_approval is on"))
        return self._pay(ctx, week, dict(record))

    def _reconcile(self, ctx: Context, month: str) -> dict[str, Any]:
        cfg: FundConfig = ctx.config
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise CommandError(Msg("{month!r} is not a month", month=month), hint=Msg("YYYY-MM, e.g. 2026-11"))
        rows = []
        unmatched = []
        for key, st in ctx.state.scan("m:"):
            uid = key[2:]
            for entry in st.get("unmatched") or ():
                unmatched.append({"member": uid, "name": ctx.name(uid), **entry})
            if "since" not in st and not st.get("dues"):
                continue
            since = str(st.get("since") or month)[:7]
            left = st.get("left")
            last = min(month, str(left)[:7]) if left else month
            months = _months_between(since, last)
            exempt = ctx.role(uid) in cfg.dues_exempt_roles
            expected = 0 if exempt else cfg.dues_amount * months
            paid = sum(int(v) for k, v in (st.get("months") or {}).items() if k <= month)
            rows.append({
                "member": uid, "name": ctx.name(uid), "since": st.get("since"), "left": left, "exempt": exempt,
                "expected": expected, "paid": paid, "owes": max(0, expected - paid), "ahead": max(0, paid - expected),
                "this_month": int((st.get("months") or {}).get(month, 0)),
            })
        if runs_anywhere(ctx, "challenge"):
            for key, st in ctx.state_of("challenge").scan("m:"):
                for entry in (st or {}).get("unmatched") or ():
                    unmatched.append({"member": key[2:], "name": ctx.name(key[2:]), "via": "challenge", **entry})
        cur = cfg.currency
        return {
            "month": month,
            "currency": cur,
            "dues_amount": cfg.dues_amount,
            "members": rows,
            "paid": [r["member"] for r in rows if r["expected"] and not r["owes"]],
            "owing": [r["member"] for r in rows if r["owes"]],
            "totals": {
                "expected": sum(r["expected"] for r in rows),
                "paid": sum(r["paid"] for r in rows),
                "owed": sum(r["owes"] for r in rows),
            },
            "unmatched": unmatched,
            "suspense": ctx.ledger.balance(suspense_account(cur)),
            "fund": ctx.ledger.balance(fund_account(cur)),
            "dues_account": ctx.ledger.balance(dues_account(cur)),
        }

    def _take_unmatched(self, ctx: Context, member: str, currency: str, amount: int | None) -> int:
        """Remove up to ``amount`` (default: all) of ``member``'s unmatched money in ``currency`` from state."""
        key = f"m:{member}"
        st = dict(ctx.state.get(key) or {})
        entries = list(st.get("unmatched") or [])
        held = sum(int(e["amount"]) for e in entries if e.get("currency") == currency)
        if held <= 0:
            raise CommandError(Msg("no unmatched {currency} payment of {member} is held", currency=currency,
                                   member=member),
                               hint=Msg("`reconcile` lists the unmatched payments"))
        want = held if amount is None else amount
        if not 0 < want <= held:
            raise CommandError(Msg("amount must be between 1 and {held} (held for {member})", held=held, member=member))
        left = want
        kept = []
        for e in entries:
            if left and e.get("currency") == currency:
                use = min(left, int(e["amount"]))
                left -= use
                if int(e["amount"]) - use:
                    kept.append({**e, "amount": int(e["amount"]) - use})
            else:
                kept.append(e)
        st["unmatched"] = kept
        if not kept:
            st.pop("unmatched")
        if st:
            ctx.state.put(key, st)
        else:
            ctx.state.delete(key)
        return want

    def _match(self, ctx: Context, member: str, args: Mapping[str, Any]) -> dict[str, Any]:
        cfg: FundConfig = ctx.config
        kind = str(args.get("kind") or "")
        if kind not in KINDS:
            raise CommandError(Msg("unknown kind {kind!r}", kind=kind), hint=Msg("one of: {kinds}", kinds=", ".join(KINDS)))
        amount = self._take_unmatched(ctx, member, cfg.currency, _positive_amount(args, required=False))
        return {**self._take(ctx, member, amount, kind, source="matched",
                             origin=suspense_account(cfg.currency), tell=False), "matched": True}

    def _refund(self, ctx: Context, member: str, args: Mapping[str, Any]) -> dict[str, Any]:
        cfg: FundConfig = ctx.config
        currency = _currency_arg(args, cfg.currency)
        amount = self._take_unmatched(ctx, member, currency, _positive_amount(args, required=False))
        ctx.ledger.transfer(suspense_account(currency), external_account(currency), amount, currency,
                            "unmatched payment refunded")
        ctx.record("refund", member, amount=amount, currency=currency)
        return {"member": member, "refunded": amount, "currency": currency}

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, record in ctx.state.scan("award:"):
            mine = [ln for ln in record.get("lines") or () if ln.get("uid") == member]
            if mine or member in (record.get("paid") or {}):
                found[key] = {"lines": mine, "paid": (record.get("paid") or {}).get(member, 0)}
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Their dues and unmatched payments go; awards keep their amounts without the person.

        Their ledger accounts stay (under the anonymised member) so the ledger balances.
        """
        # the default keys only (the export above adds shared keys that must stay)
        for key in Playbook.export_member(self, ctx, member):
            ctx.state.delete(key)
        for key, record in list(ctx.state.scan("award:")):
            paid = dict(record.get("paid") or {})
            lines = record.get("lines") or []
            if member not in paid and not any(ln.get("uid") == member for ln in lines):
                continue
            amount = paid.pop(member, 0)
            if amount:
                paid[ERASED] = int(paid.get(ERASED, 0)) + amount
            new_lines = [{**ln, "uid": None} if ln.get("uid") == member else ln for ln in lines]
            ctx.state.put(key, {**record, "paid": paid, "lines": new_lines})


def _months_between(first: str, last: str) -> int:
    """Months from ``first`` to ``last`` (``YYYY-MM``), both included; 0 if ``last`` is earlier."""
    y1, m1 = int(first[:4]), int(first[5:7])
    y2, m2 = int(last[:4]), int(last[5:7])
    return max(0, (y2 - y1) * 12 + (m2 - m1) + 1)

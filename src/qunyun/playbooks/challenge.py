"""challenge (押金挑战): deposit challenges — early rise, running, reading.

An admin creates a challenge (command ``create``: name, first day, number of
days, deposit in minor units, daily deadline ``HH:MM`` in the community's
time zone, check-in keyword — by default ``#<name>``, so ``打卡 #早起``
counts). Members join by paying the deposit: a ``payment`` event whose memo
names the challenge (its name or keyword), or the ``record`` command for
money an admin took outside the chat. The deposit moves from
``external:payments:<CUR>`` into the pot ``challenge:<cid>:pot:<CUR>``.
Joining closes at the first day's deadline.

Each day a participant who sends a message with the keyword on that local
day, before the deadline, succeeds. At the deadline the day is settled, in
one balanced ledger transaction:

- the day's stake is ``deposit // days``, and the first ``deposit % days``
  days carry one more fen, so the stakes add up to the deposit exactly;
- each success gets the stake back (pot → their member account);
- the stakes of the failures (and anything carried over) are split equally
  among the day's successes; the fen that do not divide go one each to the
  successes in the order of ``sha256("<cid>:<day>:<uid>")`` (a fair,
  reproducible lottery that changes every day);
- if nobody succeeded, the forfeits roll over to the next day
  (``unclaimed: carry``, the default) or go to the community fund
  (``unclaimed: fund``); whatever is still carried after the last day goes to
  the fund. After the last day the pot is exactly zero.

A check-in after the deadline, on another day, or a second one the same day
counts nothing more. A participant who leaves the group or withdraws fails
every day not yet settled (their stakes go to the others); an erased
participant is treated the same way and kept only as an anonymous entry.
Payments that name a challenge but cannot join it (wrong amount or
currency, already in, joining closed) go to ``community:suspense:<CUR>``:
nothing is lost, the member and the admins are told, ``refund`` returns it.

State: ``c:<cid>`` → the challenge (participants by user id); ``active`` →
``{cid: [words]}`` for the challenges still running (a cheap look-up for
every message); ``seq`` → the last challenge number; ``m:<uid>`` →
``{"unmatched": [...]}`` (payments held in suspense).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig, ReadOnlyState
from qunyun.playbooks.money import (
    external_account,
    fmt_money,
    fund_account,
    home_group,
    suspense_account,
)

_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_UNMATCHED = 50
_NAMES_SHOWN = 20
#: How an erased participant is kept in a challenge: ``(erased 1)``, ``(erased 2)``…
ERASED_PREFIX = "(erased "


def stake(deposit: int, days: int, index: int) -> int:
    """The part of ``deposit`` at stake on day ``index`` (0-based): the first
    ``deposit % days`` days carry one more minor unit, so the stakes sum to the deposit."""
    return deposit // days + (1 if index < deposit % days else 0)


def lottery(cid: str, day: str, uids: list[str]) -> list[str]:
    """``uids`` in the day's deterministic order: by sha256 of ``<cid>:<day>:<uid>``, then uid."""
    return sorted(uids, key=lambda u: (hashlib.sha256(f"{cid}:{day}:{u}".encode()).hexdigest(), u))


def split(amount: int, uids: list[str], cid: str, day: str) -> dict[str, int]:
    """``amount`` split equally among ``uids``; the remainder one unit each in lottery order."""
    if not uids:
        return {}
    base, rest = divmod(amount, len(uids))
    order = lottery(cid, day, uids)
    return {u: base + (1 if i < rest else 0) for i, u in enumerate(order)}


def challenge_for_memo(state: ReadOnlyState | Any, memo: str) -> str | None:
    """The challenge a payment memo names (its name or keyword), the longest match winning, or None."""
    active = state.get("active") or {}
    low = unicodedata.normalize("NFKC", memo or "").casefold()
    if not low:
        return None
    best: tuple[int, str] | None = None
    for cid, words in sorted(active.items()):
        for word in words:
            w = word.casefold()
            if w and w in low and (best is None or len(w) > best[0]):
                best = (len(w), cid)
    return None if best is None else best[1]


class ChallengeConfig(PlaybookConfig):
    currency: str = Field(default="CNY", description="Currency of new challenges' deposits (ISO code).")
    home_group: str | None = Field(
        default=None,
        description="Group (its id) where challenges are announced unless `create` names one; "
        "default: the first non-admin group that runs the playbook.",
    )
    unclaimed: Literal["carry", "fund"] = Field(
        default="carry",
        description="On a day nobody succeeds, the forfeits roll to the next day (carry) or go to the "
        "community fund (fund). After the last day anything carried goes to the fund.",
    )
    confirm_checkins: bool = Field(default=True, description="Confirm each counted check-in in the group.")
    announce_daily: bool = Field(default=True, description="Post each day's result at the deadline.")
    max_days: int = Field(default=100, ge=1, le=366, description="Longest challenge `create` accepts, in days.")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("a currency code in capitals, e.g. CNY or USD")
        return value


def pot_account(cid: str, currency: str) -> str:
    return f"challenge:{cid}:pot:{currency}"


class Challenge(Playbook):
    id = "challenge"
    version = "1"
    config_model = ChallengeConfig
    handles = frozenset({"message", "payment", "member_left"})
    emits = frozenset({"send", "direct", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "押金挑战：交押金报名，每天按时打卡退回当天押金，没完成的押金由当天完成的人平分。",
        "en": "Deposit challenges: pay a deposit to join; each day you check in on time you get that day's "
        "share back, and the shares of those who missed are split among the day's successes.",
    }
    commands: ClassVar[dict[str, str]] = {
        "create": "Create a challenge (args: challenge=<name>, start=YYYY-MM-DD, days, deposit (minor units), deadline=HH:MM, "
        "keyword?, currency?, announce_group?).",
        "record": "Record a deposit paid outside the chat (args: member, challenge, amount?, currency?).",
        "withdraw": "Take a participant out: the days not yet settled count as failed (args: member, challenge).",
        "cancel": "Cancel a challenge: each participant gets back what is still held for them (args: challenge).",
        "refund": "Send back a payment held in suspense (args: member, amount?, currency?).",
        "list": "The challenges, with participants and pot.",
        "status": "One challenge in detail (args: challenge).",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "created": {
            "zh-CN": "🔥 新挑战「{name}」：{start} 起共 {days} 天，押金 {deposit}。每天 {deadline} 前发送含“{keyword}”的消息打卡，"
            "按时完成当天退还押金，未完成的押金由当天完成的人平分。付押金时备注“{name}”即可报名，{close} 截止报名。",
            "en": "🔥 New challenge \"{name}\": {days} days from {start}, deposit {deposit}. Each day, post a message "
            "with \"{keyword}\" before {deadline}: on time, you get that day's share back; the shares of those who "
            "miss are split among those who made it. Pay the deposit with \"{name}\" in the memo to join; joining "
            "closes {close}.",
        },
        "joined": {
            "zh-CN": "✅ 已报名挑战「{name}」，押金 {deposit} 已存入奖池。每天 {deadline} 前打卡“{keyword}”，加油！",
            "en": "✅ You are in the \"{name}\" challenge; your deposit of {deposit} is in the pot. Check in with "
            "\"{keyword}\" before {deadline} every day. Good luck!",
        },
        "checked": {
            "zh-CN": "✅ {name} 「{challenge}」第 {day}/{days} 天打卡成功！",
            "en": "✅ {name}, day {day}/{days} of \"{challenge}\" counted!",
        },
        "already": {
            "zh-CN": "{name}，「{challenge}」今天已经打过卡了，明天见～",
            "en": "{name}, today's check-in for \"{challenge}\" is already counted. See you tomorrow!",
        },
        "too_late": {
            "zh-CN": "{name}，「{challenge}」今天的打卡时间（{deadline} 前）已过，这次不计入。",
            "en": "{name}, today's check-in for \"{challenge}\" closed at {deadline}; this one does not count.",
        },
        "day": {
            "zh-CN": "📣 「{name}」第 {day}/{days} 天：{ok} 人完成，{fail} 人未完成。完成的每人退还 {stake}{extra}\n{names}",
            "en": "📣 \"{name}\" day {day}/{days}: {ok} made it, {fail} did not. Each who made it gets {stake} back{extra}\n{names}",
        },
        "day_share": {
            "zh-CN": "，并平分未完成者的 {forfeit}（每人约 {each}）。",
            "en": ", and they share the {forfeit} forfeited (about {each} each).",
        },
        "day_none_carry": {
            "zh-CN": "📣 「{name}」第 {day}/{days} 天：没有人按时完成，{forfeit} 顺延到下一天。",
            "en": "📣 \"{name}\" day {day}/{days}: nobody made it on time; {forfeit} rolls over to the next day.",
        },
        "day_none_fund": {
            "zh-CN": "📣 「{name}」第 {day}/{days} 天：没有人按时完成，{forfeit} 转入群基金。",
            "en": "📣 \"{name}\" day {day}/{days}: nobody made it on time; {forfeit} goes to the community fund.",
        },
        "finished": {
            "zh-CN": "🏁 挑战「{name}」结束！{count} 人参加，结果：\n{lines}",
            "en": "🏁 The \"{name}\" challenge is over! {count} took part:\n{lines}",
        },
        "finished_line": {
            "zh-CN": "{name}：完成 {ok}/{days} 天，拿回 {got}",
            "en": "{name}: {ok}/{days} days, {got} back",
        },
        "cancelled": {
            "zh-CN": "挑战「{name}」已取消，尚未结算的押金已退回各位的余额。",
            "en": "The \"{name}\" challenge is cancelled; what was still held is back in each participant's balance.",
        },
        "held": {
            "zh-CN": "收到你的付款 {amount}，但无法用于挑战「{name}」：{why}。这笔钱已登记，管理员会处理退款。",
            "en": "We received your payment of {amount} but cannot use it for \"{name}\": {why}. It is on record and "
            "an admin will refund it.",
        },
        "admin_held": {
            "zh-CN": "💰 {member_name}（{member}）为挑战「{name}」付款 {amount}，{why}，已暂存待处理账户。用 challenge refund 命令退款。",
            "en": "💰 {member_name} ({member}) paid {amount} for \"{name}\" but {why}; it is held in suspense. Refund it "
            "with the challenge refund command.",
        },
        "why_amount": {"zh-CN": "押金应为 {deposit}", "en": "the deposit is {deposit}"},
        "why_currency": {"zh-CN": "押金应以 {currency} 支付", "en": "the deposit is paid in {currency}"},
        "why_joined": {"zh-CN": "你已经报名了", "en": "you have already joined"},
        "why_closed": {"zh-CN": "报名已截止", "en": "joining has closed"},
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        active = ctx.state.get("active") or {}
        if not active:
            return
        uid: str = event.actor.id
        if event.type == "payment":
            if event.amount > 0:
                cid = challenge_for_memo(ctx.state, event.memo)
                if cid is not None:
                    self._paid(ctx, uid, cid, event.amount, event.currency, event.memo, event.id)
                    ctx.suppress()
        elif event.type == "member_left":
            for cid in sorted(active):
                ch = ctx.state.get(f"c:{cid}")
                if ch and ch["group"] == ctx.group.key and uid in ch["participants"]:
                    self._withdraw(ctx, ch, uid)
        elif event.type == "message" and event.text:
            low = unicodedata.normalize("NFKC", event.text[:2000]).casefold()
            for cid in sorted(active):
                words = active[cid]
                if words and words[-1].casefold() in low:  # the last word is the check-in keyword
                    self._checkin(ctx, cid, uid, event)

    def _checkin(self, ctx: Context, cid: str, uid: str, event: Any) -> None:
        ch = ctx.state.get(f"c:{cid}")
        if not ch or ch["status"] not in ("open", "running"):
            return
        who = ch["participants"].get(uid)
        if who is None or who.get("left"):
            return
        start = date.fromisoformat(ch["start"])
        day = ctx.local_day(event.ts)
        index = (day - start).days
        if not 0 <= index < ch["days"]:
            return
        name = ctx.name(uid)
        deadline = self._deadline(ctx, ch, index)
        checked = list(who.get("in") or [])
        reply = None
        if index < ch["settled"] or event.ts >= deadline:
            if who.get("told") != f"late:{index}":
                who["told"] = f"late:{index}"
                reply = ctx.render("too_late", name=name, challenge=ch["name"], deadline=ch["deadline"])
        elif index in checked:
            if who.get("told") != f"again:{index}":
                who["told"] = f"again:{index}"
                reply = ctx.render("already", name=name, challenge=ch["name"])
        else:
            who["in"] = sorted({*checked, index})
            ctx.record("checkin", uid, challenge=cid, day=day.isoformat())
            if ctx.config.confirm_checkins:
                reply = ctx.render("checked", name=name, challenge=ch["name"], day=index + 1, days=ch["days"])
        ch["participants"][uid] = who
        ctx.state.put(f"c:{cid}", ch)
        if reply is not None:
            ctx.send(reply, mentions=[uid], reply_to=event.msg_id)

    # -------------------------------------------------------------- joining

    def _paid(self, ctx: Context, uid: str, cid: str, amount: int, currency: str, memo: str, ref: str) -> None:
        ch = ctx.state.get(f"c:{cid}")
        if not ch:
            return
        why = self._cannot_join(ctx, ch, uid, amount, currency)
        if why is None:
            self._join(ctx, ch, uid, source="payment")
            return
        ctx.ledger.transfer(external_account(currency), suspense_account(currency), amount, currency,
                            f"challenge {cid}: payment held")
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        entries = list(st.get("unmatched") or [])
        entries.append({"amount": amount, "currency": currency, "memo": clip(memo, 80), "ts": ctx.now.isoformat(),
                        "ref": clip(ref, 128), "challenge": cid})
        if len(entries) > _MAX_UNMATCHED and entries[0]["currency"] == entries[1]["currency"]:
            entries[:2] = [{**entries[1], "amount": entries[0]["amount"] + entries[1]["amount"]}]
        st["unmatched"] = entries
        ctx.state.put(key, st)
        money = fmt_money(amount, currency, ctx.locale)
        ctx.record("held", uid, challenge=cid, amount=amount, currency=currency)
        ctx.direct(uid, ctx.render("held", amount=money, name=ch["name"], why=why))
        ctx.notify_admins(ctx.render("admin_held", member_name=ctx.name(uid), member=clip(uid, 64), name=ch["name"],
                                     amount=money, why=why))

    def _cannot_join(self, ctx: Context, ch: dict[str, Any], uid: str, amount: int, currency: str) -> str | None:
        if currency != ch["currency"]:
            return ctx.render("why_currency", currency=ch["currency"])
        if amount != ch["deposit"]:
            return ctx.render("why_amount", deposit=fmt_money(ch["deposit"], ch["currency"], ctx.locale))
        if uid in ch["participants"]:
            return ctx.render("why_joined")
        if ch["status"] != "open" or ch["settled"] > 0 or ctx.now >= self._deadline(ctx, ch, 0):
            return ctx.render("why_closed")
        return None

    def _join(self, ctx: Context, ch: dict[str, Any], uid: str, *, source: str) -> dict[str, Any]:
        cid = ch["id"]
        cur = ch["currency"]
        ctx.ledger.transfer(external_account(cur), pot_account(cid, cur), ch["deposit"], cur,
                            f"challenge {cid}: deposit")
        ch["participants"][uid] = {"paid": ch["deposit"], "joined": ctx.now.isoformat(), "ok": 0, "fail": 0,
                                   "back": 0, "won": 0, "left": False, "in": []}
        ctx.state.put(f"c:{cid}", ch)
        ctx.record("joined", uid, challenge=cid, amount=ch["deposit"], currency=cur, source=source)
        ctx.direct(uid, ctx.render("joined", name=ch["name"], deposit=fmt_money(ch["deposit"], cur, ctx.locale),
                                   deadline=ch["deadline"], keyword=ch["keyword"]))
        return {"challenge": cid, "member": uid, "deposit": ch["deposit"], "currency": cur,
                "participants": len(ch["participants"])}

    def _withdraw(self, ctx: Context, ch: dict[str, Any], uid: str, *, key: str | None = None) -> None:
        who = ch["participants"].get(uid)
        if who is None or who.get("left"):
            return
        who["left"] = True
        who["in"] = []
        if key is not None:  # erasure: keep the numbers under an anonymous key
            ch["participants"].pop(uid)
            ch["participants"][key] = {k: v for k, v in who.items() if k != "joined"}
        else:
            ch["participants"][uid] = who
            ctx.record("withdrawn", uid, challenge=ch["id"])
        ctx.state.put(f"c:{ch['id']}", ch)

    # ------------------------------------------------------------ settlement

    def _deadline(self, ctx: Context, ch: Mapping[str, Any], index: int) -> datetime:
        day = date.fromisoformat(ch["start"]) + timedelta(days=index)
        hh, mm = (int(x) for x in ch["deadline"].split(":"))
        return datetime.combine(day, time(hh, mm), tzinfo=ctx.community.tz)

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "settle":
            return
        cid = str(job.payload.get("cid") or "")
        ch = ctx.state.get(f"c:{cid}")
        if not ch or ch["status"] not in ("open", "running"):
            return
        while ch["settled"] < ch["days"] and ctx.now >= self._deadline(ctx, ch, ch["settled"]):
            self._settle_day(ctx, ch)
        if ch["settled"] >= ch["days"]:
            self._finish(ctx, ch)
        else:
            ctx.schedule("settle", at=self._deadline(ctx, ch, ch["settled"]), payload={"cid": cid},
                         key=f"settle:{cid}")
        ctx.state.put(f"c:{cid}", ch)

    def _settle_day(self, ctx: Context, ch: dict[str, Any]) -> None:
        cfg: ChallengeConfig = ctx.config
        cid = ch["id"]
        cur = ch["currency"]
        index = ch["settled"]
        day = (date.fromisoformat(ch["start"]) + timedelta(days=index)).isoformat()
        last = index == ch["days"] - 1
        amount = stake(ch["deposit"], ch["days"], index)
        people = ch["participants"]
        ok = sorted(u for u, p in people.items() if not p.get("left") and index in (p.get("in") or ()))
        failed = sorted(u for u in people if u not in ok)
        forfeit = amount * len(failed) + int(ch.get("carry", 0))
        pot = pot_account(cid, cur)
        gets: dict[str, int] = dict.fromkeys(ok, amount)
        shares = split(forfeit, ok, cid, day)
        for u, s in shares.items():
            gets[u] += s
            people[u]["won"] = int(people[u].get("won", 0)) + s
        to_fund = 0
        if ok:
            ch["carry"] = 0
        elif cfg.unclaimed == "fund" or last:
            to_fund, ch["carry"] = forfeit, 0
        else:
            ch["carry"] = forfeit
        legs = [(ctx.ledger.member_account(u, cur), g) for u, g in sorted(gets.items()) if g]
        if to_fund:
            legs.append((fund_account(cur), to_fund))
        out = sum(a for _, a in legs)
        if out:
            if out > ctx.ledger.balance(pot):  # cannot happen unless the state was altered by hand
                raise RuntimeError(f"challenge {cid}: the pot holds less than day {index + 1} pays out")
            ctx.ledger.post([(pot, -out), *legs], cur, f"challenge {cid}: day {index + 1}")
        for u in ok:
            people[u]["ok"] = int(people[u].get("ok", 0)) + 1
            people[u]["back"] = int(people[u].get("back", 0)) + amount
        for u in failed:
            people[u]["fail"] = int(people[u].get("fail", 0)) + 1
        for p in people.values():
            p["in"] = [i for i in p.get("in") or () if i > index]
        ch["settled"] = index + 1
        ch["status"] = "running"
        ch.setdefault("history", []).append(
            {"day": day, "stake": amount, "ok": len(ok), "fail": len(failed), "forfeit": forfeit,
             "to": "successes" if ok else ("fund" if to_fund else ("carry" if forfeit else "none"))}
        )
        ctx.record("settled", None, challenge=cid, day=day, ok=len(ok), fail=len(failed), stake=amount,
                   forfeit=forfeit, to_fund=to_fund)
        if not people or not cfg.announce_daily:
            return

        def money(n: int) -> str:
            return fmt_money(n, cur, ctx.locale)

        values = {"name": ch["name"], "day": index + 1, "days": ch["days"], "forfeit": money(forfeit)}
        if ok:
            if forfeit:
                extra = ctx.render("day_share", forfeit=money(forfeit), each=money(forfeit // len(ok)))
            else:
                extra = "。" if ctx.locale == "zh-CN" else "."
            sep = "、" if ctx.locale == "zh-CN" else ", "
            names = sep.join(ctx.name(u) for u in ok[:_NAMES_SHOWN])
            text = ctx.render("day", ok=len(ok), fail=len(failed), stake=money(amount), extra=extra, names=names,
                              **{k: v for k, v in values.items() if k != "forfeit"})
        else:
            text = ctx.render("day_none_fund" if to_fund else "day_none_carry", **values)
        ctx.send(text.strip(), group=ch["group"])

    def _finish(self, ctx: Context, ch: dict[str, Any]) -> None:
        cid = ch["id"]
        cur = ch["currency"]
        carry = int(ch.get("carry", 0))
        if carry:  # only when the last settlement could not place it (it sends it to the fund itself)
            ctx.ledger.transfer(pot_account(cid, cur), fund_account(cur), carry, cur, f"challenge {cid}: leftover")
            ch["carry"] = 0
        ch["status"] = "done"
        self._deactivate(ctx, cid)
        ctx.record("finished", None, challenge=cid, participants=len(ch["participants"]))
        people = ch["participants"]
        if not people:
            return
        rows = sorted(((p.get("ok", 0), u) for u, p in people.items() if not u.startswith(ERASED_PREFIX)), key=lambda r: (-r[0], r[1]))
        lines = "\n".join(
            ctx.render("finished_line", name=ctx.name(u), ok=n, days=ch["days"],
                       got=fmt_money(int(people[u].get("back", 0)) + int(people[u].get("won", 0)), cur, ctx.locale))
            for n, u in rows[:_NAMES_SHOWN]
        )
        ctx.send(ctx.render("finished", name=ch["name"], count=len(people), lines=lines), group=ch["group"])

    def _deactivate(self, ctx: Context, cid: str) -> None:
        active = dict(ctx.state.get("active") or {})
        active.pop(cid, None)
        ctx.state.put("active", active)

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        name = command.name
        if name == "create":
            return self._create(ctx, args, command.actor)
        if name == "list":
            return {"challenges": [self._summary(ctx, ch) for _, ch in ctx.state.scan("c:")]}
        if name == "refund":
            return self._refund(ctx, args)
        if name not in self.commands:
            raise CommandError(Msg("challenge has no command {command!r}", command=name),
                               hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))))
        ch = self._find(ctx, args.get("challenge"))
        if name == "status":
            return {**self._summary(ctx, ch), "participants": {
                u: {k: v for k, v in p.items() if k != "told"} for u, p in ch["participants"].items()
            }, "history": ch.get("history", [])}
        if name == "cancel":
            return self._cancel(ctx, ch)
        member = str(args.get("member") or "").strip().lstrip("@")
        if not member:
            raise CommandError(Msg("challenge {command} needs a member", command=name),
                               hint=Msg("member=<platform user id>"))
        if name == "withdraw":
            if member not in ch["participants"] or ch["status"] not in ("open", "running"):
                raise CommandError(Msg("{member} is not in the running challenge {challenge!r}", member=member,
                                       challenge=ch["name"]))
            self._withdraw(ctx, ch, member)
            return {"challenge": ch["id"], "member": member, "withdrawn": True}
        # record
        amount = args.get("amount", ch["deposit"])
        currency = str(args.get("currency") or ch["currency"])
        if type(amount) is not int or amount <= 0:
            raise CommandError(Msg("amount must be a positive whole number of minor units, got {amount!r}",
                                   amount=amount))
        why = self._cannot_join(ctx, ch, member, amount, currency)
        if why is not None:
            raise CommandError(Msg("{member} cannot join {challenge!r}: {reason}", member=member,
                                   challenge=ch["name"], reason=why),
                               hint=Msg("record the deposit only, in the challenge's currency, before joining closes"))
        return self._join(ctx, ch, member, source="admin")

    def _find(self, ctx: Context, ref: Any) -> dict[str, Any]:
        text = str(ref or "").strip()
        if not text:
            raise CommandError(Msg("which challenge?"), hint=Msg("challenge=<id or name>; `list` shows them"))
        found = ctx.state.get(f"c:{text}")
        if found is None:
            matches = [ch for _, ch in ctx.state.scan("c:") if ch["name"] == text or ch["keyword"] == text]
            live = [ch for ch in matches if ch["status"] in ("open", "running")]
            found = (live or matches or [None])[-1]
        if found is None:
            raise CommandError(Msg("no challenge {challenge!r}", challenge=text), hint=Msg("`list` shows the challenges"))
        return dict(found)

    def _summary(self, ctx: Context, ch: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": ch["id"], "name": ch["name"], "keyword": ch["keyword"], "start": ch["start"], "days": ch["days"],
            "deadline": ch["deadline"], "deposit": ch["deposit"], "currency": ch["currency"], "group": ch["group"],
            "status": ch["status"], "settled": ch["settled"], "carry": ch.get("carry", 0),
            "participants_count": len(ch["participants"]),
            "pot": ctx.ledger.balance(pot_account(ch["id"], ch["currency"])),
        }

    def _create(self, ctx: Context, args: Mapping[str, Any], actor: str) -> dict[str, Any]:
        cfg: ChallengeConfig = ctx.config
        name = unicodedata.normalize("NFKC", str(args.get("challenge") or args.get("name") or "")).strip()
        if not name or len(name) > 20 or any(c.isspace() or not c.isprintable() for c in name):
            raise CommandError(Msg("name {name!r} must be 1-20 printable characters without spaces", name=name),
                               hint=Msg("e.g. 早起"))
        keyword = unicodedata.normalize("NFKC", str(args.get("keyword") or f"#{name}")).strip()
        if len(keyword) < 2 or len(keyword) > 30 or not keyword.isprintable():
            raise CommandError(Msg("keyword {keyword!r} must be 2-30 printable characters", keyword=keyword),
                               hint=Msg("e.g. #早起"))
        try:
            start = date.fromisoformat(str(args.get("start") or ""))
        except ValueError:
            raise CommandError(Msg("start {start!r} is not a date", start=args.get("start")),
                               hint=Msg("YYYY-MM-DD")) from None
        days = args.get("days")
        if type(days) is not int or not 1 <= days <= cfg.max_days:
            raise CommandError(Msg("days must be a whole number from 1 to {most}, got {days!r}", most=cfg.max_days,
                                   days=days))
        deposit = args.get("deposit")
        if type(deposit) is not int or deposit < days:
            raise CommandError(Msg("deposit must be a whole number of minor units, at least one per day ({days}); "
                                   "got {deposit!r}", days=days, deposit=deposit),
                               hint=Msg("e.g. 10000 for 100.00"))
        deadline = str(args.get("deadline") or "")
        if not _HHMM.match(deadline):
            raise CommandError(Msg("deadline {deadline!r} is not a time of day", deadline=deadline),
                               hint=Msg("HH:MM, e.g. 07:00"))
        currency = str(args.get("currency") or cfg.currency)
        if not _CURRENCY.match(currency):
            raise CommandError(Msg("{currency!r} is not a currency code", currency=currency), hint=Msg("e.g. CNY"))
        group = str(args.get("announce_group") or home_group(ctx, self.id, cfg.home_group))
        if not any(g.key == group and g.platform == ctx.group.platform and self.id in g.playbooks
                   for g in ctx.community.groups.values()):
            raise CommandError(Msg("group {group!r} does not run the challenge playbook on {platform}", group=group,
                                   platform=ctx.group.platform))
        active = dict(ctx.state.get("active") or {})
        for other, words in active.items():
            if any(w.casefold() in (name.casefold(), keyword.casefold()) for w in words):
                raise CommandError(Msg("challenge {challenge} already uses {name!r} or {keyword!r}", challenge=other,
                                       name=name, keyword=keyword),
                                   hint=Msg("choose another name or keyword"))
        seq = int(ctx.state.get("seq") or 0) + 1
        cid = f"c{seq}"
        ch: dict[str, Any] = {
            "id": cid, "name": name, "keyword": keyword, "start": start.isoformat(), "days": days,
            "deposit": deposit, "currency": currency, "deadline": deadline, "group": group, "status": "open",
            "settled": 0, "carry": 0, "participants": {}, "history": [], "created": ctx.now.isoformat(),
            "by": clip(actor, 64),
        }
        first = self._deadline(ctx, ch, 0)
        if first <= ctx.now:
            raise CommandError(Msg("the first deadline ({start} {deadline}) has already passed",
                                   start=start.isoformat(), deadline=deadline),
                               hint=Msg("start on a later day"))
        ctx.state.put("seq", seq)
        ctx.state.put(f"c:{cid}", ch)
        # the memo may name the challenge or its keyword; the last word is the check-in keyword
        active[cid] = [name, keyword] if name.casefold() != keyword.casefold() else [keyword]
        ctx.state.put("active", active)
        ctx.schedule("settle", at=first, payload={"cid": cid}, key=f"settle:{cid}")
        ctx.send(ctx.render("created", name=name, start=start.isoformat(), days=days,
                            deposit=fmt_money(deposit, currency, ctx.locale), deadline=deadline, keyword=keyword,
                            close=f"{start.isoformat()} {deadline}"), group=group)
        ctx.record("created", None, challenge=cid, name=name, days=days, deposit=deposit, currency=currency)
        return self._summary(ctx, ch)

    def _cancel(self, ctx: Context, ch: dict[str, Any]) -> dict[str, Any]:
        if ch["status"] not in ("open", "running"):
            raise CommandError(Msg("challenge {challenge!r} is {status}", challenge=ch["name"], status=ch["status"]),
                               hint=Msg("only a running one can be cancelled"))
        cid = ch["id"]
        cur = ch["currency"]
        held = ch["deposit"] - sum(stake(ch["deposit"], ch["days"], i) for i in range(ch["settled"]))
        legs = [(ctx.ledger.member_account(u, cur), held) for u, p in sorted(ch["participants"].items())
                if not u.startswith(ERASED_PREFIX) and held > 0]
        # an erased participant's share, and anything carried, go to the fund
        rest = ctx.ledger.balance(pot_account(cid, cur)) - sum(a for _, a in legs)
        if rest < 0:
            raise CommandError(Msg("challenge {challenge}: the pot holds less than the deposits still held",
                                   challenge=cid))
        if rest:
            legs.append((fund_account(cur), rest))
        if legs:
            ctx.ledger.post([(pot_account(cid, cur), -sum(a for _, a in legs)), *legs], cur,
                            f"challenge {cid}: cancelled")
        ch["status"] = "cancelled"
        ch["carry"] = 0
        ctx.state.put(f"c:{cid}", ch)
        self._deactivate(ctx, cid)
        ctx.cancel(f"settle:{cid}")
        ctx.record("cancelled", None, challenge=cid)
        ctx.send(ctx.render("cancelled", name=ch["name"]), group=ch["group"])
        return {**self._summary(ctx, ch), "returned": held if legs else 0}

    def _refund(self, ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
        cfg: ChallengeConfig = ctx.config
        member = str(args.get("member") or "").strip().lstrip("@")
        if not member:
            raise CommandError(Msg("challenge refund needs a member"), hint=Msg("member=<platform user id>"))
        currency = str(args.get("currency") or cfg.currency)
        key = f"m:{member}"
        st = dict(ctx.state.get(key) or {})
        entries = list(st.get("unmatched") or [])
        held = sum(int(e["amount"]) for e in entries if e.get("currency") == currency)
        amount = args.get("amount", held)
        if held <= 0:
            raise CommandError(Msg("nothing of {member} is held in {currency}", member=member, currency=currency))
        if type(amount) is not int or not 0 < amount <= held:
            raise CommandError(Msg("amount must be a whole number between 1 and {held}", held=held))
        left = amount
        kept = []
        for e in entries:
            if left and e.get("currency") == currency:
                use = min(left, int(e["amount"]))
                left -= use
                if int(e["amount"]) - use:
                    kept.append({**e, "amount": int(e["amount"]) - use})
            else:
                kept.append(e)
        if kept:
            ctx.state.put(key, {**st, "unmatched": kept})
        else:
            st.pop("unmatched", None)
            if st:
                ctx.state.put(key, st)
            else:
                ctx.state.delete(key)
        ctx.ledger.transfer(suspense_account(currency), external_account(currency), amount, currency,
                            "challenge payment refunded")
        ctx.record("refund", member, amount=amount, currency=currency)
        return {"member": member, "refunded": amount, "currency": currency, "held": held - amount}

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, ch in ctx.state.scan("c:"):
            mine = ch["participants"].get(member)
            if mine is not None:
                found[key] = {"challenge": ch["name"], **{k: v for k, v in mine.items() if k != "told"}}
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Their held payments' record goes; in a running challenge they count as withdrawn
        (the days not yet settled fail) under an anonymous entry, so the pot still settles to zero.
        Their ledger accounts stay, under the anonymised member, and keep their balances."""
        # the default keys only (the export above adds shared keys that must stay)
        for key in Playbook.export_member(self, ctx, member):
            ctx.state.delete(key)
        for key, ch in list(ctx.state.scan("c:")):
            if member not in ch["participants"]:
                continue
            ch = dict(ch)
            n = sum(1 for u in ch["participants"] if u.startswith(ERASED_PREFIX)) + 1
            anon = f"{ERASED_PREFIX}{n})"
            if ch["status"] in ("open", "running"):
                self._withdraw(ctx, ch, member, key=anon)
            else:
                who = ch["participants"].pop(member)
                ch["participants"][anon] = {k: v for k, v in who.items() if k not in ("joined", "told")}
                ctx.state.put(key, ch)

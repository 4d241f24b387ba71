"""gate (入群门槛): who may enter a group, and how they prove it.

One ``mode`` per group (overridable per group like every setting):

- ``open``: anyone may join; the playbook does nothing.
- ``approval``: the applicant answers the community's application questions;
  admins get the answers and approve or reject (in the admins' group with
  ``批准 @某人`` / ``拒绝 @某人 理由``, or with the ``approve`` / ``reject``
  commands). The answers are kept for the profile.
- ``quiz``: N questions drawn from a bank, a different deterministic draw per
  attempt, limited attempts, then blocked for a cool-down or for good.
- ``invitation``: only people invited by a member in good standing, or holding
  a personal invite code issued by the ``referrals`` playbook.
- ``paid``: an entry fee; the payment goes into the community fund.
- ``bounty``: answer one of the open bounty questions; the admins' choice of
  the best answer admits its author free (a configured fee also admits).
- ``credential``: a self-declared credential that an admin verifies.

Where the platform holds a join, the gate works on ``join_request`` events and
admits with an ``invite`` action (adapters turn it into "accept the request").
Where it cannot (WeChat), a ``member_joined`` without an earlier admission
starts the gate *after* the join: the newcomer gets instructions in the group,
a reminder, and is removed with a notice at the deadline unless they passed.
Leaving and coming back neither resets attempts nor renews the deadline.

State (community-scoped; everything about a person is under ``m:<uid>``, so
the default export and erase cover it):

- ``m:<uid>`` → ``{"answers": {question: answer}, "status": <latest>,
  "groups": {"<platform>:<group>": {...one application per group...}}}``
  (``profile`` reads ``answers``).
- ``code:<CODE>`` → ``{"uses": n}``: how often an invite code admitted someone
  (anonymous).
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.playbooks.referrals import CODE_LENGTH, MAX_CODE_LENGTH

Locale = Literal["zh-CN", "en"]
#: A text the operator writes once, or once per locale.
LocalText = str | dict[Locale, str]
Mode = Literal["open", "approval", "quiz", "invitation", "paid", "bounty", "credential"]

#: Roles that never meet the gate.
PROTECTED = frozenset({"owner", "admin", "assistant", "guest"})
#: Crockford base32 (no I, L, O, U).
_CROCKFORD = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
#: What people type inside a code ("7k3-m9q", "7K3 M9Q"); the same set ``referrals`` drops.
_CODE_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―_.·]+")
#: A typed code after a keyword: letters and digits with single separators between them, up to
#: 16 of them (longer than the 10 of a real code, so an overlong guess is caught and counted).
_CODE_TOKEN = r"([0-9A-Za-z](?:[ \-‐‑‒–—―_.·]?[0-9A-Za-z]){5,15})(?![0-9A-Za-z])"
_CONTROLS = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")
_MAX_ANSWERS = 20
_ADMIN_VERBS = {
    "批准": "approve",
    "通过": "approve",
    "approve": "approve",
    "拒绝": "reject",
    "reject": "reject",
    "核验": "verify",
    "verify": "verify",
    "最佳": "pick",
    "best": "pick",
}
_ADMIN_COMMAND = re.compile(
    r"^\s*(" + "|".join(re.escape(v) for v in _ADMIN_VERBS) + r")(?:\s+|$)(\S+)?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def localized(value: LocalText, locale: str) -> str:
    """``value`` in ``locale``: a plain string, or the matching entry of a per-locale dict."""
    if isinstance(value, str):
        return value
    texts = cast(dict[str, str], value)
    return texts.get(locale) or texts.get("en") or next(iter(texts.values()))


def _check_text(value: LocalText) -> LocalText:
    texts = [value] if isinstance(value, str) else list(value.values())
    if not texts or any(not t.strip() for t in texts):
        raise ValueError("must be a non-empty text (or one per locale: {zh-CN: ..., en: ...})")
    return value


def _norm(text: str) -> str:
    """Answer comparison form: width-folded (NFKC), case-folded, blanks squeezed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split()).strip(" .。,，!！?？;；:：'\"“”‘’")


def normalize_code(raw: str) -> str:
    """An invite code as typed → its canonical form (strip, upper, O→0, I/L→1, no spaces/dashes),
    folded exactly as :func:`qunyun.playbooks.referrals.normalise_code` folds it."""
    text = unicodedata.normalize("NFKC", raw).strip().upper()
    text = text.replace("O", "0").replace("I", "1").replace("L", "1")
    return _CODE_SEPARATORS.sub("", text)


def valid_code(code: str) -> bool:
    """A code ``referrals`` can have issued: 6 characters, or up to 10 after a collision."""
    return CODE_LENGTH <= len(code) <= MAX_CODE_LENGTH and all(c in _CROCKFORD for c in code)


def safe_text(text: str, limit: int) -> str:
    """Member-typed text made safe to keep and to show: no controls or bidi marks, clipped."""
    cleaned = _CONTROLS.sub("", text[: limit * 2 + 64].replace("\r\n", "\n"))
    cleaned = unicodedata.normalize("NFC", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: max(0, limit - 1)] + "…"


def money(amount: int, currency: str) -> str:
    """Minor units as ``200.00 CNY`` (integer arithmetic: no floats)."""
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}{amount // 100}.{amount % 100:02d} {currency}"


# --------------------------------------------------------------------- config


class QuizQuestion(BaseModel):
    """One question of the quiz bank."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: LocalText = Field(description="The question, one text or one per locale.")
    choices: list[str] = Field(
        default_factory=list, description="Choices shown as A, B, C…; empty for a free answer."
    )
    answers: list[str] = Field(
        min_length=1,
        description="Accepted answers (case- and width-insensitive); for choices a letter or the choice text.",
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: LocalText) -> LocalText:
        return _check_text(value)

    @field_validator("answers")
    @classmethod
    def _answers(cls, value: list[str]) -> list[str]:
        if any(not a.strip() for a in value):
            raise ValueError("an accepted answer is empty")
        return value

    @model_validator(mode="after")
    def _letters_in_range(self) -> QuizQuestion:
        if self.choices:
            letters = {chr(ord("a") + i) for i in range(len(self.choices))}
            texts = {_norm(c) for c in self.choices}
            for answer in self.answers:
                if _norm(answer) not in letters and _norm(answer) not in texts:
                    raise ValueError(
                        f"accepted answer {answer!r} is neither a choice letter "
                        f"(A-{chr(ord('A') + len(self.choices) - 1)}) nor one of the choices"
                    )
        return self

    def accepts(self, given: str) -> bool:
        answer = _norm(given)
        if not answer:
            return False
        candidates = {answer}
        if self.choices and len(answer) == 1 and "a" <= answer <= "z":
            index = ord(answer) - ord("a")
            if index < len(self.choices):
                candidates.add(_norm(self.choices[index]))
        accepted = set()
        for a in self.answers:
            na = _norm(a)
            accepted.add(na)
            if self.choices and len(na) == 1 and "a" <= na <= "z" and ord(na) - ord("a") < len(self.choices):
                accepted.add(_norm(self.choices[ord(na) - ord("a")]))
        if self.choices:
            # a letter is only right if it names a right choice: "b" must not match choice text "b"
            letters = {_norm(chr(ord("a") + i)) for i in range(len(self.choices))}
            if answer in letters:
                return _norm(self.choices[ord(answer) - ord("a")]) in accepted
        return bool(candidates & accepted)


_DEFAULT_QUESTIONS: list[LocalText] = [
    {"zh-CN": "你是怎么知道我们的？", "en": "How did you hear about us?"},
    {"zh-CN": "你希望在这里收获什么？", "en": "What do you hope to find here?"},
]


class GateConfig(PlaybookConfig):
    mode: Mode = Field(
        default="approval",
        description="open, approval, quiz, invitation, paid, bounty or credential (see the modes above).",
    )
    after_join: bool | None = Field(
        default=None,
        description=(
            "null: a join without an earlier admission starts the gate after the join (WeChat); "
            "true: always gate after the join (join requests are ignored); "
            "false: only join requests are gated."
        ),
    )
    deadline_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="After-join gate: hours to pass before being removed."
    )
    remind_before_hours: float = Field(
        default=4, ge=0, le=24 * 30, description="After-join gate: remind this many hours before the deadline (0: no reminder)."
    )
    rejoin_grace_hours: float = Field(
        default=1,
        ge=0,
        le=24 * 7,
        description="Someone who comes back after their deadline passed gets this much time, once (0: removed at once).",
    )
    rejoin_fresh_days: int = Field(
        default=30, ge=1, le=3650, description="A rejoin this many days after the last deadline gets a fresh deadline."
    )
    questions: list[LocalText] = Field(
        default_factory=lambda: list(_DEFAULT_QUESTIONS),
        max_length=_MAX_ANSWERS,
        description="approval: the application questions (one text or one per locale each).",
    )
    answer_limit: int = Field(
        default=1000, ge=10, le=10_000, description="Characters kept of each answer (longer ones are clipped)."
    )
    notice_clip: int = Field(
        default=200, ge=20, le=2000, description="Characters of each answer shown in admins' notices."
    )
    quiz: list[QuizQuestion] = Field(
        default_factory=list, description="quiz: the question bank ({question, choices, answers} each)."
    )
    quiz_count: int = Field(default=3, ge=1, le=20, description="quiz: questions drawn per attempt (at most the bank size).")
    quiz_pass: int | None = Field(
        default=None, ge=1, description="quiz: right answers needed (null: all of them)."
    )
    max_attempts: int = Field(default=3, ge=1, le=100, description="quiz: failed attempts before being blocked.")
    block_hours: float | None = Field(
        default=24,
        gt=0,
        description=(
            "How long a quiz failer, a code guesser or a rejected applicant is blocked "
            "(null: for good)."
        ),
    )
    code_keywords: list[str] = Field(
        default_factory=lambda: ["邀请码", "invite code"],
        min_length=1,
        description="invitation: a message with one of these words followed by a code presents an invite code.",
    )
    max_uses_per_code: int = Field(default=10, ge=1, description="invitation: people one invite code may admit.")
    max_code_guesses: int = Field(
        default=5, ge=1, le=100, description="invitation: wrong codes one applicant may try before being blocked."
    )
    fee: int = Field(
        default=0, ge=0, description="paid (and bounty, optionally): the entry fee in minor units (fen, cents)."
    )
    currency: str = Field(
        default="CNY", pattern=r"^[A-Z][A-Z0-9_]{1,15}$", description="Currency of the entry fee."
    )
    bounties: list[LocalText] = Field(
        default_factory=list, description="bounty: the open bounty questions."
    )
    bounty_keywords: list[str] = Field(
        default_factory=lambda: ["悬赏", "bounty"],
        min_length=1,
        description="bounty: an answer is a message starting with one of these, then the question number.",
    )
    credential: LocalText | None = Field(
        default=None,
        description="credential: what applicants declare, e.g. '微信好友 ≥ 300'. Unset: the `gate.credential_default` template.",
    )

    @field_validator("questions", "bounties")
    @classmethod
    def _texts(cls, value: list[LocalText]) -> list[LocalText]:
        for text in value:
            _check_text(text)
        return value

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: LocalText | None) -> LocalText | None:
        return None if value is None else _check_text(value)

    @field_validator("code_keywords", "bounty_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if any(not k.strip() for k in value):
            raise ValueError("keywords must not be empty")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> GateConfig:
        if self.mode == "quiz" and not self.quiz:
            raise ValueError("mode quiz needs a question bank: quiz: [{question: ..., answers: [...]}]")
        if self.mode == "paid" and self.fee <= 0:
            raise ValueError("mode paid needs fee: the entry fee in minor units, e.g. 20000 for 200.00")
        if self.mode == "bounty" and not self.bounties:
            raise ValueError("mode bounty needs bounties: a list of open questions")
        if self.quiz_pass is not None and self.quiz_pass > self.quiz_count:
            raise ValueError(f"quiz_pass ({self.quiz_pass}) cannot exceed quiz_count ({self.quiz_count})")
        return self


# ------------------------------------------------------------------- playbook


class Gate(Playbook):
    id = "gate"
    version = "1"
    config_model = GateConfig
    handles = frozenset({"member_joined", "member_left", "message", "join_request", "payment"})
    emits = frozenset({"send", "direct", "remove", "invite", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "入群门槛：审核、答题、邀请制、付费、悬赏或资质核验，过不了的按时移出。",
        "en": "Entry gate: approval, quiz, invitation, fee, bounty or verified credential; removes those who miss the deadline.",
    }
    commands: ClassVar[dict[str, str]] = {
        "pending": "List the applications waiting for a decision.",
        "approve": "Admit MEMBER (args: member, group?).",
        "reject": "Turn MEMBER down (args: member, reason?, group?).",
        "verify": "Confirm MEMBER's declared credential and admit them (args: member, group?).",
        "pick": "Choose MEMBER's bounty answer as the best: admitted free (args: member, group?).",
        "record_payment": "Record an entry fee paid outside the chat (args: member, amount, currency?, group?).",
        "refund": "Record a refund of money held for MEMBER (args: member, amount, currency?).",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        # --- approval
        "ask_answers": {
            "zh-CN": "欢迎 @{name}！本群需要审核，请在 {hours} 小时内逐条回复下面的问题：\n{questions}",
            "en": "Welcome, @{name}! This group reviews newcomers. Please reply to each question below within {hours} hours:\n{questions}",
        },
        "wait_review": {
            "zh-CN": "@{name} 欢迎！管理员会在 {hours} 小时内审核你的入群，请稍候。",
            "en": "Welcome, @{name}! An admin will review your arrival within {hours} hours.",
        },
        "received": {
            "zh-CN": "收到，谢谢！管理员看过后会告诉你结果。",
            "en": "Got it, thank you! An admin will look at it and let you know.",
        },
        "admin_application": {
            "zh-CN": "📝 {name}（{member}）申请加入「{group}」：\n{answers}\n回复「批准 {member}」或「拒绝 {member} 理由」。",
            "en": "📝 {name} ({member}) asks to join {group}:\n{answers}\nReply \"approve {member}\" or \"reject {member} reason\".",
        },
        "answer_line": {"zh-CN": "· {question}：{answer}", "en": "· {question}: {answer}"},
        "no_answers": {"zh-CN": "（没有填写回答）", "en": "(no answers given)"},
        "approved": {
            "zh-CN": "🎉 你加入「{community}」的申请通过啦，欢迎！",
            "en": "🎉 You're in: welcome to {community}!",
        },
        "passed": {
            "zh-CN": "✅ @{name} 已通过入群验证，欢迎正式加入！",
            "en": "✅ @{name} has passed the entry check. Welcome aboard!",
        },
        "rejected": {
            "zh-CN": "很抱歉，你加入「{community}」的申请没有通过。原因：{reason}",
            "en": "Sorry, your request to join {community} was not accepted. Reason: {reason}",
        },
        "no_reason": {"zh-CN": "管理员未说明", "en": "none given"},
        "greeting": {"zh-CN": "欢迎 @{name}！", "en": "Welcome, @{name}! "},
        # --- quiz
        "quiz": {
            "zh-CN": "{greeting}请回答下面 {count} 道题（答对 {need} 道即可），按编号回复，例如「1 B」：\n{questions}\n剩余机会：{left} 次。",
            "en": "{greeting}Please answer these {count} questions ({need} right to pass), numbered, e.g. \"1 B\":\n{questions}\nAttempts left: {left}.",
        },
                "quiz_line": {"zh-CN": "{n}. {question}{choices}", "en": "{n}. {question}{choices}"},
        "quiz_failed": {
            "zh-CN": "@{name} 答对 {right}/{count} 道，还差一点。换一组题再试试：",
            "en": "@{name}, {right} of {count} right, not quite. Here is a new set:",
        },
        # --- blocking
        "blocked": {
            "zh-CN": "@{name} 验证未通过的次数已用完，{until}。",
            "en": "@{name}, no attempts left; {until}.",
        },
        "blocked_until": {"zh-CN": "{when} 之后可以再试", "en": "you may try again after {when}"},
        "blocked_forever": {"zh-CN": "暂时无法再申请", "en": "you cannot apply again"},
        "still_blocked": {
            "zh-CN": "@{name} 目前还不能重新申请：{until}。",
            "en": "@{name}, you cannot apply again yet: {until}.",
        },
        # --- invitation
        "code_needed": {
            "zh-CN": "{greeting}本群仅限邀请加入：请回复「邀请码 XXXXXX」（向邀请你的成员要一个）。",
            "en": "{greeting}This group is invitation-only: reply \"invite code XXXXXX\" (ask the member who invited you).",
        },
        "code_bad": {
            "zh-CN": "@{name} 这个邀请码无法使用（可能无效、已失效或已用完），还可以再试 {left} 次。",
            "en": "@{name}, that invite code cannot be used (unknown, expired or used up). {left} tries left.",
        },
        "codes_off": {
            "zh-CN": "@{name} 本群目前不接受邀请码，请让群成员直接邀请你。",
            "en": "@{name}, this group does not take invite codes now; ask a member to invite you directly.",
        },
        # --- paid
        "pay_needed": {
            "zh-CN": "{greeting}本群入群费 {fee}，付款后自动通过。",
            "en": "{greeting}The entry fee is {fee}; you are let in as soon as it is paid.",
        },
        "pay_short": {
            "zh-CN": "@{name} 已收到 {paid}，入群费 {fee}，还差 {missing}。",
            "en": "@{name}, received {paid}; the fee is {fee}, {missing} still to pay.",
        },
        "pay_currency": {
            "zh-CN": "@{name} 收到 {paid}，但入群费需以 {currency} 支付（{fee}）。这笔钱已登记，管理员会退还给你。",
            "en": "@{name}, received {paid}, but the fee is paid in {currency} ({fee}). The money is on record and an admin will refund it.",
        },
        "pay_excess": {
            "zh-CN": "多付的 {excess} 已登记，管理员会退还给你。",
            "en": "The {excess} paid on top is on record; an admin will refund it.",
        },
        "admin_held": {
            "zh-CN": "💰 {name}（{member}）的入群付款有 {amount} 需要退还：{why}。执行 refund 命令登记退款。",
            "en": "💰 {amount} of {name} ({member})'s entry payment is to be refunded: {why}. Record it with the refund command.",
        },
        "admin_held_erased": {
            "zh-CN": "💰 一位成员的个人数据已按要求删除，入群付款中待退还的 {amounts} 已转入其账户（账本中的匿名成员），请照常退款。",
            "en": "💰 A member's personal data was erased at their request; {amounts} of their entry payment still to be "
            "refunded now sits in their ledger account (an anonymous member). Please refund it as usual.",
        },
        "why_currency": {"zh-CN": "币种不符", "en": "wrong currency"},
        "why_excess": {"zh-CN": "多付", "en": "paid too much"},
        # --- bounty
        "bounty": {
            "zh-CN": "{greeting}任选一道悬赏题作答，被评为最佳答案即可免费入群。回复「{keyword} 题号 你的答案」：\n{questions}{fee}",
            "en": "{greeting}Answer one of the bounty questions; the best answer gets in free. Reply \"{keyword} number your answer\":\n{questions}{fee}",
        },
        "bounty_fee": {
            "zh-CN": "\n或者支付入群费 {fee} 直接入群。",
            "en": "\nOr pay the {fee} entry fee to join right away.",
        },
        "bounty_line": {"zh-CN": "{n}. {question}", "en": "{n}. {question}"},
        "admin_bounty": {
            "zh-CN": "🏆 {name}（{member}）回答了悬赏题「{question}」：\n{answer}\n选为最佳请回复「最佳 {member}」。",
            "en": "🏆 {name} ({member}) answered the bounty \"{question}\":\n{answer}\nReply \"best {member}\" to choose it.",
        },
        "bounty_won": {
            "zh-CN": "🏆 @{name} 的悬赏回答被评为最佳，免费入群，欢迎！",
            "en": "🏆 @{name}'s bounty answer was chosen as the best: in for free. Welcome!",
        },
        # --- credential
        "credential_ask": {
            "zh-CN": "{greeting}本群需要核验资质：{credential}。请直接回复你的情况，管理员核验后通过。",
            "en": "{greeting}This group checks a credential: {credential}. Reply with yours; an admin will verify it.",
        },
        "credential_default": {"zh-CN": "请说明你的相关资质", "en": "tell us about your qualifications"},
        "admin_credential": {
            "zh-CN": "🔎 {name}（{member}）申报资质：\n{credential}\n核验通过请回复「核验 {member}」，否则「拒绝 {member} 理由」。",
            "en": "🔎 {name} ({member}) declares:\n{credential}\nReply \"verify {member}\" if it checks out, or \"reject {member} reason\".",
        },
        "credential_label": {"zh-CN": "资质", "en": "credential"},
        # --- after-join deadline
        "reminder": {
            "zh-CN": "⏰ @{name} 还有约 {hours} 小时完成入群验证，逾期会被移出群聊哦。",
            "en": "⏰ @{name}, about {hours} hours left to pass the entry check, or you will be removed.",
        },
        "removed": {
            "zh-CN": "{name} 未在期限内通过入群验证，已移出群聊。",
            "en": "{name} did not pass the entry check in time and has been removed.",
        },
        "remove_reason": {"zh-CN": "未通过入群验证", "en": "did not pass the entry check"},
        "deadline_passed": {
            "zh-CN": "{name} 的入群验证期限已过，已移出群聊。",
            "en": "{name}'s time to pass the entry check is over; removed.",
        },
        # --- admin replies in the admins' group
        "done_approve": {"zh-CN": "已批准 {name}（{member}）。", "en": "Approved {name} ({member})."},
        "done_reject": {"zh-CN": "已拒绝 {name}（{member}）。", "en": "Turned down {name} ({member})."},
        "done_verify": {"zh-CN": "已核验 {name}（{member}）。", "en": "Verified {name} ({member})."},
        "done_pick": {"zh-CN": "已选 {name}（{member}）的回答为最佳。", "en": "Chose {name} ({member})'s answer as the best."},
        "not_done": {"zh-CN": "没办成：{error}", "en": "Not done: {error}"},
    }

    # ================================================================ events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: GateConfig = ctx.config
        uid: str = event.actor.id
        if event.type == "message" and self._admin_chat(ctx, event):
            return
        if ctx.group.admin or cfg.mode == "open":
            return
        if event.type == "member_left":
            self._left(ctx, uid, event.by)
            return
        if ctx.role(uid) in PROTECTED:
            if event.type == "join_request" and cfg.after_join is not True:
                ctx.invite(uid)  # staff pass at once
            return
        if event.type == "member_joined":
            self._joined(ctx, uid, event)
        elif event.type == "join_request":
            if cfg.after_join is not True:
                self._requested(ctx, uid, event.answers)
        elif event.type == "message":
            self._message(ctx, uid, event)
        elif event.type == "payment":
            self._paid(ctx, uid, event.amount, event.currency, "payment")

    # ----------------------------------------------------------- join, leave

    def _joined(self, ctx: Context, uid: str, event: Any) -> None:
        cfg: GateConfig = ctx.config
        st = _load(ctx, uid)
        rec = _rec(ctx, st)
        rec["in"] = True
        status = rec.get("status")
        if status == "admitted":
            _save(ctx, uid, st)
            return
        if event.via == "approve" and status in (None, "pending", "removed"):
            # an admin accepted the request on the platform itself
            self._admit(ctx, uid, st, rec, "platform", announce=False)
            return
        if cfg.mode == "invitation" and event.inviter and event.inviter != uid:
            why = _inviter_problem(ctx, event.inviter)
            if why is None and status not in ("blocked", "rejected"):
                self._admit(ctx, uid, st, rec, "inviter", inviter=event.inviter, announce=False)
                return
            if why is not None:
                ctx.record("inviter_refused", uid, inviter=event.inviter, why=why)
        if cfg.after_join is False:
            _save(ctx, uid, st)  # the platform held the join: nothing to do after it
            return
        now = ctx.now
        if self._still_blocked(ctx, rec):
            self._remove(ctx, uid, rec, ctx.render("still_blocked", name=ctx.name(uid), until=_until(ctx, rec)))
            _save(ctx, uid, st)
            return
        deadline = _dt(rec.get("deadline"))
        if status in (None, "removed", "blocked", "rejected"):
            _start(ctx, st, rec)  # a new application; attempts and guesses carry over
        if (
            status not in ("pending", "expired")
            or deadline is None
            or now - deadline > timedelta(days=cfg.rejoin_fresh_days)
        ):
            rec["grace_used"] = False
            deadline = now + timedelta(hours=cfg.deadline_hours)
        elif deadline <= now:
            # back after the deadline: one short grace, never a fresh deadline
            if rec.get("grace_used") or cfg.rejoin_grace_hours <= 0:
                rec["status"] = "expired"
                self._remove(ctx, uid, rec, ctx.render("deadline_passed", name=ctx.name(uid)))
                _save(ctx, uid, st)
                return
            rec["grace_used"] = True
            deadline = now + timedelta(hours=cfg.rejoin_grace_hours)
        rec["status"] = "pending"
        rec["deadline"] = deadline.isoformat()
        st["status"] = "pending"
        ctx.schedule("deadline", at=deadline, key=f"deadline:{uid}", payload={"member": uid})
        remind_at = deadline - timedelta(hours=cfg.remind_before_hours)
        if cfg.remind_before_hours > 0 and remind_at > now:
            ctx.schedule("remind", at=remind_at, key=f"remind:{uid}", payload={"member": uid})
        else:
            ctx.cancel(f"remind:{uid}")
        ctx.record("applied", uid, mode=cfg.mode, after_join=True)
        self._instruct(ctx, uid, st, rec, greet=True)
        _save(ctx, uid, st)

    def _left(self, ctx: Context, uid: str, by: str | None) -> None:
        st = ctx.state.get(f"m:{uid}")
        if not st or _gkey(ctx) not in st.get("groups", {}):
            return
        st = _load(ctx, uid)
        rec = _rec(ctx, st)
        rec["in"] = False
        if rec.get("status") == "admitted" and by and by != uid:
            rec["status"] = "removed"  # admission withdrawn: the gate applies again on return
        ctx.cancel(f"deadline:{uid}")
        ctx.cancel(f"remind:{uid}")
        _save(ctx, uid, st)

    def _requested(self, ctx: Context, uid: str, answers: Mapping[str, str] | list[str]) -> None:
        """A join request on a platform that holds joins."""
        cfg: GateConfig = ctx.config
        st = _load(ctx, uid)
        rec = _rec(ctx, st)
        rec["in"] = False
        status = rec.get("status")
        if status == "admitted":
            ctx.invite(uid)  # admitted before (left of their own accord): let them back in
            _save(ctx, uid, st)
            return
        if self._still_blocked(ctx, rec):
            ctx.direct(uid, ctx.render("still_blocked", name=ctx.name(uid), until=_until(ctx, rec)))
            _save(ctx, uid, st)
            return
        first = status != "pending"
        if first:
            _start(ctx, st, rec)
            rec["status"] = "pending"
            st["status"] = "pending"
            ctx.record("applied", uid, mode=cfg.mode, after_join=False)
        given = list(answers.values()) if isinstance(answers, Mapping) else list(answers)
        given = [a for a in given if isinstance(a, str) and a.strip()]
        mode = cfg.mode
        if mode == "approval":
            kept = _answers(cfg, ctx.locale, answers)
            if first or kept != rec.get("answers"):
                rec["answers"] = kept
                st["answers"] = kept
                self._notify_application(ctx, uid, rec)
                ctx.direct(uid, ctx.render("received"))
        elif mode == "quiz":
            if given and rec.get("quiz"):
                self._grade(ctx, uid, st, rec, _positional(answers, len(rec["quiz"])))
            else:
                self._instruct(ctx, uid, st, rec)
        elif mode == "invitation":
            code = next((c for c in (_find_code(cfg, a) for a in given) if c), None)
            if code is None:
                self._instruct(ctx, uid, st, rec)
            else:
                self._try_code(ctx, uid, st, rec, code)
        elif mode == "paid":
            self._instruct(ctx, uid, st, rec)
        elif mode == "bounty":
            text = next((a for a in given if _bounty_parts(cfg, a) is not None), None)
            if text is not None:
                self._bounty_answer(ctx, uid, st, rec, text)
            elif given:
                self._bounty_answer(ctx, uid, st, rec, "\n".join(given), plain=True)
            else:
                self._instruct(ctx, uid, st, rec)
        elif mode == "credential":
            if given:
                self._declare(ctx, uid, st, rec, "\n".join(given))
            else:
                self._instruct(ctx, uid, st, rec)
        _save(ctx, uid, st)

    # -------------------------------------------------------------- messages

    def _message(self, ctx: Context, uid: str, event: Any) -> None:
        text: str = event.text
        if not text.strip():
            return
        raw = ctx.state.get(f"m:{uid}")
        if not raw:
            return
        rec0 = raw.get("groups", {}).get(_gkey(ctx))
        if not rec0 or rec0.get("status") != "pending" or not rec0.get("in"):
            return
        cfg: GateConfig = ctx.config
        st = _load(ctx, uid)
        rec = _rec(ctx, st)
        consumed = True
        if cfg.mode == "approval":
            questions = [localized(q, ctx.locale) for q in cfg.questions]
            got = dict(rec.get("answers") or {})
            if len(got) < len(questions):
                got[questions[len(got)]] = safe_text(text, cfg.answer_limit)
                rec["answers"] = got
                st["answers"] = got
                if len(got) == len(questions):
                    self._notify_application(ctx, uid, rec)
                    ctx.send(ctx.render("received"), mentions=[uid], reply_to=event.msg_id)
            else:
                consumed = False
        elif cfg.mode == "quiz":
            n = len(rec.get("quiz") or [])
            found = _numbered(text, n)
            if not found:
                consumed = False
            else:
                partial = {**(rec.get("partial") or {}), **{str(k): v for k, v in found.items()}}
                rec["partial"] = {k: safe_text(v, 200) for k, v in partial.items()}
                if all(str(i) in partial for i in range(1, n + 1)):
                    rec["partial"] = {}
                    self._grade(ctx, uid, st, rec, [partial[str(i)] for i in range(1, n + 1)])
        elif cfg.mode == "invitation":
            code = _find_code(cfg, text, phrase_only=True)
            if code is None:
                consumed = False
            else:
                self._try_code(ctx, uid, st, rec, code)
                if rec.get("status") == "admitted":
                    # the accepted code goes on to ``referrals``, which attributes the join to its owner
                    _save(ctx, uid, st)
                    return
        elif cfg.mode == "bounty":
            if _bounty_parts(cfg, text) is None:
                consumed = False
            else:
                self._bounty_answer(ctx, uid, st, rec, text)
        elif cfg.mode == "credential":
            if rec.get("credential"):
                consumed = False
            else:
                self._declare(ctx, uid, st, rec, text)
        else:
            consumed = False
        if consumed:
            _save(ctx, uid, st)
            ctx.suppress()  # an applicant's answer is not chat for the other playbooks

    # ---------------------------------------------------------- instructions

    def _instruct(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], *, greet: bool = False) -> None:
        """Tell the applicant what to do, in the group (after join) or by direct message."""
        cfg: GateConfig = ctx.config
        name = ctx.name(uid)
        hours = _hours(cfg.deadline_hours)
        greeting = ctx.render("greeting", name=name) if greet and rec.get("in") else ""
        mode = cfg.mode
        if mode == "approval":
            questions = [localized(q, ctx.locale) for q in cfg.questions]
            if questions:
                lines = "\n".join(f"{i}. {q}" for i, q in enumerate(questions, 1))
                text = ctx.render("ask_answers", name=name, hours=hours, questions=lines)
            else:
                text = ctx.render("wait_review", name=name, hours=hours)
                self._notify_application(ctx, uid, rec)
        elif mode == "quiz":
            if not rec.get("quiz") or any(i >= len(cfg.quiz) for i in rec["quiz"]):
                _draw(ctx, uid, rec, cfg)
            text = self._quiz_text(ctx, rec, greeting)
        elif mode == "invitation":
            text = ctx.render("code_needed", greeting=greeting)
        elif mode == "paid":
            text = ctx.render("pay_needed", greeting=greeting, fee=money(cfg.fee, cfg.currency))
        elif mode == "bounty":
            lines = "\n".join(
                ctx.render("bounty_line", n=i, question=localized(q, ctx.locale)) for i, q in enumerate(cfg.bounties, 1)
            )
            fee = ctx.render("bounty_fee", fee=money(cfg.fee, cfg.currency)) if cfg.fee else ""
            text = ctx.render("bounty", greeting=greeting, keyword=cfg.bounty_keywords[0], questions=lines, fee=fee)
        else:  # credential
            text = ctx.render("credential_ask", greeting=greeting, credential=_credential_text(ctx, cfg))
        _tell(ctx, uid, rec, text)

    def _quiz_text(self, ctx: Context, rec: dict[str, Any], greeting: str) -> str:
        cfg = _cfg_of(ctx, rec)
        lines = []
        for n, index in enumerate(rec["quiz"], 1):
            q = cfg.quiz[index]
            choices = ""
            if q.choices:
                choices = "  " + "  ".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(q.choices))
            lines.append(ctx.render("quiz_line", n=n, question=localized(q.question, ctx.locale), choices=choices))
        count = len(rec["quiz"])
        need = min(cfg.quiz_pass or count, count)
        left = max(cfg.max_attempts - int(rec.get("attempts", 0)), 0)
        return ctx.render("quiz", greeting=greeting, count=count, need=need, questions="\n".join(lines), left=left)

    # ------------------------------------------------------------------ quiz

    def _grade(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], given: list[str]) -> None:
        cfg = _cfg_of(ctx, rec)
        asked = [i for i in rec.get("quiz") or [] if i < len(cfg.quiz)]
        right = sum(1 for i, answer in zip(asked, given, strict=False) if cfg.quiz[i].accepts(answer))
        need = min(cfg.quiz_pass or len(asked), len(asked))
        if asked and right >= need:
            ctx.record("quiz_passed", uid, right=right, count=len(asked), attempt=rec.get("attempt_no", 1))
            self._admit(ctx, uid, st, rec, "quiz")
            return
        rec["attempts"] = int(rec.get("attempts", 0)) + 1
        ctx.record("quiz_failed", uid, right=right, count=len(asked), attempt=rec.get("attempt_no", 1))
        if rec["attempts"] >= cfg.max_attempts:
            self._block(ctx, uid, st, rec, "quiz")
            return
        _draw(ctx, uid, rec, cfg)
        head = ctx.render("quiz_failed", name=ctx.name(uid), right=right, count=len(asked))
        _tell(ctx, uid, rec, head + "\n" + self._quiz_text(ctx, rec, ""))

    # ------------------------------------------------------------ invitation

    def _try_code(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], code: str) -> None:
        cfg = _cfg_of(ctx, rec)
        if not ctx.enabled("referrals"):
            _tell(ctx, uid, rec, ctx.render("codes_off", name=ctx.name(uid)))
            return
        why = None
        owner = None
        if not valid_code(code):
            why = "malformed"
        else:
            entry = ctx.state_of("referrals").get(f"code:{code}")
            owner = entry.get("member") if isinstance(entry, dict) else None
            if not isinstance(owner, str) or not owner:
                why = "unknown"
            elif entry.get("revoked") or entry.get("active") is False:
                why = "revoked"
            elif owner == uid:
                why = "own code"
            elif int((ctx.state.get(f"code:{code}") or {}).get("uses", 0)) >= cfg.max_uses_per_code:
                why = "used up"
            else:
                why = _inviter_problem(ctx, owner)
        if why is None and owner is not None:
            uses = int((ctx.state.get(f"code:{code}") or {}).get("uses", 0))
            ctx.state.put(f"code:{code}", {"uses": uses + 1})
            rec["code"] = code
            self._admit(ctx, uid, st, rec, "code", inviter=owner)
            return
        rec["guesses"] = int(rec.get("guesses", 0)) + 1
        ctx.record("code_refused", uid, why=why, guesses=rec["guesses"])
        if rec["guesses"] >= cfg.max_code_guesses:
            self._block(ctx, uid, st, rec, "code")
            return
        _tell(ctx, uid, rec, ctx.render("code_bad", name=ctx.name(uid), left=cfg.max_code_guesses - rec["guesses"]))

    # ------------------------------------------------------------------ paid

    def _paid(self, ctx: Context, uid: str, amount: int, currency: str, source: str, *, rec_group: str | None = None) -> dict[str, Any] | None:
        """Take an applicant's payment. Returns what became of it, or None if it is not an entry fee."""
        raw = ctx.state.get(f"m:{uid}")
        gkey = rec_group or _gkey(ctx)
        if amount <= 0 or not raw or gkey not in raw.get("groups", {}):
            return None
        st = _load(ctx, uid)
        rec = st["groups"][gkey]
        cfg = _cfg_of(ctx, rec)
        if rec.get("status") != "pending" or not (cfg.mode == "paid" or (cfg.mode == "bounty" and cfg.fee > 0)):
            return None
        name = ctx.name(uid)
        fund = f"community:fund:{cfg.currency}"
        external = f"external:payments:{currency}"
        suspense = f"community:suspense:{currency}"
        held = dict(rec.get("held") or {})
        if currency != cfg.currency:
            ctx.ledger.transfer(external, suspense, amount, currency, "entry fee in the wrong currency: to refund")
            held[currency] = held.get(currency, 0) + amount
            rec["held"] = held
            ctx.record("payment", uid, amount=amount, currency=currency, outcome="wrong currency", source=source)
            _tell(ctx, uid, rec, ctx.render("pay_currency", name=name, paid=money(amount, currency),
                                            currency=cfg.currency, fee=money(cfg.fee, cfg.currency)))
            ctx.notify_admins(ctx.render("admin_held", name=name, member=_sid(uid), amount=money(amount, currency),
                                         why=ctx.render("why_currency")))
            _save(ctx, uid, st)
            if ctx.event is not None:
                ctx.suppress()
            return {"admitted": False, "held": amount, "currency": currency}
        before = held.get(currency, 0)
        total = before + amount
        if total < cfg.fee:
            ctx.ledger.transfer(external, suspense, amount, currency, "entry fee, part payment")
            held[currency] = total
            rec["held"] = held
            ctx.record("payment", uid, amount=amount, currency=currency, outcome="part", source=source)
            _tell(ctx, uid, rec, ctx.render("pay_short", name=name, paid=money(total, currency),
                                            fee=money(cfg.fee, currency), missing=money(cfg.fee - total, currency)))
            _save(ctx, uid, st)
            if ctx.event is not None:
                ctx.suppress()
            return {"admitted": False, "held": total, "currency": currency}
        excess = total - cfg.fee
        # the fee goes to the fund: this payment plus what was held before; the rest stays held
        ctx.ledger.post([(external, -amount), (suspense, excess - before), (fund, cfg.fee)], currency, "entry fee")
        held[currency] = excess
        rec["held"] = {k: v for k, v in held.items() if v}
        rec["paid"] = cfg.fee
        ctx.record("payment", uid, amount=amount, currency=currency, outcome="fee", excess=excess, source=source)
        if excess:
            ctx.notify_admins(ctx.render("admin_held", name=name, member=_sid(uid), amount=money(excess, currency),
                                         why=ctx.render("why_excess")))
        self._admit(ctx, uid, st, rec, "paid", note=ctx.render("pay_excess", excess=money(excess, currency)) if excess else "")
        if ctx.event is not None:
            ctx.suppress()
        return {"admitted": True, "fee": cfg.fee, "excess": excess, "currency": currency}

    # ---------------------------------------------------------------- bounty

    def _bounty_answer(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], text: str, *, plain: bool = False) -> None:
        cfg = _cfg_of(ctx, rec)
        number, body = (1, text) if plain else (_bounty_parts(cfg, text) or (1, text))
        if not 1 <= number <= len(cfg.bounties) or not body.strip():
            self._instruct(ctx, uid, st, rec)
            return
        question = localized(cfg.bounties[number - 1], ctx.locale)
        answer = safe_text(body, cfg.answer_limit)
        rec["bounty"] = {"n": number, "answer": answer}
        answers = {**(st.get("answers") or {}), safe_text(question, 200): answer}
        st["answers"] = dict(list(answers.items())[-_MAX_ANSWERS:])
        ctx.notify_admins(ctx.render("admin_bounty", name=ctx.name(uid), member=_sid(uid), question=safe_text(question, cfg.notice_clip),
                                     answer=safe_text(answer, cfg.notice_clip)))
        ctx.record("bounty_answer", uid, question=number)
        _tell(ctx, uid, rec, ctx.render("received"))

    # ------------------------------------------------------------ credential

    def _declare(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], text: str) -> None:
        cfg = _cfg_of(ctx, rec)
        declared = safe_text(text, cfg.answer_limit)
        if not declared:
            return
        rec["credential"] = declared
        st["answers"] = {**(st.get("answers") or {}), ctx.render("credential_label"): declared}
        ctx.notify_admins(ctx.render("admin_credential", name=ctx.name(uid), member=_sid(uid),
                                     credential=safe_text(declared, cfg.notice_clip)))
        ctx.record("credential_declared", uid)
        _tell(ctx, uid, rec, ctx.render("received"))

    # ------------------------------------------------------------- outcomes

    def _notify_application(self, ctx: Context, uid: str, rec: dict[str, Any]) -> None:
        cfg = _cfg_of(ctx, rec)
        answers = rec.get("answers") or {}
        lines = "\n".join(
            ctx.render("answer_line", question=safe_text(q, cfg.notice_clip), answer=safe_text(a, cfg.notice_clip))
            for q, a in answers.items()
        ) or ctx.render("no_answers")
        group = _group_of(ctx, rec)
        ctx.notify_admins(ctx.render("admin_application", name=ctx.name(uid), member=_sid(uid),
                                     group=group.name if group else rec["group"], answers=lines))

    def _admit(
        self,
        ctx: Context,
        uid: str,
        st: dict[str, Any],
        rec: dict[str, Any],
        via: str,
        *,
        inviter: str | None = None,
        announce: bool = True,
        note: str = "",
    ) -> None:
        rec["status"] = "admitted"
        rec["admitted_at"] = ctx.now.isoformat()
        rec["via"] = via
        if inviter is not None:
            rec["inviter"] = inviter
        rec.pop("partial", None)
        st["status"] = "admitted"
        ctx.record("admitted", uid, inviter=inviter, via=via, group=rec["group"])
        if rec.get("in"):
            if rec["group"] == ctx.group.key:
                ctx.cancel(f"deadline:{uid}")
                ctx.cancel(f"remind:{uid}")
            if announce:
                key = "bounty_won" if via == "bounty" else "passed"
                text = ctx.render(key, name=ctx.name(uid))
                ctx.send(text + ("\n" + note if note else ""), mentions=[uid], group=_other(ctx, rec))
        else:
            ctx.invite(uid, group=_other(ctx, rec))
            ctx.direct(uid, ctx.render("approved", community=ctx.community.name) + ("\n" + note if note else ""))
        _save(ctx, uid, st)

    def _block(self, ctx: Context, uid: str, st: dict[str, Any], rec: dict[str, Any], why: str) -> None:
        cfg = _cfg_of(ctx, rec)
        rec["status"] = "blocked"
        rec["blocked_until"] = (
            None if cfg.block_hours is None else (ctx.now + timedelta(hours=cfg.block_hours)).isoformat()
        )
        st["status"] = "blocked"
        ctx.record("blocked", uid, why=why, until=rec["blocked_until"])
        text = ctx.render("blocked", name=ctx.name(uid), until=_until(ctx, rec))
        if rec.get("in"):
            self._remove(ctx, uid, rec, text)
        else:
            ctx.direct(uid, text)

    def _still_blocked(self, ctx: Context, rec: dict[str, Any]) -> bool:
        """True while a block or rejection holds; once it is over, the counters start again."""
        if rec.get("status") not in ("blocked", "rejected"):
            return False
        until = rec.get("blocked_until")
        if until is None:
            return True
        if _dt(until) > ctx.now:  # type: ignore[operator]
            return True
        rec["attempts"] = 0
        rec["guesses"] = 0
        rec.pop("quiz", None)  # the next attempt draws new questions (attempt_no keeps counting)
        rec["status"] = None
        rec.pop("blocked_until", None)
        return False

    def _remove(self, ctx: Context, uid: str, rec: dict[str, Any], notice: str) -> None:
        """Remove the member from the application's group, with a notice there."""
        rec["in"] = False
        reason = ctx.render("remove_reason")
        other = _other(ctx, rec)
        if other is None:
            ctx.remove(uid, reason)
            ctx.cancel(f"deadline:{uid}")
            ctx.cancel(f"remind:{uid}")
        else:
            ctx.remove(uid, reason, group=other)
        ctx.send(notice, mentions=[uid], group=other)

    # ================================================================== jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        uid = job.payload.get("member")
        if not isinstance(uid, str):
            return
        raw = ctx.state.get(f"m:{uid}")
        rec0 = (raw or {}).get("groups", {}).get(_gkey(ctx))
        if not rec0 or rec0.get("status") != "pending" or not rec0.get("in"):
            return  # passed, decided, erased or already gone: nothing to do
        cfg: GateConfig = ctx.config
        deadline = _dt(rec0.get("deadline"))
        if deadline is None:
            return
        if job.name == "remind":
            left = max((deadline - ctx.now).total_seconds() / 3600, 0)
            ctx.send(ctx.render("reminder", name=ctx.name(uid), hours=_hours(left)), mentions=[uid])
            return
        if job.name != "deadline" or ctx.now < deadline:
            return
        st = _load(ctx, uid)
        rec = _rec(ctx, st)
        rec["status"] = "expired"
        st["status"] = "expired"
        ctx.record("removed", uid, why="deadline", mode=cfg.mode)
        self._remove(ctx, uid, rec, ctx.render("removed", name=ctx.name(uid)))
        _save(ctx, uid, st)

    # ============================================================== commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        name = command.name
        if name == "pending":
            return {"pending": self._pending(ctx)}
        if name not in self.commands:
            raise CommandError(
                Msg("gate has no command {command!r}", command=name),
                hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))),
            )
        member = str(args.get("member") or "").strip().lstrip("@")
        if not member:
            raise CommandError(Msg("gate {command} needs a member", command=name),
                               hint=Msg("give the member's platform user id"))
        group = args.get("group")
        if name == "record_payment":
            return self._record_payment(ctx, member, args, group)
        if name == "refund":
            return self._refund(ctx, member, args)
        return self._decide(ctx, name, member, group, str(args.get("reason") or ""), command.actor)

    def _decide(self, ctx: Context, verb: str, member: str, group: str | None, reason: str, actor: str) -> dict[str, Any]:
        st = _load(ctx, member)
        wanted = {
            "approve": ("pending", "expired", "blocked", "rejected", "removed"),
            "reject": ("pending", "expired", "blocked"),
            "verify": ("pending", "expired"),
            "pick": ("pending", "expired"),
        }[verb]
        recs = [
            r for r in st["groups"].values()
            if r.get("status") in wanted and (group is None or r.get("group") == group)
        ]
        if verb == "verify":
            recs = [r for r in recs if r.get("mode") == "credential" and r.get("credential")]
        if verb == "pick":
            recs = [r for r in recs if r.get("bounty")]
        if not recs:
            what = {"verify": Msg("declared credential"), "pick": Msg("bounty answer")}.get(verb, Msg("application"))
            if group:
                raise CommandError(
                    Msg("no {what} from {member} is waiting in group {group}", what=what, member=_sid(member), group=group),
                    hint=Msg("`qunyun gate pending` lists who is waiting"),
                )
            raise CommandError(
                Msg("no {what} from {member} is waiting", what=what, member=_sid(member)),
                hint=Msg("`qunyun gate pending` lists who is waiting"),
            )
        done = []
        for rec in recs:
            if rec.get("platform") != ctx.group.platform:
                raise CommandError(
                    Msg("{member} applied on {platform}, this command runs on {here}",
                        member=_sid(member), platform=rec.get("platform"), here=ctx.group.platform),
                    hint=Msg("run it in that platform's group: --group {group}", group=rec.get("group")),
                )
            if verb == "reject":
                cfg = _cfg_of(ctx, rec)
                rec["status"] = "rejected"
                rec["blocked_until"] = (
                    None if cfg.block_hours is None else (ctx.now + timedelta(hours=cfg.block_hours)).isoformat()
                )
                rec["reason"] = safe_text(reason, 500)
                st["status"] = "rejected"
                shown = safe_text(reason, 500) or ctx.render("no_reason")
                ctx.record("rejected", member, by=actor, group=rec["group"])
                ctx.direct(member, ctx.render("rejected", community=ctx.community.name, reason=shown))
                if rec.get("in"):
                    self._remove(ctx, member, rec, ctx.render("removed", name=ctx.name(member)))
                _save(ctx, member, st)
            else:
                via = {"approve": "approval", "verify": "credential", "pick": "bounty"}[verb]
                self._admit(ctx, member, st, rec, via)
            done.append(rec["group"])
        return {"member": member, "groups": done, "status": st["status"]}

    def _record_payment(self, ctx: Context, member: str, args: Mapping[str, Any], group: str | None) -> dict[str, Any]:
        amount = args.get("amount")
        if type(amount) is not int or amount <= 0:
            raise CommandError(
                Msg("amount must be a positive whole number of minor units, got {amount!r}", amount=amount),
                hint=Msg("e.g. 20000 for 200.00"),
            )
        st = _load(ctx, member)
        waiting = [
            r for r in st["groups"].values()
            if r.get("status") == "pending" and (group is None or r.get("group") == group)
        ]
        if not waiting:
            # paid before applying (or on another channel): open the application here
            target = group or ctx.group.key
            gs = next((g for g in ctx.community.groups.values() if g.key == target), None)
            cfg = gs.playbooks.get("gate") if gs is not None else None
            if gs is None or cfg is None or not (cfg.mode == "paid" or (cfg.mode == "bounty" and cfg.fee)):
                if group:
                    raise CommandError(
                        Msg("{member} has no application waiting for a fee in group {group}",
                            member=_sid(member), group=group),
                        hint=Msg("pass --group with a group whose gate takes a fee"),
                    )
                raise CommandError(
                    Msg("{member} has no application waiting for a fee", member=_sid(member)),
                    hint=Msg("pass --group with a group whose gate takes a fee"),
                )
            rec = st["groups"].setdefault(
                f"{gs.platform}:{gs.key}", {"platform": gs.platform, "group": gs.key, "in": False}
            )
            _start(ctx, st, rec, mode=cfg.mode)
            rec["status"] = "pending"
            _save(ctx, member, st)
            waiting = [rec]
        rec = waiting[0]
        cfg = _cfg_of(ctx, rec)
        currency = str(args.get("currency") or cfg.currency)
        result = self._paid(ctx, member, amount, currency, "admin", rec_group=f"{rec['platform']}:{rec['group']}")
        if result is None:
            raise CommandError(Msg("the gate of group {group} takes no fee", group=rec["group"]),
                               hint=Msg("check the group's gate mode"))
        return {"member": member, "group": rec["group"], **result}

    def _refund(self, ctx: Context, member: str, args: Mapping[str, Any]) -> dict[str, Any]:
        st = _load(ctx, member)
        amount = args.get("amount")
        currency = str(args.get("currency") or "")
        holding = [(r, c, n) for r in st["groups"].values() for c, n in (r.get("held") or {}).items() if n > 0]
        if currency:
            holding = [h for h in holding if h[1] == currency]
        if not holding:
            if currency:
                raise CommandError(Msg("nothing is held for {member} in {currency}", member=_sid(member),
                                       currency=currency))
            raise CommandError(Msg("nothing is held for {member}", member=_sid(member)))
        rec, currency, held = holding[0]
        if amount is None:
            amount = held
        if type(amount) is not int or not 0 < amount <= held:
            raise CommandError(Msg("amount must be a whole number between 1 and {held} (held for {member})",
                                   held=held, member=_sid(member)))
        ctx.ledger.transfer(f"community:suspense:{currency}", f"external:payments:{currency}", amount, currency,
                            "entry payment refunded")
        rec["held"] = {**rec["held"], currency: held - amount}
        rec["held"] = {k: v for k, v in rec["held"].items() if v}
        ctx.record("refund", member, amount=amount, currency=currency)
        _save(ctx, member, st)
        return {"member": member, "refunded": amount, "currency": currency, "held": held - amount}

    def _pending(self, ctx: Context) -> list[dict[str, Any]]:
        out = []
        for key, st in ctx.state.scan("m:"):
            uid = key[2:]
            for rec in (st.get("groups") or {}).values():
                if rec.get("status") != "pending":
                    continue
                out.append({
                    "member": uid,
                    "name": ctx.name(uid),
                    "group": rec.get("group"),
                    "platform": rec.get("platform"),
                    "mode": rec.get("mode"),
                    "since": rec.get("since"),
                    "deadline": rec.get("deadline") if rec.get("in") else None,
                    "in_group": bool(rec.get("in")),
                    "answers": rec.get("answers") or {},
                    "credential": rec.get("credential"),
                    "bounty": rec.get("bounty"),
                    "attempts": int(rec.get("attempts", 0)),
                    "held": rec.get("held") or {},
                })
        out.sort(key=lambda r: (r["since"] or "", r["member"]))
        return out

    # --------------------------------------------------------------- privacy

    def erase_member(self, ctx: Context, member: str) -> None:
        """Forget the application; money held for a refund moves to the member's own account.

        The record of whom the held money is owed to goes with the rest of
        their gate state, so the debt is kept where erasure keeps it: in the
        ledger, on the member's account (an anonymous member after erasure),
        and the admins are told the amounts (without a name).
        """
        st = ctx.state.get(f"m:{member}") or {}
        owed: dict[str, int] = {}
        for rec in (st.get("groups") or {}).values():
            for currency, amount in (rec.get("held") or {}).items():
                if isinstance(currency, str) and type(amount) is int and amount > 0:
                    owed[currency] = owed.get(currency, 0) + amount
        for currency, amount in owed.items():
            ctx.ledger.transfer(
                f"community:suspense:{currency}",
                ctx.ledger.member_account(member, currency),
                amount,
                currency,
                "entry payment held for a refund, owed to an erased member",
            )
        if owed:
            ctx.record("held_on_erase", None, amounts=owed)
            sep = "、" if ctx.locale == "zh-CN" else ", "
            ctx.notify_admins(ctx.render("admin_held_erased", amounts=sep.join(money(n, c) for c, n in owed.items())))
        super().erase_member(ctx, member)

    # -------------------------------------------------------- chat commands

    def _admin_chat(self, ctx: Context, event: Any) -> bool:
        """An admin's ``批准 @u1`` in the admins' group (or anywhere if there is none)."""
        text: str = event.text
        if not text or len(text) > 2000:
            return False
        has_admin_group = any(g.admin for g in ctx.community.groups.values())
        if has_admin_group and not ctx.group.admin:
            return False
        found = _ADMIN_COMMAND.match(text)
        if found is None or ctx.role(event.actor.id) not in ("owner", "admin"):
            return False
        verb = _ADMIN_VERBS[found.group(1).casefold()]
        words = ((found.group(2) or "") + " " + (found.group(3) or "")).split()
        if event.mentions:
            member = event.mentions[0]
            reason = " ".join(w for w in words if not w.startswith("@"))
        else:
            member = words[0].lstrip("@") if words else ""
            reason = " ".join(words[1:])
            if not member or ctx.state.get(f"m:{member}") is None:
                return False  # ordinary talk that happens to start with "approve"
        try:
            self._decide(ctx, verb, member, None, reason, event.actor.id)
        except CommandError as exc:
            ctx.send(ctx.render("not_done", error=exc.localized(ctx.locale, with_hint=False)), reply_to=event.msg_id)
            return True
        ctx.send(ctx.render(f"done_{verb}", name=ctx.name(member), member=_sid(member)), reply_to=event.msg_id)
        return True


# ------------------------------------------------------------------ helpers


def _sid(uid: str) -> str:
    """A user id as shown in a message: ids may carry bidi marks too."""
    return safe_text(uid, 64)


def _gkey(ctx: Context) -> str:
    return f"{ctx.group.platform}:{ctx.group.key}"


def _load(ctx: Context, uid: str) -> dict[str, Any]:
    """A private, complete copy of the member's gate state."""
    raw = copy.deepcopy(ctx.state.get(f"m:{uid}") or {})
    raw.setdefault("answers", {})
    raw.setdefault("status", None)
    raw.setdefault("groups", {})
    return raw


def _save(ctx: Context, uid: str, st: dict[str, Any]) -> None:
    ctx.state.put(f"m:{uid}", st)


def _rec(ctx: Context, st: dict[str, Any]) -> dict[str, Any]:
    """The member's application in this group (created empty)."""
    found: dict[str, Any] = st["groups"].setdefault(
        _gkey(ctx), {"platform": ctx.group.platform, "group": ctx.group.key, "in": False}
    )
    return found


def _start(ctx: Context, st: dict[str, Any], rec: dict[str, Any], mode: str | None = None) -> None:
    """A new application: counters, blocks and draws survive (no fresh attempts by rejoining)."""
    rec["mode"] = mode or ctx.config.mode
    rec["since"] = ctx.now.isoformat()
    rec.pop("credential", None)
    rec.pop("bounty", None)
    rec.pop("partial", None)
    rec.pop("reason", None)
    if rec["mode"] == "approval":
        rec["answers"] = {}
        st["answers"] = {}


def _group_of(ctx: Context, rec: Mapping[str, Any]) -> Any:
    return ctx.community.groups.get((rec.get("platform"), rec.get("group")))  # type: ignore[arg-type]


def _cfg_of(ctx: Context, rec: Mapping[str, Any]) -> GateConfig:
    """The gate's settings for the application's group (commands may run in another group)."""
    group = _group_of(ctx, rec)
    found = group.playbooks.get("gate") if group is not None else None
    return cast(GateConfig, found or ctx.config)


def _other(ctx: Context, rec: Mapping[str, Any]) -> str | None:
    """The application's group key if it is not the group at hand (for ``group=``)."""
    return None if rec.get("group") == ctx.group.key else str(rec.get("group"))


def _tell(ctx: Context, uid: str, rec: Mapping[str, Any], text: str) -> None:
    """In the group with an @-mention when they are in it, else by direct message."""
    if rec.get("in"):
        ctx.send(text, mentions=[uid], group=_other(ctx, rec))
    else:
        ctx.direct(uid, text)


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _hours(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _until(ctx: Context, rec: Mapping[str, Any]) -> str:
    until = _dt(rec.get("blocked_until"))
    if until is None:
        return ctx.render("blocked_forever")
    return ctx.render("blocked_until", when=until.astimezone(ctx.community.tz).strftime("%Y-%m-%d %H:%M"))


def _credential_text(ctx: Context, cfg: GateConfig) -> str:
    return localized(cfg.credential, ctx.locale) if cfg.credential else ctx.render("credential_default")


def _draw(ctx: Context, uid: str, rec: dict[str, Any], cfg: GateConfig) -> None:
    """The next attempt's questions: random, but the same for the same community, group, member and attempt."""
    attempt = int(rec.get("attempt_no", 0)) + 1
    seed_text = f"{ctx.community.id}\0{rec['platform']}\0{rec['group']}\0{uid}\0{attempt}"
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "big")
    count = min(cfg.quiz_count, len(cfg.quiz))
    rec["quiz"] = random.Random(seed).sample(range(len(cfg.quiz)), count)
    rec["attempt_no"] = attempt
    rec["partial"] = {}


def _answers(cfg: GateConfig, locale: str, given: Mapping[str, str] | list[str]) -> dict[str, str]:
    """A join request's answers as {question: answer}, bounded and cleaned."""
    questions = [localized(q, locale) for q in cfg.questions]
    pairs: list[tuple[str, str]]
    if isinstance(given, Mapping):
        pairs = [(str(k), v) for k, v in given.items()]
    else:
        pairs = [(questions[i] if i < len(questions) else f"#{i + 1}", v) for i, v in enumerate(given)]
    out: dict[str, str] = {}
    for question, answer in pairs[:_MAX_ANSWERS]:
        key = safe_text(question, 200) or "?"
        out[key] = safe_text(str(answer), cfg.answer_limit)
    return out


def _positional(given: Mapping[str, str] | list[str], n: int) -> list[str]:
    """Quiz answers from a join request: a list in order, or a dict keyed by number (else in order)."""
    if isinstance(given, Mapping):
        numbered: dict[int, str] = {}
        for k, v in given.items():
            digits = re.sub(r"\D", "", str(k))
            if digits:
                numbered[int(digits)] = v
        if numbered:
            return [numbered.get(i, "") for i in range(1, n + 1)]
        return list(given.values())[:n]
    return list(given)[:n]


_BEFORE = r"(?:(?<=\s)|(?<=^)|(?<=[,，;；]))0*{n}"
#: "1." "1、" "1:" "1)" first; "1 B" / "1B" only when no number is written that way
_STRICT = _BEFORE + r"\s*[.、:：)）]\s*"
_LOOSE = _BEFORE + r"(?:\s+|(?=[A-Za-z\u4e00-\u9fff]))"


def _numbered(text: str, n: int) -> dict[int, str]:
    """``1. B 2. 北京`` / ``1 B 2 北京`` → {1: "B", 2: "北京"}; a single question may go unnumbered."""
    if n <= 0:
        return {}
    text = unicodedata.normalize("NFKC", text[:5000]).strip()
    found: dict[int, tuple[int, int]] = {}
    for style in (_STRICT, _LOOSE):
        for k in range(1, n + 1):
            m = re.search(style.format(n=k), text)
            if m is not None:
                found[k] = (m.start(), m.end())
        if found:
            break
    if not found:
        return {1: text} if n == 1 and len(text) <= 200 else {}
    starts = sorted((s, e, k) for k, (s, e) in found.items())
    out: dict[int, str] = {}
    for i, (_, end, k) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        answer = text[end:stop].strip(" \t\n,，;；")
        if answer:
            out[k] = answer
    return out


def _keyword_pattern(words: list[str]) -> str:
    return "|".join(r"\s*".join(re.escape(part) for part in w.split()) for w in words)


def _find_code(cfg: GateConfig, text: str, *, phrase_only: bool = False) -> str | None:
    """An invite code in ``text``: after a code keyword, or (in a join request) the whole answer."""
    head = unicodedata.normalize("NFKC", text[:500])
    m = re.search(
        r"(?:" + _keyword_pattern(cfg.code_keywords) + r")\s*[:：]?\s*" + _CODE_TOKEN,
        head,
        re.IGNORECASE,
    )
    if m is not None:
        return normalize_code(m.group(1))
    if not phrase_only:
        code = normalize_code(head)
        if CODE_LENGTH <= len(code) <= MAX_CODE_LENGTH and code.isalnum() and code.isascii():
            return code
    return None


def _bounty_parts(cfg: GateConfig, text: str) -> tuple[int, str] | None:
    """``悬赏 2 我的答案`` → (2, "我的答案"); None if it does not start with a bounty keyword."""
    m = re.match(
        r"^\s*(?:" + _keyword_pattern(cfg.bounty_keywords) + r")\s*[#＃]?\s*(\d{1,3})?\s*[:：.、]?\s*(.*)$",
        text[:20_000],
        re.IGNORECASE | re.DOTALL,
    )
    if m is None:
        return None
    return (int(m.group(1)) if m.group(1) else 1, m.group(2))


def _inviter_problem(ctx: Context, inviter: str) -> str | None:
    """Why ``inviter`` may not bring someone in, or None if they are in good standing.

    Good standing: an active member of a group of this community (or someone
    we never saw join or leave — a member from before qunyun), not staff-less
    gate trouble (pending, blocked, rejected, removed in any group).
    """
    gate = ctx.state.get(f"m:{inviter}") or {}
    for rec in (gate.get("groups") or {}).values():
        if rec.get("status") in ("pending", "blocked", "rejected", "removed", "expired"):
            return f"inviter {rec.get('status')}"
    if ctx.role(inviter) in PROTECTED:
        return None
    from qunyun.store import models as m

    mem = m.table(m.Member)
    ms = m.table(m.Membership)
    grp = m.table(m.Group)
    # Context has no membership query yet (asked for); read the engine's own table, read-only.
    rows = ctx.db.execute(
        select(ms.c.status)
        .select_from(ms.join(mem, mem.c.id == ms.c.member_id).join(grp, grp.c.id == ms.c.group_id))
        .where(
            mem.c.community_id == ctx.community.id,
            mem.c.platform == ctx.group.platform,
            mem.c.user_id == inviter,
            grp.c.community_id == ctx.community.id,
        )
    ).scalars().all()
    if rows and "active" not in rows:
        return "inviter left"
    erased = ctx.db.execute(
        select(mem.c.erased).where(
            mem.c.community_id == ctx.community.id,
            mem.c.platform == ctx.group.platform,
            mem.c.user_id == inviter,
        )
    ).scalar()
    if not rows and erased is None:
        return "inviter unknown"
    if erased:
        return "inviter erased"
    return None

"""qa (问答): questions with short ids, answers, votes, best answers, nudges and a board.

A member asks with a keyword or format (``#提问 …``, ``问：…``, ``Q: …``;
optionally any message ending in ``？``/``?`` of a minimum length) and the
question gets a short id (``Q12``). Background may be posted ahead
(``#背景 …``): it is attached to the member's question of the last few hours
if there is one, else held for their next question (SPEC §4.3).

Answers are linked by replying to the question, by ``#Q12 …`` anywhere in a
message (or a bare ``Q12`` together with an @-mention of the asker), or by
``答Q12：…`` / ``answer Q12: …``. Answering one's own question does not count.

Votes are reactions with one of ``vote_emojis`` on an answer, or a ``+1``
reply to it: one per member and answer, never on one's own answer, never
from an account seen joining after the question was asked (members never seen
joining count as old members). Admins pick the best answer (``最佳 Q12 @小王``,
or reply ``最佳`` to the answer, or the ``pick`` command); the asker may accept
one (reply ``采纳``) when ``asker_can_accept`` is on. The best answer resolves
the question, earns ``points_per_best`` through the ledger and is recorded as
``best_answer``. An unanswered question is nudged once after
``nudge_after_hours``, @-mentioning experts whose ``profile`` tags appear in it
(matched with :func:`qunyun.playbooks.microphone.matching_tags`), leaving out
people the microphone already asked.

State (community-wide; the contract other playbooks read, see
``docs/playbooks/qa.md``):

- ``q:<qid>`` → ``{"asker", "group", "msg", "text", "ts", "answers":
  {msg_id: {"by", "ts", "votes"}}, "best", "status", "first_answer_ts"}``
  (plus ``"background"`` and ``"nudged"`` when set);
- ``week:<YYYY-Www>`` → ``{"answerers": {uid: score}, "askers": {uid: n},
  "resolved", "asked", "votes"}``;
- ``m:<uid>`` → ``{"asked", "answers", "best", "votes"}``;
- private bookkeeping: ``seq`` (last question number), ``qm:<msg_id>`` → qid,
  ``a:<msg_id>`` → ``{"q": qid, "voters": [uid, ...]}``, ``j:<uid>`` →
  ``{"first": iso, "left": [group keys]}`` (joins seen), ``bg:<uid>`` → held
  background, ``pending`` → ``{qid: {"s": status, "ts": iso, "g": group}}``
  (questions not yet resolved, for boards and lists).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.context import Command
from qunyun.playbooks.microphone import matching_tags
from qunyun.playbooks.profile import clean_value, directory, stored_tags

_HASH_QID = re.compile(r"#\s?Q(\d{1,9})(?![0-9])", re.IGNORECASE)
_BARE_QID = re.compile(r"(?<![0-9A-Za-z_#])Q(\d{1,9})(?![0-9A-Za-z_])", re.IGNORECASE)
_LEAD_QID = re.compile(r"#?\s?Q(\d{1,9})(?![0-9])\s*[:：,，.。\-—]?\s*", re.IGNORECASE)
_VS16 = "\ufe0f"
#: how much of a message is looked at for ids and prefixes (a pasted novel costs no more)
_SCAN = 400
#: at most this many unresolved questions are kept in the ``pending`` index
_PENDING_CAP = 1000


def _norm_emoji(value: str) -> str:
    return value.replace(_VS16, "").strip()


class QaConfig(PlaybookConfig):
    question_prefixes: list[str] = Field(
        default_factory=lambda: ["#提问", "#问题", "提问：", "提问:", "问：", "问:", "Q：", "Q:", "#question", "#ask"],
        description="A message starting with one of these (case-insensitive) is a question.",
    )
    question_mark_min_length: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description=(
            "If set, any message of at least this many characters (spaces not counted) ending in ？ or ? is also "
            "a question. Off (null) by default: most such messages are chat, not questions for the board."
        ),
    )
    min_question_length: int = Field(
        default=4, ge=1, le=200, description="Characters (spaces not counted) a question needs after its prefix."
    )
    max_question_chars: int = Field(
        default=500, ge=20, le=5000, description="Question and background texts are clipped to this many characters."
    )
    background_prefixes: list[str] = Field(
        default_factory=lambda: ["#背景", "背景：", "背景:", "#background"],
        description="A message starting with one of these is background for the member's question.",
    )
    background_attach_hours: float = Field(
        default=2,
        ge=0,
        le=168,
        description="Background attaches to the member's latest question if it was asked this recently and is unresolved.",
    )
    background_hold_days: float = Field(
        default=7,
        gt=0,
        le=60,
        description="Otherwise it is held this long and attached to the member's next question (weekly Q&A slots).",
    )
    answer_words: list[str] = Field(
        default_factory=lambda: ["答", "回答", "answer", "A"],
        description="One of these followed by a question id (答Q12：…, answer Q12: …) answers that question.",
    )
    min_answer_length: int = Field(
        default=2, ge=1, le=200, description="Characters (spaces not counted) an answer needs to count."
    )
    vote_emojis: list[str] = Field(
        default_factory=lambda: ["👍", "❤️", "🔥", "💯"],
        description="A reaction with one of these on an answer is a vote (variation selectors ignored).",
    )
    vote_words: list[str] = Field(
        default_factory=lambda: ["+1", "＋1", "👍", "赞", "顶"],
        description="A reply to an answer that is exactly one of these is a vote.",
    )
    pick_words: list[str] = Field(
        default_factory=lambda: ["最佳", "best"],
        description="An admin's 最佳 Q12 @someone, or a reply that is exactly one of these to an answer, picks the best answer.",
    )
    accept_words: list[str] = Field(
        default_factory=lambda: ["采纳", "accept"],
        description="The asker's reply that is exactly one of these to an answer accepts it (see asker_can_accept).",
    )
    asker_can_accept: bool = Field(
        default=True, description="The asker may accept an answer as the best one, like an admin pick."
    )
    points_per_answer: int = Field(
        default=2, ge=0, le=100_000, description="Points for answering a question (once per member and question)."
    )
    points_per_best: int = Field(default=20, ge=0, le=1_000_000, description="Points for the best answer.")
    best_bonus: int = Field(
        default=5, ge=0, le=1000, description="Added to the answerer's weekly score for each best answer (a vote is 1)."
    )
    confirm_questions: bool = Field(default=True, description="Reply with the question's id when one is recorded.")
    nudge_after_hours: float | None = Field(
        default=12, gt=0, le=720, description="Nudge a question with no answer after this many hours; null: never."
    )
    nudge_experts: int = Field(
        default=3, ge=0, le=10, description="At most this many experts (profile tags found in the question) are @-mentioned in a nudge."
    )
    min_tag_length: int = Field(
        default=2, ge=1, le=20, description="Profile tags shorter than this are not matched when looking for experts."
    )
    board_keywords: list[str] = Field(
        default_factory=lambda: ["问答榜", "qa board"],
        description="A message that is exactly one of these shows this week's Q&A board.",
    )
    list_keywords: list[str] = Field(
        default_factory=lambda: ["待答问题", "open questions"],
        description="A message that is exactly one of these lists the questions still waiting for an answer.",
    )
    board_size: int = Field(default=10, ge=1, le=50, description="Rows on the board and in the list.")
    open_days: int = Field(
        default=30, ge=1, le=365, description="Unresolved questions older than this leave the board counts and lists."
    )

    @field_validator(
        "question_prefixes", "background_prefixes", "answer_words", "vote_emojis", "vote_words", "pick_words",
        "accept_words", "board_keywords", "list_keywords",
    )
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        if any(not w.strip() for w in value):
            raise ValueError("entries must be non-empty texts")
        return value

    @field_validator("question_prefixes", "vote_emojis", "pick_words")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one entry")
        return value


def iso_week(day: date) -> str:
    """``YYYY-Www`` of a local day (ISO week)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _size(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def _after(text: str, words: list[str]) -> str | None:
    """What follows the longest of ``words`` that ``text`` starts with (case-insensitive), or None."""
    best: tuple[int, str] | None = None
    for w in words:
        k = w.strip()
        if text[: len(k)].casefold() != k.casefold() or (best is not None and len(k) <= best[0]):
            continue
        if _word_char(k[-1]) and _word_char(text[len(k) : len(k) + 1]):
            continue  # "#ask" does not start "#asking", "A" does not start "Anyone"
        best = (len(k), text[len(k) :])
    return None if best is None else best[1]


def _word_char(c: str) -> bool:
    return len(c) == 1 and c.isascii() and (c.isalnum() or c == "_")


def _exact(low: str, words: list[str]) -> bool:
    return any(low == w.casefold().strip() for w in words)


def _blank_week() -> dict[str, Any]:
    return {"answerers": {}, "askers": {}, "resolved": 0, "asked": 0, "votes": 0}


def _blank_member() -> dict[str, Any]:
    return {"asked": 0, "answers": 0, "best": 0, "votes": 0}


class Qa(Playbook):
    id = "qa"
    version = "1"
    config_model = QaConfig
    handles = frozenset({"message", "reaction", "member_joined", "member_left"})
    emits = frozenset({"send"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "问答：提问编号、回答、投票、最佳答案与积分，无人回答时提醒并 @ 懂行的人，每周问答榜。",
        "en": "Q&A: numbered questions, answers, votes, best answers with points, nudges to experts, a weekly board.",
    }
    commands: ClassVar[dict[str, str]] = {
        "pick": "Pick a question's best answer: question=Q12 and answer=<msg id> or member=<user id>.",
        "board": "This week's Q&A board (or week=YYYY-Www): top answerers and open questions.",
        "questions": "List questions: status=open|answered|resolved|all (default open), limit=N.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "asked": {
            "zh-CN": "📌 {name} 的问题已记为 {qid}。回答请直接回复这条问题，或发送「答{qid}：你的回答」。",
            "en": "📌 {name}, your question is {qid}. Answer it by replying to it, or with \"answer {qid}: …\".",
        },
        "asked_with_background": {
            "zh-CN": "📌 {name} 的问题已记为 {qid}（已附上你之前发的背景）。回答请回复这条问题，或发送「答{qid}：…」。",
            "en": "📌 {name}, your question is {qid} (with the background you posted). Reply to it or send \"answer {qid}: …\".",
        },
        "background_attached": {
            "zh-CN": "📎 已把背景补充到 {qid}。",
            "en": "📎 Background added to {qid}.",
        },
        "background_held": {
            "zh-CN": "📎 背景已收到，会附在 {name} 接下来提的问题上（{days} 天内有效）。",
            "en": "📎 Got the background, {name}. It will go with your next question (kept for {days} days).",
        },
        "best": {
            "zh-CN": "🏆 {qid} 的最佳答案来自 {name}，+{points} 积分！感谢分享。",
            "en": "🏆 Best answer to {qid}: {name}, +{points} points. Thank you!",
        },
        "accepted": {
            "zh-CN": "🏆 提问者采纳了 {name} 对 {qid} 的回答，+{points} 积分！",
            "en": "🏆 The asker accepted {name}'s answer to {qid}, +{points} points!",
        },
        "nudge": {
            "zh-CN": "⏰ {qid} 已经 {hours} 小时没有人回答了：「{text}」知道的朋友帮帮忙？",
            "en": "⏰ {qid} has waited {hours} hours without an answer: \"{text}\" Can anyone help?",
        },
        "nudge_experts": {
            "zh-CN": "⏰ {qid} 已经 {hours} 小时没有人回答了：「{text}」{experts} 这好像是你们熟悉的（{topics}），方便的话帮忙看看？",
            "en": "⏰ {qid} has waited {hours} hours: \"{text}\" {experts}, this looks like your area ({topics}) — could you help?",
        },
        "board": {
            "zh-CN": "🏅 本周（{week}）问答榜：\n{lines}\n待回答 {open} 个，待选最佳 {answered} 个。",
            "en": "🏅 Q&A board this week ({week}):\n{lines}\n{open} waiting for an answer, {answered} waiting for a best answer.",
        },
        "board_line": {
            "zh-CN": "{rank}. {name} · {score} 分",
            "en": "{rank}. {name} · {score} points",
        },
        "board_empty": {
            "zh-CN": "🏅 本周（{week}）还没有人回答问题。待回答 {open} 个，快来帮忙吧！",
            "en": "🏅 Nobody has answered a question this week ({week}) yet. {open} waiting for an answer — jump in!",
        },
        "list": {
            "zh-CN": "❓ 等待回答的问题（{count} 个）：\n{lines}",
            "en": "❓ Questions waiting for an answer ({count}):\n{lines}",
        },
        "list_line": {
            "zh-CN": "{qid} · {name}：{text}",
            "en": "{qid} · {name}: {text}",
        },
        "list_empty": {
            "zh-CN": "👏 目前没有等待回答的问题。",
            "en": "👏 No questions are waiting for an answer.",
        },
        "pick_usage": {
            "zh-CN": "用法：「最佳 Q12 @回答者」，或直接回复那条回答「最佳」。",
            "en": "Usage: \"best Q12 @answerer\", or reply \"best\" to the answer.",
        },
        "pick_no_question": {
            "zh-CN": "找不到问题 {qid}。",
            "en": "There is no question {qid}.",
        },
        "pick_no_answer": {
            "zh-CN": "{name} 还没有回答 {qid}。",
            "en": "{name} has not answered {qid}.",
        },
        "pick_resolved": {
            "zh-CN": "{qid} 已经选出最佳答案了。",
            "en": "{qid} already has a best answer.",
        },
        "pick_own": {
            "zh-CN": "不能把自己的回答选为最佳答案，请让其他管理员来选。",
            "en": "You cannot pick your own answer; ask another admin.",
        },
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        if event.type == "member_joined":
            self._joined(ctx, event)
        elif event.type == "member_left":
            self._left(ctx, event)
        elif event.type == "reaction":
            cfg: QaConfig = ctx.config
            if _norm_emoji(event.emoji) in {_norm_emoji(e) for e in cfg.vote_emojis}:
                self._vote(ctx, event.target, event.actor.id, event.ts)
        elif event.type == "message":
            self._message(ctx, event)

    def _joined(self, ctx: Context, event: Any) -> None:
        key = f"j:{event.actor.id}"
        seen = ctx.state.get(key)
        if seen is None:
            ctx.state.put(key, {"first": event.ts.isoformat(), "left": []})
        elif ctx.group.key in (seen.get("left") or ()):
            ctx.state.put(key, {**seen, "left": [g for g in seen["left"] if g != ctx.group.key]})

    def _left(self, ctx: Context, event: Any) -> None:
        key = f"j:{event.actor.id}"
        seen = ctx.state.get(key)
        if seen is not None and ctx.group.key not in (seen.get("left") or ()):
            ctx.state.put(key, {**seen, "left": [*(seen.get("left") or []), ctx.group.key]})
        # never seen joining: an old member; nothing to keep about their leaving

    def _message(self, ctx: Context, event: Any) -> None:
        cfg: QaConfig = ctx.config
        raw: str = event.text
        if not raw or event.content_type not in ("text", "image", "link", "file"):
            return
        head = raw[:_SCAN].strip()
        if not head:
            return
        low = head.casefold()
        uid = event.actor.id
        if _exact(low, cfg.board_keywords):
            self._board(ctx)
            return
        if _exact(low, cfg.list_keywords):
            self._list(ctx)
            return
        if event.reply_to and self._reply_to_answer(ctx, cfg, event, low):
            return
        rest = _after(head, cfg.pick_words)
        if rest is not None and ctx.role(uid) in ("owner", "admin"):
            rest = rest.strip()
            found = _LEAD_QID.match(rest)
            if found is not None or not rest:
                self._chat_pick(ctx, event, f"Q{int(found.group(1))}" if found else None)
                return
        rest = _after(raw.lstrip(), cfg.question_prefixes)
        if rest is not None:
            self._ask(ctx, cfg, event, rest)
            return
        rest = _after(raw.lstrip(), cfg.background_prefixes)
        if rest is not None:
            self._background(ctx, cfg, event, rest)
            return
        if event.reply_to:
            qid = ctx.state.get(f"qm:{event.reply_to}")
            if qid is not None:
                if not _exact(low, cfg.vote_words):
                    self._answer(ctx, cfg, event, qid, head)
                return
        for word in cfg.answer_words:
            rest = _after(head, [word])
            found = _LEAD_QID.match(rest.lstrip()) if rest is not None else None
            if found is not None:
                self._answer(ctx, cfg, event, f"Q{int(found.group(1))}", head)
                return
        found = _HASH_QID.search(head)
        if found is not None:
            self._answer(ctx, cfg, event, f"Q{int(found.group(1))}", head)
            return
        if event.mentions:
            for bare in islice(_BARE_QID.finditer(head), 5):  # a few ids, not a hundred reads
                qid = f"Q{int(bare.group(1))}"
                q = ctx.state.get(f"q:{qid}")
                if q is not None and q.get("asker") in event.mentions:
                    self._answer(ctx, cfg, event, qid, head)
                    return
        if cfg.question_mark_min_length is not None and not event.reply_to:
            body = raw.rstrip()
            if body.endswith(("?", "？")) and _size(body[: cfg.max_question_chars * 4]) >= cfg.question_mark_min_length:
                self._ask(ctx, cfg, event, raw)

    # -------------------------------------------------------------- questions

    def _ask(self, ctx: Context, cfg: QaConfig, event: Any, body: str) -> None:
        text = clean_value(body[: cfg.max_question_chars * 4].strip(" \t:：,，-—"), cfg.max_question_chars)
        if _size(text) < cfg.min_question_length:
            return
        uid = event.actor.id
        n = int(ctx.state.get("seq") or 0) + 1
        ctx.state.put("seq", n)
        qid = f"Q{n}"
        ts = event.ts
        q: dict[str, Any] = {
            "asker": uid,
            "group": ctx.group.key,
            "msg": event.msg_id,
            "text": text,
            "ts": ts.isoformat(),
            "answers": {},
            "best": None,
            "status": "open",
            "first_answer_ts": None,
        }
        held = ctx.state.get(f"bg:{uid}")
        if held is not None:
            ctx.state.delete(f"bg:{uid}")
            if datetime.fromisoformat(held["ts"]) + timedelta(days=cfg.background_hold_days) >= ts:
                q["background"] = held["text"]
            else:
                held = None
        ctx.state.put(f"q:{qid}", q)
        ctx.state.put(f"qm:{event.msg_id}", qid)
        self._member(ctx, uid, asked=1)
        week = iso_week(ctx.local_day(ts))
        self._week(ctx, week, lambda w: w.update(
            asked=w["asked"] + 1, askers={**w["askers"], uid: int(w["askers"].get(uid, 0)) + 1}
        ))
        self._pending(ctx, qid, "open", q["ts"], ctx.group.key)
        if cfg.nudge_after_hours is not None:
            ctx.schedule("nudge", at=ts + timedelta(hours=cfg.nudge_after_hours), payload={"q": qid}, key=f"nudge:{qid}")
        if cfg.confirm_questions:
            ctx.send(
                ctx.render("asked_with_background" if held else "asked", name=ctx.name(uid), qid=qid),
                mentions=[uid],
                reply_to=event.msg_id,
            )

    def _background(self, ctx: Context, cfg: QaConfig, event: Any, body: str) -> None:
        uid = event.actor.id
        body = body[: cfg.max_question_chars * 4].strip(" \t:：,，-—")
        target = None
        lead = _LEAD_QID.match(body)
        if lead is not None:
            qid = f"Q{int(lead.group(1))}"
            q = ctx.state.get(f"q:{qid}")
            if q is not None and q.get("asker") == uid:
                target = qid
                body = body[lead.end() :]
        text = clean_value(body, cfg.max_question_chars)
        if not text:
            return
        if target is None:
            target = self._latest_question(ctx, cfg, uid, event.ts)
        if target is not None:
            key = f"q:{target}"
            q = dict(ctx.state.get(key))
            before = q.get("background")
            q["background"] = clip(f"{before}\n{text}" if before else text, cfg.max_question_chars)
            ctx.state.put(key, q)
            ctx.send(ctx.render("background_attached", qid=target), mentions=[uid], reply_to=event.msg_id)
            return
        ctx.state.put(f"bg:{uid}", {"text": text, "ts": event.ts.isoformat()})
        days = f"{cfg.background_hold_days:g}"
        ctx.send(ctx.render("background_held", name=ctx.name(uid), days=days), mentions=[uid], reply_to=event.msg_id)

    def _latest_question(self, ctx: Context, cfg: QaConfig, uid: str, ts: datetime) -> str | None:
        """The member's newest unresolved question asked within ``background_attach_hours``."""
        if cfg.background_attach_hours <= 0:
            return None
        since = ts - timedelta(hours=cfg.background_attach_hours)
        best = None
        for qid, entry in (ctx.state.get("pending") or {}).items():
            if datetime.fromisoformat(entry["ts"]) < since:
                continue
            q = ctx.state.get(f"q:{qid}")
            mine = q is not None and q.get("asker") == uid and q.get("status") != "resolved"
            if mine and (best is None or int(qid[1:]) > int(best[1:])):
                best = qid
        return best

    # ---------------------------------------------------------------- answers

    def _answer(self, ctx: Context, cfg: QaConfig, event: Any, qid: str, text: str) -> None:
        key = f"q:{qid}"
        q = ctx.state.get(key)
        uid = event.actor.id
        if q is None or q.get("asker") == uid:
            return  # unknown question, or the asker talking about their own: not an answer
        if _size(text) < cfg.min_answer_length or ctx.state.get(f"a:{event.msg_id}") is not None:
            return
        q = dict(q)
        answers = dict(q.get("answers") or {})
        first_by_them = not any(a.get("by") == uid for a in answers.values())
        ts = event.ts.isoformat()
        answers[event.msg_id] = {"by": uid, "ts": ts, "votes": 0}
        q["answers"] = answers
        if q.get("first_answer_ts") is None:
            q["first_answer_ts"] = ts
        if q.get("status") == "open":
            q["status"] = "answered"
            self._pending(ctx, qid, "answered")
            if q.get("group") == ctx.group.key:
                ctx.cancel(f"nudge:{qid}")
        ctx.state.put(key, q)
        ctx.state.put(f"a:{event.msg_id}", {"q": qid, "voters": []})
        if not first_by_them:
            return
        self._member(ctx, uid, answers=1)
        week = iso_week(ctx.local_day(event.ts))
        if self._week_open(ctx, week):
            self._week(ctx, week, lambda w: w.update(
                answerers={**w["answerers"], uid: int(w["answerers"].get(uid, 0))}
            ))
        if cfg.points_per_answer:
            ctx.ledger.award_points(uid, cfg.points_per_answer, "qa:answer")
            ctx.count("points", cfg.points_per_answer, member=uid)

    def _reply_to_answer(self, ctx: Context, cfg: QaConfig, event: Any, low: str) -> bool:
        """A vote, pick or accept given as a reply to an answer; True if handled."""
        link = ctx.state.get(f"a:{event.reply_to}")
        if link is None:
            return False
        uid = event.actor.id
        if _exact(low, cfg.vote_words):
            self._vote(ctx, event.reply_to, uid, event.ts)
            return True
        qid = link["q"]
        if _exact(low, cfg.pick_words) and ctx.role(uid) in ("owner", "admin"):
            self._try_pick(ctx, event, qid, event.reply_to, how="admin")
            return True
        if _exact(low, cfg.accept_words) and cfg.asker_can_accept:
            q = ctx.state.get(f"q:{qid}") or {}
            if q.get("asker") == uid:
                self._try_pick(ctx, event, qid, event.reply_to, how="asker")
                return True
        return False

    # ------------------------------------------------------------------ votes

    def _vote(self, ctx: Context, answer_msg: str, voter: str, ts: datetime) -> None:
        link_key = f"a:{answer_msg}"
        link = ctx.state.get(link_key)
        if link is None or voter in link.get("voters", ()):
            return  # not an answer, or this member already voted for it
        qid = link["q"]
        q = ctx.state.get(f"q:{qid}")
        if q is None:
            return
        answer = (q.get("answers") or {}).get(answer_msg)
        if answer is None or answer.get("by") == voter:
            return  # no self-votes
        seen = ctx.state.get(f"j:{voter}")
        if seen is not None and datetime.fromisoformat(seen["first"]) > datetime.fromisoformat(q["ts"]):
            return  # joined after the question was asked: not a voter for it
        ctx.state.put(link_key, {**link, "voters": [*link.get("voters", []), voter]})
        q = dict(q)
        answers = dict(q["answers"])
        answers[answer_msg] = {**answer, "votes": int(answer.get("votes", 0)) + 1}
        q["answers"] = answers
        ctx.state.put(f"q:{qid}", q)
        by = answer.get("by")
        if by is None:
            return  # the answerer was erased: the count stays, nobody is credited
        self._member(ctx, by, votes=1)
        week = iso_week(ctx.local_day(datetime.fromisoformat(answer["ts"])))
        if iso_week(ctx.local_day(ts)) == week and self._week_open(ctx, week):
            self._week(ctx, week, lambda w: w.update(
                votes=w["votes"] + 1, answerers={**w["answerers"], by: int(w["answerers"].get(by, 0)) + 1}
            ))

    # ----------------------------------------------------------- best answers

    def _chat_pick(self, ctx: Context, event: Any, qid: str | None) -> None:
        """``最佳 Q12 @someone`` typed by an admin."""
        uid = event.actor.id
        targets = [m for m in event.mentions if m != uid] or list(event.mentions)
        if qid is None or len(targets) != 1:
            ctx.send(ctx.render("pick_usage"), reply_to=event.msg_id)
            return
        q = ctx.state.get(f"q:{qid}")
        if q is None:
            ctx.send(ctx.render("pick_no_question", qid=qid), reply_to=event.msg_id)
            return
        msg = self._answer_of(q, targets[0])
        if msg is None:
            ctx.send(ctx.render("pick_no_answer", qid=qid, name=ctx.name(targets[0])), reply_to=event.msg_id)
            return
        self._try_pick(ctx, event, qid, msg, how="admin")

    @staticmethod
    def _answer_of(q: dict[str, Any], member: str) -> str | None:
        """The member's best-voted answer to ``q`` (the earliest on a tie)."""
        theirs = [(-int(a.get("votes", 0)), a.get("ts", ""), msg) for msg, a in (q.get("answers") or {}).items()
                  if a.get("by") == member]
        return min(theirs)[2] if theirs else None

    def _try_pick(self, ctx: Context, event: Any, qid: str, msg: str, *, how: str) -> None:
        q = ctx.state.get(f"q:{qid}")
        if q is None:
            return
        if q.get("status") == "resolved":
            ctx.send(ctx.render("pick_resolved", qid=qid), reply_to=event.msg_id)
            return
        answer = (q.get("answers") or {}).get(msg)
        if answer is None or answer.get("by") is None:
            return
        if answer["by"] == event.actor.id:
            ctx.send(ctx.render("pick_own"), reply_to=event.msg_id)
            return
        self._resolve(ctx, qid, q, msg, how=how, when=event.ts)

    def _resolve(self, ctx: Context, qid: str, q: dict[str, Any], msg: str, *, how: str, when: datetime) -> str:
        cfg: QaConfig = ctx.config
        by = q["answers"][msg]["by"]
        ctx.state.put(f"q:{qid}", {**q, "best": msg, "status": "resolved"})
        self._pending(ctx, qid, None)
        self._member(ctx, by, best=1)
        week = iso_week(ctx.local_day(when))
        if self._week_open(ctx, week):
            self._week(ctx, week, lambda w: w.update(
                resolved=w["resolved"] + 1,
                answerers={**w["answerers"], by: int(w["answerers"].get(by, 0)) + cfg.best_bonus},
            ))
        if cfg.points_per_best:
            ctx.ledger.award_points(by, cfg.points_per_best, "qa:best")
            ctx.count("points", cfg.points_per_best, member=by)
        ctx.record("best_answer", by, question=qid, answer=msg, week=week, how=how)
        ctx.send(
            ctx.render("accepted" if how == "asker" else "best", qid=qid, name=ctx.name(by), points=cfg.points_per_best),
            mentions=[by],
            reply_to=msg,
            group=self._home(ctx, q),
        )
        return week

    # ------------------------------------------------------------------ nudge

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "nudge":
            return
        cfg: QaConfig = ctx.config
        qid = str(job.payload.get("q", ""))
        key = f"q:{qid}"
        q = ctx.state.get(key)
        if q is None or q.get("status") != "open" or q.get("answers") or q.get("nudged"):
            return  # answered (or resolved, or erased, or already nudged): nothing to say
        ctx.state.put(key, {**q, "nudged": True})
        asked = datetime.fromisoformat(q["ts"])
        hours = max(1, round((ctx.now - asked).total_seconds() / 3600))
        snippet = clip(q.get("text") or "", 80)
        experts = self._experts(ctx, cfg, q) if cfg.nudge_experts else []
        if experts:
            sep = "、" if ctx.locale == "zh-CN" else ", "
            topics = sorted({t for _, tags in experts for t in tags})
            chosen = [u for u, _ in experts]
            text = ctx.render(
                "nudge_experts", qid=qid, hours=hours, text=snippet,
                experts=" ".join(f"@{ctx.name(u)}" for u in chosen), topics=sep.join(topics[:5]),
            )
            ctx.send(text, mentions=chosen, reply_to=q.get("msg"))
            for uid, tags in experts:
                ctx.record("nudged", uid, question=qid, tags=sorted(tags))
        else:
            ctx.send(ctx.render("nudge", qid=qid, hours=hours, text=snippet), reply_to=q.get("msg"))

    def _experts(self, ctx: Context, cfg: QaConfig, q: dict[str, Any]) -> list[tuple[str, set[str]]]:
        """Up to ``nudge_experts`` (uid, matched tags) whose profile tags appear in the question."""
        if not ctx.enabled("profile"):
            return []
        asker = q.get("asker")
        by_tag: dict[str, list[tuple[str, bool]]] = {}
        for uid, profile in directory(ctx):
            if uid == asker or profile.get("opt_out") or profile.get("sharing") == "admins":
                continue
            for tag in stored_tags(profile):
                if ":" in tag or len(tag) < cfg.min_tag_length:
                    continue  # prefixed tags (city:上海) are not expertise
                by_tag.setdefault(tag, []).append((uid, bool(profile.get("verified"))))
        if not by_tag:
            return []
        subject = f"{q.get('text') or ''} {q.get('background') or ''}"
        hits: dict[str, set[str]] = {}
        verified: dict[str, bool] = {}
        for tag in matching_tags(subject, set(by_tag)):
            for uid, ver in by_tag[tag]:
                hits.setdefault(uid, set()).add(tag)
                verified[uid] = ver
        mic_day = ctx.local_day(datetime.fromisoformat(q["ts"])).isoformat()
        mic = ctx.state_of("microphone") if ctx.enabled("microphone") else None
        chosen = []
        for uid in sorted(hits, key=lambda u: (-len(hits[u]), not verified[u], u)):
            seen = ctx.state.get(f"j:{uid}") or {}
            if q.get("group") in (seen.get("left") or ()):
                continue  # left the question's group
            if mic is not None and self._mic_asked(mic.get(f"m:{uid}"), q, mic_day):
                continue
            chosen.append((uid, hits[uid]))
            if len(chosen) >= cfg.nudge_experts:
                break
        return chosen

    @staticmethod
    def _mic_asked(state: Any, q: dict[str, Any], day: str) -> bool:
        """Whether the microphone already asked this member about this question.

        The microphone keeps the last day it asked someone (``asked``); if it
        also keeps the questions (``asked_for``: message ids), that is exact.
        """
        if not isinstance(state, dict):
            return False
        asked_for = state.get("asked_for")
        if isinstance(asked_for, list):
            return q.get("msg") in asked_for
        return bool(state.get("asked")) and str(state.get("asked")) >= day

    # ----------------------------------------------------------------- boards

    def _board(self, ctx: Context) -> None:
        cfg: QaConfig = ctx.config
        data = self.board_data(ctx, iso_week(ctx.today))
        rows = data["answerers"][: cfg.board_size]
        if not rows:
            ctx.send(ctx.render("board_empty", week=data["week"], open=data["open"]))
            return
        lines = "\n".join(
            ctx.render("board_line", rank=i + 1, name=ctx.name(r["member"]), score=r["score"]) for i, r in enumerate(rows)
        )
        ctx.send(ctx.render("board", week=data["week"], lines=lines, open=data["open"], answered=data["answered"]))

    def board_data(self, ctx: Context, week: str) -> dict[str, Any]:
        """The week's answerers by score (ties by user id) and the counts of unresolved questions."""
        w = ctx.state.get(f"week:{week}") or _blank_week()
        rows = sorted(w["answerers"].items(), key=lambda kv: (-int(kv[1]), kv[0]))
        counts = {"open": 0, "answered": 0}
        for _, entry in self._live_pending(ctx):
            counts[entry["s"]] = counts.get(entry["s"], 0) + 1
        return {
            "week": week,
            "answerers": [{"member": u, "score": int(s)} for u, s in rows],
            "asked": int(w["asked"]),
            "resolved": int(w["resolved"]),
            "votes": int(w["votes"]),
            "open": counts["open"],
            "answered": counts["answered"],
        }

    def _live_pending(self, ctx: Context) -> list[tuple[str, dict[str, Any]]]:
        cfg: QaConfig = ctx.config
        since = ctx.now - timedelta(days=cfg.open_days)
        items = [(qid, e) for qid, e in (ctx.state.get("pending") or {}).items()
                 if datetime.fromisoformat(e["ts"]) >= since]
        return sorted(items, key=lambda kv: int(kv[0][1:]))

    def _list(self, ctx: Context) -> None:
        cfg: QaConfig = ctx.config
        waiting = [qid for qid, e in self._live_pending(ctx) if e["s"] == "open"]
        if not waiting:
            ctx.send(ctx.render("list_empty"))
            return
        lines = []
        for qid in waiting[-cfg.board_size :]:
            q = ctx.state.get(f"q:{qid}") or {}
            asker = q.get("asker")
            name = ctx.name(asker) if asker else "—"
            lines.append(ctx.render("list_line", qid=qid, name=name, text=clip(q.get("text") or "", 40)))
        ctx.send(ctx.render("list", count=len(waiting), lines="\n".join(lines)))

    # --------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        if command.name == "board":
            week = args.get("week") or iso_week(ctx.today)
            if not isinstance(week, str) or not re.fullmatch(r"\d{4}-W\d{2}", week):
                raise CommandError(Msg("week must look like 2026-W45, not {week!r}", week=week))
            return self.board_data(ctx, week)
        if command.name == "questions":
            return self._questions(ctx, args)
        if command.name == "pick":
            return self._command_pick(ctx, args)
        raise CommandError(Msg("qa has no command {command!r}", command=command.name),
                           hint=Msg("commands: {commands}", commands=", ".join(sorted(self.commands))))

    def _questions(self, ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        status = args.get("status", "open")
        if status not in ("open", "answered", "resolved", "all"):
            raise CommandError(Msg("status must be open, answered, resolved or all, not {status!r}", status=status))
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise CommandError(Msg("limit must be a whole number from 1 to 1000"))
        if status in ("open", "answered"):
            ids = [qid for qid, e in self._live_pending(ctx) if e["s"] == status]
            found = [(qid, ctx.state.get(f"q:{qid}")) for qid in ids]
        else:
            found = [(k[2:], v) for k, v in ctx.state.scan("q:") if status == "all" or v.get("status") == status]
            found.sort(key=lambda kv: int(kv[0][1:]))
        rows = [
            {
                "id": qid,
                "status": q.get("status"),
                "asker": q.get("asker"),
                "group": q.get("group"),
                "ts": q.get("ts"),
                "text": q.get("text"),
                "answers": len(q.get("answers") or {}),
                "best": q.get("best"),
            }
            for qid, q in found
            if q is not None
        ]
        return {"status": status, "count": len(rows), "questions": rows[-limit:]}

    def _command_pick(self, ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        raw = args.get("question")
        lead = _LEAD_QID.fullmatch(raw.strip()) if isinstance(raw, str) else None
        if lead is None:
            raise CommandError(Msg("pick needs question (an id like Q12)"),
                               hint=Msg("e.g. {example}", example='{"question": "Q12", "member": "u-17"}'))
        qid = f"Q{int(lead.group(1))}"
        q = ctx.state.get(f"q:{qid}")
        if q is None:
            raise CommandError(Msg("there is no question {question}", question=qid),
                               hint=Msg("list them with the questions command"))
        if q.get("status") == "resolved":
            raise CommandError(Msg("{question} already has a best answer ({answer})", question=qid, answer=q.get("best")))
        msg = args.get("answer")
        member = args.get("member")
        if isinstance(msg, str) and msg:
            if msg not in (q.get("answers") or {}):
                raise CommandError(Msg("{answer!r} is not an answer to {question}", answer=msg, question=qid),
                                   hint=Msg("answers: {answers}", answers=", ".join(q.get("answers") or {})))
        elif isinstance(member, str) and member:
            msg = self._answer_of(q, member)
            if msg is None:
                raise CommandError(Msg("{member} has not answered {question}", member=member, question=qid))
        else:
            raise CommandError(Msg("pick needs answer (a message id) or member (a user id)"))
        by = q["answers"][msg].get("by")
        if by is None:
            raise CommandError(Msg("the author of {answer!r} was erased; pick another answer", answer=msg))
        week = self._resolve(ctx, qid, q, msg, how="command", when=ctx.now)
        return {"question": qid, "answer": msg, "member": by, "week": week}

    # ---------------------------------------------------------------- helpers

    def _member(self, ctx: Context, uid: str, **inc: int) -> None:
        key = f"m:{uid}"
        mine = {**_blank_member(), **(ctx.state.get(key) or {})}
        for k, n in inc.items():
            mine[k] = int(mine.get(k, 0)) + n
        ctx.state.put(key, mine)

    def _week(self, ctx: Context, week: str, change: Any) -> None:
        key = f"week:{week}"
        w = {**_blank_week(), **(ctx.state.get(key) or {})}
        change(w)
        ctx.state.put(key, w)

    @staticmethod
    def _home(ctx: Context, q: dict[str, Any]) -> str | None:
        """The question's group, if it is still configured on this platform (else: here)."""
        key = q.get("group")
        ok = any(g.key == key and g.platform == ctx.group.platform for g in ctx.community.groups.values())
        return key if ok else None

    @staticmethod
    def _week_open(ctx: Context, week: str) -> bool:
        """A week is closed once the fund has paid its awards (``fund`` state ``award:<week>``)."""
        return ctx.state_of("fund").get(f"award:{week}") is None

    def _pending(self, ctx: Context, qid: str, status: str | None, ts: str | None = None,
                 group: str | None = None) -> None:
        cfg: QaConfig = ctx.config
        pending = dict(ctx.state.get("pending") or {})
        if status is None:
            if qid not in pending:
                return
            pending.pop(qid)
        elif qid in pending:
            pending[qid] = {**pending[qid], "s": status}
        else:
            pending[qid] = {"s": status, "ts": ts or ctx.now.isoformat(), "g": group or ctx.group.key}
            since = ctx.now - timedelta(days=cfg.open_days)
            pending = {k: v for k, v in pending.items() if datetime.fromisoformat(v["ts"]) >= since}
            if len(pending) > _PENDING_CAP:
                for old in sorted(pending, key=lambda k: int(k[1:]))[: len(pending) - _PENDING_CAP]:
                    pending.pop(old)
        ctx.state.put("pending", pending)

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key in (f"j:{member}", f"bg:{member}"):
            value = ctx.state.get(key)
            if value is not None:
                found[key] = value
        asked, answered = [], []
        for key, q in ctx.state.scan("q:"):
            if q.get("asker") == member:
                asked.append({k: q.get(k) for k in ("ts", "group", "msg", "text", "background", "status", "best")}
                             | {"id": key[2:]})
            for msg, a in (q.get("answers") or {}).items():
                if a.get("by") == member:
                    answered.append({"question": key[2:], "msg": msg, "ts": a.get("ts"), "votes": a.get("votes"),
                                     "best": q.get("best") == msg})
        if asked:
            found["questions"] = asked
        if answered:
            found["answers"] = answered
        voted = [key[2:] for key, link in ctx.state.scan("a:") if member in (link.get("voters") or ())]
        if voted:
            found["votes_given"] = voted
        weeks = {}
        for key, w in ctx.state.scan("week:"):
            mine = {}
            if member in (w.get("answerers") or {}):
                mine["score"] = w["answerers"][member]
            if member in (w.get("askers") or {}):
                mine["asked"] = w["askers"][member]
            if mine:
                weeks[key[5:]] = mine
        if weeks:
            found["weeks"] = weeks
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Their keys go; their questions and answers stay as anonymous counts without text."""
        super().erase_member(ctx, member)  # m:<uid>
        ctx.state.delete(f"j:{member}")
        ctx.state.delete(f"bg:{member}")
        for key, q in list(ctx.state.scan("q:")):
            changed = dict(q)
            if q.get("asker") == member:
                changed.update(asker=None, text="")
                changed.pop("background", None)
            answers = q.get("answers") or {}
            if any(a.get("by") == member for a in answers.values()):
                changed["answers"] = {m: ({**a, "by": None} if a.get("by") == member else a) for m, a in answers.items()}
            if changed != q:
                ctx.state.put(key, changed)
        for key, link in list(ctx.state.scan("a:")):
            if member in (link.get("voters") or ()):
                ctx.state.put(key, {**link, "voters": [v for v in link["voters"] if v != member]})
        for key, w in list(ctx.state.scan("week:")):
            if member in (w.get("answerers") or {}) or member in (w.get("askers") or {}):
                ctx.state.put(key, {
                    **w,
                    "answerers": {u: s for u, s in w["answerers"].items() if u != member},
                    "askers": {u: n for u, n in w["askers"].items() if u != member},
                })

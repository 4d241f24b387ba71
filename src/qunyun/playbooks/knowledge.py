"""knowledge (关键词知识库): members and admins grow the knowledge base from the chat.

- **Capture**: a message that starts with a capture keyword
  (``#知识 关键词1,关键词2：答案`` or ``#kb keywords: answer``) saves an entry.
  Entries from ``trusted_roles`` are active at once; others wait for an
  admin's ``enable`` (so nobody can teach the bot to answer with spam).
- **Marking**: an owner or admin replies to a message with a mark word and
  the keywords (``入库 退款,退费``); the replied-to message becomes the answer.
  Without keywords, a replied-to message written as ``关键词：答案`` is used.
- **Curation**: operator commands ``add``, ``list``, ``disable``, ``enable``,
  ``edit``, ``remove`` (``qunyun knowledge …`` calls them).

An entry is ``k:<id>`` → ``{"keywords", "answer", "source", "by", "ts",
"active"}``. An entry whose answer is the same as an existing one's (compared
ignoring case, width and spacing) is merged into it (keywords added). Every
change moves ``version`` — a hash chained over the changes — so the ``faq``
playbook, which answers questions from the active entries exactly like its
configured ones, rebuilds its keyword automaton only when the knowledge set
changed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any, ClassVar

import orjson
from pydantic import Field, field_validator, model_validator

from qunyun.content.messages import find_message
from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, Playbook, PlaybookConfig

ROLES = ("owner", "admin", "assistant", "guest", "member")
_SPLIT_KEYWORDS = re.compile(r"[,，、;；|/]+")
_SPACE = re.compile(r"\s+")
#: Entries ``list`` returns at most.
LIST_LIMIT = 500


def _norm(text: str) -> str:
    """How keywords and answers are compared: NFKC, casefolded, spaces collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


class KnowledgeConfig(PlaybookConfig):
    capture_keywords: list[str] = Field(
        default_factory=lambda: ["#知识", "#kb"],
        description="A message starting with one of these, then 'keywords: answer', saves an entry.",
    )
    mark_words: list[str] = Field(
        default_factory=lambda: ["入库", "kb"],
        description="A reply starting with one of these, by an owner or admin, saves the replied-to message; "
        "the keywords follow the word.",
    )
    marker_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin"], description="Roles whose marking replies count."
    )
    trusted_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin", "assistant"],
        description="Entries captured by these roles are active at once; others wait for an admin's enable.",
    )
    max_keywords: int = Field(default=8, ge=1, le=50, description="Keywords one entry may have.")
    min_keyword_length: int = Field(default=2, ge=1, le=20, description="Shortest keyword (characters).")
    max_keyword_length: int = Field(default=20, ge=1, le=100, description="Longest keyword (characters).")
    max_answer_length: int = Field(default=1000, ge=10, le=4000, description="Longest answer (characters).")
    reply: bool = Field(default=True, description="Confirm captures and markings in the group.")

    @field_validator("capture_keywords", "mark_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        cleaned = [w.strip() for w in value if w.strip()]
        if len(cleaned) != len(value):
            raise ValueError("a word is empty; write the word or delete it")
        return cleaned

    @field_validator("marker_roles", "trusted_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value

    @model_validator(mode="after")
    def _lengths(self) -> KnowledgeConfig:
        if self.min_keyword_length > self.max_keyword_length:
            raise ValueError("min_keyword_length is longer than max_keyword_length")
        return self


class Knowledge(Playbook):
    id = "knowledge"
    config_model = KnowledgeConfig
    handles = frozenset({"message"})
    emits = frozenset({"send"})
    commands: ClassVar[dict[str, str]] = {
        "add": "Add an entry: keywords (list, or text split by commas), answer.",
        "list": "The entries: active (true/false, optional), query (text in keywords or answer, optional).",
        "disable": "Stop answering with an entry: entry (its id).",
        "enable": "Answer with an entry again (or for the first time, after review): entry (its id).",
        "edit": "Change an entry: entry (its id), keywords and/or answer.",
        "remove": "Delete an entry: entry (its id).",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "知识库：用“#知识 关键词：答案”或管理员回复“入库”收录问答，群里再问时自动回答（经 faq）。",
        "en": "Knowledge base: '#kb keywords: answer' or an admin's 'kb' reply saves answers that faq gives later.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "saved": {
            "zh-CN": "📖 已收入知识库（#{id}），关键词：{keywords}",
            "en": "📖 Saved to the knowledge base (#{id}), keywords: {keywords}",
        },
        "merged": {
            "zh-CN": "📖 知识库里已有同样的答案（#{id}），已合并关键词：{keywords}",
            "en": "📖 The knowledge base already had this answer (#{id}); keywords merged: {keywords}",
        },
        "pending": {
            "zh-CN": "📖 收到（#{id}），管理员审核后生效。关键词：{keywords}",
            "en": "📖 Received (#{id}); it takes effect once an admin reviews it. Keywords: {keywords}",
        },
        "bad": {
            "zh-CN": "没能收录：{problem}。格式：{keyword} 关键词1,关键词2：答案",
            "en": "Not saved: {problem}. Write it as: {keyword} keyword1, keyword2: answer",
        },
        "no_keywords": {
            "zh-CN": "请在“{word}”后面写上关键词，例如：{word} 退款,退费",
            "en": "Put the keywords after '{word}', e.g. {word} refund, money back",
        },
        "not_found": {
            "zh-CN": "没有找到要收录的消息（可能已撤回或不是文字）。",
            "en": "I could not find that message (it may have been recalled, or it has no text).",
        },
    }
    #: The problems a capture can have, in each language (for the ``bad`` template).
    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        text: str = event.text
        if not text:
            return
        cfg: KnowledgeConfig = ctx.config
        head = text[:64].lstrip().casefold()
        uid = event.actor.id
        for kw in cfg.capture_keywords:
            if head.startswith(kw.casefold()):
                self._capture(ctx, event, text.lstrip()[len(kw):], kw)
                return
        if event.reply_to and ctx.role(uid) in cfg.marker_roles:
            for word in cfg.mark_words:
                w = word.casefold()
                if head.startswith(w) and (len(head) == len(w) or not head[len(w)].isalnum()):
                    self._mark(ctx, event, text.lstrip()[len(word):], word)
                    return

    def _capture(self, ctx: Context, event: Any, rest: str, keyword: str) -> None:
        cfg: KnowledgeConfig = ctx.config
        uid = event.actor.id
        parsed = _split(rest)
        if parsed is None:
            self._refuse(ctx, event, ("format", 0), keyword)
            return
        keywords, answer = _check(cfg, *parsed)
        if isinstance(keywords, tuple):
            self._refuse(ctx, event, keywords, keyword)
            return
        active = ctx.role(uid) in cfg.trusted_roles
        eid, status = self._save(ctx, keywords, str(answer), source=event.msg_id, by=uid, active=active)
        self._confirm(ctx, eid, status, reply_to=event.msg_id)

    def _mark(self, ctx: Context, event: Any, rest: str, word: str) -> None:
        cfg: KnowledgeConfig = ctx.config
        stored = find_message(ctx, event.reply_to, group=ctx.group.key)
        if stored is None or stored.status != "visible" or not stored.text.strip():
            if cfg.reply:
                ctx.send(ctx.render("not_found"), reply_to=event.msg_id)
            return
        rest = rest.strip(" \t:：")
        if rest:
            keywords: list[str] | tuple[str, int] = _keywords(rest)
            answer: str | None = stored.text.strip()
        else:
            # no keywords given: the message itself may read "keywords: answer"
            body = stored.text.strip()
            for kw in cfg.capture_keywords:
                if body.casefold().startswith(kw.casefold()):
                    body = body[len(kw):]
                    break
            parsed = _split(body)
            if parsed is None:
                if cfg.reply:
                    ctx.send(ctx.render("no_keywords", word=word), reply_to=event.msg_id)
                return
            keywords, answer = parsed
        keywords, answer = _check(cfg, keywords, answer)
        if isinstance(keywords, tuple):
            self._refuse(ctx, event, keywords, cfg.capture_keywords[0] if cfg.capture_keywords else word)
            return
        eid, status = self._save(ctx, keywords, str(answer), source=stored.msg_id, by=stored.author, active=True)
        self._confirm(ctx, eid, status, reply_to=event.msg_id)

    def _refuse(self, ctx: Context, event: Any, problem: tuple[str, int], keyword: str) -> None:
        cfg: KnowledgeConfig = ctx.config
        if not cfg.reply:
            return
        what = _problem(problem).in_lang(ctx.locale)
        ctx.send(ctx.render("bad", problem=what, keyword=keyword), reply_to=event.msg_id)

    def _confirm(self, ctx: Context, eid: str, status: str, *, reply_to: str | None) -> None:
        cfg: KnowledgeConfig = ctx.config
        if not cfg.reply:
            return
        entry = ctx.state.get(f"k:{eid}") or {}
        sep = "、" if ctx.locale == "zh-CN" else ", "
        ctx.send(ctx.render(status, id=eid, keywords=sep.join(entry.get("keywords", []))), reply_to=reply_to)

    # ------------------------------------------------------------------ store

    def _save(self, ctx: Context, keywords: list[str], answer: str, *, source: str | None, by: str | None,
              active: bool) -> tuple[str, str]:
        """Save a new entry, or merge it into one with the same answer; (id, saved|merged|pending)."""
        cfg: KnowledgeConfig = ctx.config
        same = _norm(answer)
        for key, entry in ctx.state.scan("k:"):
            if _norm(entry.get("answer", "")) == same:
                known = {_norm(k) for k in entry["keywords"]}
                merged = list(entry["keywords"])
                for k in keywords:
                    if _norm(k) not in known and len(merged) < cfg.max_keywords:
                        merged.append(k)
                        known.add(_norm(k))
                updated = {**entry, "keywords": merged, "active": bool(entry.get("active")) or active}
                self._put(ctx, key[2:], updated)
                ctx.record("knowledge_merged", by, id=key[2:], keywords=keywords)
                return key[2:], "merged" if updated["active"] else "pending"
        seq = int(ctx.state.get("seq") or 0) + 1
        ctx.state.put("seq", seq)
        eid = str(seq)
        entry = {"keywords": keywords, "answer": answer, "source": source, "by": by, "ts": ctx.now.isoformat(),
                 "active": active}
        self._put(ctx, eid, entry)
        ctx.record("knowledge_saved", by, id=eid, keywords=keywords, active=active)
        return eid, "saved" if active else "pending"

    @staticmethod
    def _put(ctx: Context, eid: str, entry: dict[str, Any] | None) -> None:
        """Write (or delete, with None) an entry and move the version."""
        key = f"k:{eid}"
        if entry is None:
            ctx.state.delete(key)
        else:
            ctx.state.put(key, entry)
        change = orjson.dumps([eid, entry], option=orjson.OPT_SORT_KEYS)
        previous = str(ctx.state.get("version") or "")
        ctx.state.put("version", hashlib.sha256(previous.encode() + b"\0" + change).hexdigest()[:20])

    # --------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: KnowledgeConfig = ctx.config
        args = command.args
        name = command.name
        if name == "list":
            return {"entries": self._list(ctx, args)}
        if name == "add":
            keywords, answer = _check(cfg, _keywords_arg(args.get("keywords")), _text_arg(args.get("answer")))
            if isinstance(keywords, tuple):
                raise CommandError(Msg("cannot save the knowledge entry: {problem}", problem=_problem(keywords)),
                                   hint=Msg("keywords: 'a, b, c'; answer: the reply text"))
            # an owner or admin typing it is named; "cli" or a console user is not a member
            by = command.actor if ctx.role(command.actor) in ("owner", "admin") else None
            eid, status = self._save(ctx, keywords, str(answer), source=None, by=by, active=True)
            return {"id": eid, "status": status, **(ctx.state.get(f"k:{eid}") or {})}
        if name not in self.commands:
            raise CommandError(Msg("knowledge has no command {command!r}", command=name),
                               hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))))
        eid = str(args.get("entry") or "").strip().lstrip("#")
        entry = ctx.state.get(f"k:{eid}") if eid else None
        if entry is None and eid:
            raise CommandError(Msg("no knowledge entry {entry!r}", entry=eid),
                               hint=Msg("`qunyun knowledge list` shows the entries and their ids"))
        if entry is None:
            raise CommandError(Msg("knowledge {command} needs an entry id", command=name),
                               hint=Msg("`qunyun knowledge list` shows the entries and their ids"))
        if name == "remove":
            self._put(ctx, eid, None)
            return {"id": eid, "removed": True}
        if name in ("enable", "disable"):
            updated = {**entry, "active": name == "enable"}
        else:  # edit
            new_keywords = entry["keywords"] if args.get("keywords") is None else _keywords_arg(args["keywords"])
            new_answer = entry["answer"] if args.get("answer") is None else _text_arg(args["answer"])
            keywords, answer = _check(cfg, new_keywords, new_answer)
            if isinstance(keywords, tuple):
                raise CommandError(Msg("cannot save the knowledge entry: {problem}", problem=_problem(keywords)))
            updated = {**entry, "keywords": keywords, "answer": answer}
        self._put(ctx, eid, updated)
        return {"id": eid, **updated}

    def _list(self, ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
        active = args.get("active")
        query = _norm(str(args.get("query") or ""))
        rows = []
        for key, entry in ctx.state.scan("k:"):
            if active is not None and bool(entry.get("active")) != bool(active):
                continue
            if query and query not in _norm(" ".join([*entry.get("keywords", []), entry.get("answer", "")])):
                continue
            rows.append({"id": key[2:], **entry})
        rows.sort(key=lambda r: int(r["id"]) if r["id"].isdigit() else 0)
        return rows[:LIST_LIMIT]

    # ---------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, entry in ctx.state.scan("k:"):
            if entry.get("by") == member:
                found[key] = entry
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Entries the member wrote go entirely (the answer is their text)."""
        # (not super(): it would delete everything our export lists)
        for key in Playbook.export_member(self, ctx, member):
            ctx.state.delete(key)
        for key, entry in list(ctx.state.scan("k:")):
            if entry.get("by") == member:
                self._put(ctx, key[2:], None)


# ------------------------------------------------------------------- parsing


def _split(text: str) -> tuple[list[str], str] | None:
    """``"kw1,kw2：answer"`` → (keywords, answer); None without a separator."""
    text = text.strip()
    cut = min((i for i in (text.find("："), text.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return None
    return _keywords(text[:cut]), text[cut + 1 :].strip()


def _keywords(text: str) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for part in _SPLIT_KEYWORDS.split(text):
        k = part.strip()
        if k and _norm(k) not in seen:
            seen.add(_norm(k))
            out.append(k)
    return out


def _check(cfg: KnowledgeConfig, keywords: list[str] | tuple[str, int], answer: str | None
           ) -> tuple[list[str] | tuple[str, int], str | None]:
    """The keywords and answer if they are within the limits, else ((problem, n), None)."""
    if isinstance(keywords, tuple):
        return keywords, None
    if not keywords:
        return ("no_keywords", 0), None
    if len(keywords) > cfg.max_keywords:
        return ("too_many", cfg.max_keywords), None
    if any(len(k) < cfg.min_keyword_length for k in keywords):
        return ("too_short", cfg.min_keyword_length), None
    if any(len(k) > cfg.max_keyword_length for k in keywords):
        return ("too_long", cfg.max_keyword_length), None
    answer = (answer or "").strip()
    if not answer:
        return ("no_answer", 0), None
    if len(answer) > cfg.max_answer_length:
        return ("answer_long", cfg.max_answer_length), None
    return keywords, answer


def _keywords_arg(value: Any) -> list[str]:
    if isinstance(value, str):
        return _keywords(value)
    if isinstance(value, list):
        return _keywords(",".join(str(v) for v in value))
    return []


def _text_arg(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _problem(problem: tuple[str, int]) -> Msg:
    """Why an entry is refused, for the member who wrote it or the operator (``Msg.in_lang``)."""
    kind, n = problem
    if kind == "format":
        return Msg("a ':' must separate the keywords from the answer")
    if kind == "no_keywords":
        return Msg("there are no keywords")
    if kind == "too_many":
        return Msg("at most {n} keywords", n=n)
    if kind == "too_short":
        return Msg("keywords need at least {n} characters", n=n)
    if kind == "too_long":
        return Msg("keywords may have at most {n} characters", n=n)
    if kind == "no_answer":
        return Msg("the answer is empty")
    return Msg("the answer may have at most {n} characters", n=n)


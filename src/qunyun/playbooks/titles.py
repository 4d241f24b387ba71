"""titles (册封): admins confer titles on members ("活跃之星", "群助理").

An owner or admin (``roles``) types ``册封 @小王 活跃之星`` / ``confer title
@name Star`` in any group that runs the playbook: every member @-mentioned
gets the title (the words after the mentions), replacing the one they held,
and the group is told. ``撤销头衔 @小王`` / ``revoke title @name`` takes it
away. The ``confer``, ``revoke`` and ``list`` commands do the same from the
CLI or the console. Anyone may ask ``我的头衔`` / ``my title``.

A title is cleaned like a name (no control or bidi characters), is at most
``max_length`` characters, and — if ``allowed`` is set — must be one of the
listed titles. Messages from anyone else that start with the keywords are
ordinary chat and are ignored.

The title is what the bot puts in front of a member's name where it
decorates names (the welcome ceremony's "资深运营 · 小王"), through
``ctx.title(uid)``. See ``conferred_title`` below and ``docs/playbooks/titles.md``
for how that lookup reaches this playbook's state.

State: ``m:<uid>`` → ``{"title": text, "by": uid, "ts": iso}`` (the issue's
shared contract).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip, display_name
from qunyun.engine import Command, Context, Playbook, PlaybookConfig

Role = Literal["owner", "admin", "assistant", "guest", "member"]
_CONFERRERS: tuple[Role, ...] = ("owner", "admin")
#: Messages longer than this are never a title command.
_MAX_TEXT = 300


def conferred_title(ctx: Context, uid: str) -> str | None:
    """The title ``uid`` holds from this playbook, display-safe, or None."""
    st = ctx.state_of("titles").get(f"m:{uid}")
    if isinstance(st, dict) and isinstance(st.get("title"), str):
        return display_name(st["title"], "") or None
    return None


def _clean(raw: str) -> str:
    """A title as stored: controls and bidi marks removed, whitespace trimmed (length checked apart)."""
    return display_name(raw, "", limit=10_000)


def _keyword(text: str, low: str, keywords: list[str]) -> str | None:
    """What follows the first keyword ``text`` starts with (then a blank, an @ or nothing), else None."""
    for k in keywords:
        if low.startswith(k):
            rest = text[len(k) :]
            if not rest or rest[0].isspace() or rest[0] in "@＠":
                return rest.strip()
    return None


class TitlesConfig(PlaybookConfig):
    confer_keywords: list[str] = Field(
        default_factory=lambda: ["册封", "confer title"],
        description="`<keyword> @member <title>` by an owner or admin confers the title.",
    )
    revoke_keywords: list[str] = Field(
        default_factory=lambda: ["撤销头衔", "revoke title"],
        description="`<keyword> @member` by an owner or admin takes the title away.",
    )
    show_keywords: list[str] = Field(
        default_factory=lambda: ["我的头衔", "my title"],
        description="A message that is exactly one of these shows the sender's title.",
    )
    roles: list[Role] = Field(
        default_factory=lambda: list(_CONFERRERS), description="Roles that may confer and revoke titles in the chat."
    )
    allowed: list[str] = Field(
        default_factory=list,
        description="If set, only these titles may be conferred (e.g. [活跃之星, 群助理]); empty: any title.",
    )
    max_length: int = Field(default=16, ge=1, le=64, description="Longest title, in characters.")
    announce: bool = Field(default=True, description="Tell the group when a title is conferred or revoked.")

    @field_validator("confer_keywords", "revoke_keywords", "show_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            k = kw.strip().casefold()
            if not k or len(k) > 64:
                raise ValueError(f"keywords must be 1 to 64 characters; got {kw!r}")
            out.append(k)
        return out

    @field_validator("allowed")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        out = []
        for title in value:
            cleaned = display_name(title, "", limit=64)
            if not cleaned or cleaned != title.strip():
                raise ValueError(f"allowed titles must be plain, non-empty text; got {title!r}")
            out.append(cleaned)
        return out


class Titles(Playbook):
    id = "titles"
    version = "1"
    config_model = TitlesConfig
    handles = frozenset({"message"})
    emits = frozenset({"send"})
    commands: ClassVar[dict[str, str]] = {
        "confer": "Confer a title. Args: member, title.",
        "revoke": "Take a member's title away. Args: member.",
        "list": "Every conferred title.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "册封头衔：管理员为成员授予“活跃之星”等头衔，显示在机器人称呼成员的地方。",
        "en": "Admins confer titles such as \"Star of the month\"; the bot shows them before the member's name.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "conferred": {
            "zh-CN": "🎖️ 恭喜 @{name} 被册封为「{title}」！",
            "en": "🎖️ Congratulations @{name}, you are now \"{title}\"!",
        },
        "revoked": {
            "zh-CN": "{name} 的头衔「{title}」已撤销。",
            "en": "{name} no longer holds the title \"{title}\".",
        },
        "usage": {
            "zh-CN": "用法：册封 @成员 头衔（例如：册封 @小王 活跃之星）",
            "en": "Usage: confer title @member <title> (e.g. confer title @Wang Star of the month)",
        },
        "too_long": {
            "zh-CN": "头衔最多 {max} 个字。",
            "en": "A title can be at most {max} characters.",
        },
        "not_allowed": {
            "zh-CN": "「{title}」不在可册封的头衔里。可选：{allowed}",
            "en": "\"{title}\" is not one of the titles that can be conferred: {allowed}",
        },
        "none": {
            "zh-CN": "{name} 目前没有头衔。",
            "en": "{name}, you hold no title yet.",
        },
        "mine": {
            "zh-CN": "{name} 的头衔：「{title}」",
            "en": "{name}, your title: \"{title}\"",
        },
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: TitlesConfig = ctx.config
        text = (event.text or "").strip()
        if not text or len(text) > _MAX_TEXT:
            return
        low = text.casefold()
        uid = event.actor.id
        if low in cfg.show_keywords:
            title = conferred_title(ctx, uid)
            template = "mine" if title else "none"
            ctx.send(ctx.render(template, name=ctx.name(uid), title=title or ""), mentions=[uid], reply_to=event.msg_id)
            return
        revoke = _keyword(text, low, cfg.revoke_keywords)
        confer = None if revoke is not None else _keyword(text, low, cfg.confer_keywords)
        if confer is None and revoke is None:
            return
        if ctx.role(uid) not in cfg.roles:
            return  # not an admin: ordinary chat
        targets = list(dict.fromkeys(m for m in event.mentions if isinstance(m, str) and m))
        if revoke is not None:
            for target in targets:
                self._revoke(ctx, target, uid)
            return
        assert confer is not None
        # the title is what is left once the @mentions are taken out
        raw = " ".join(w for w in confer.split() if not w.startswith(("@", "＠")))
        if not targets or not raw:
            ctx.send(ctx.render("usage"), reply_to=event.msg_id)
            return
        problem = self._problem(ctx, raw)
        if problem is not None:
            key, values = problem
            ctx.send(ctx.render(key, **values), reply_to=event.msg_id)
            return
        for target in targets:
            self._confer(ctx, target, raw, uid)

    # ------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        if command.name == "list":
            return {key[2:]: st for key, st in ctx.state.scan("m:") if isinstance(st, dict)}
        if command.name not in ("confer", "revoke"):
            return super().on_command(ctx, command)
        member = args.get("member")
        if not isinstance(member, str) or not member.strip():
            raise CommandError(Msg("{command} needs member (a user id)", command=command.name))
        if command.name == "confer":
            title = args.get("title")
            if not isinstance(title, str) or not title.strip():
                raise CommandError(Msg("confer needs title (text)"))
            # the operator reads the reason in their own language, not the community's
            problem = self._problem(ctx, title)
            if problem is not None:
                key, values = problem
                if key == "too_long":
                    raise CommandError(Msg("A title can be at most {max} characters.", max=values["max"]))
                if key == "not_allowed":
                    raise CommandError(Msg("\"{title}\" is not one of the titles that can be conferred: {allowed}",
                                           title=values["title"], allowed=", ".join(ctx.config.allowed)))
                raise CommandError(Msg("confer needs title (text)"))
            return {"member": member, "title": self._confer(ctx, member, title, command.actor)}
        old = self._revoke(ctx, member, command.actor)
        if old is None:
            raise CommandError(Msg("{member} holds no title", member=member))
        return {"member": member, "revoked": old}

    # --------------------------------------------------------------- titles

    def _problem(self, ctx: Context, raw: str) -> tuple[str, dict[str, Any]] | None:
        """Why ``raw`` cannot be conferred (a template and its values), or None."""
        cfg: TitlesConfig = ctx.config
        title = _clean(raw)
        if not title:
            return "usage", {}
        if len(title) > cfg.max_length:
            return "too_long", {"max": cfg.max_length}
        if cfg.allowed and title not in cfg.allowed:
            sep = "、" if ctx.locale == "zh-CN" else ", "
            return "not_allowed", {"title": clip(title, 32), "allowed": sep.join(cfg.allowed)}
        return None

    def _confer(self, ctx: Context, member: str, raw: str, by: str) -> str:
        cfg: TitlesConfig = ctx.config
        title = _clean(raw)
        old = ctx.state.get(f"m:{member}")
        ctx.state.put(f"m:{member}", {"title": title, "by": by, "ts": ctx.now.isoformat()})
        ctx.record(
            "conferred", member, title=title, by=by,
            previous=old.get("title") if isinstance(old, dict) else None,
        )
        if cfg.announce:
            ctx.send(ctx.render("conferred", name=ctx.name(member), title=title), mentions=[member])
        return title

    def _revoke(self, ctx: Context, member: str, by: str) -> str | None:
        cfg: TitlesConfig = ctx.config
        old = ctx.state.get(f"m:{member}")
        if not isinstance(old, dict):
            return None
        ctx.state.delete(f"m:{member}")
        title = str(old.get("title") or "")
        ctx.record("revoked", member, title=title, by=by)
        if cfg.announce:
            ctx.send(ctx.render("revoked", name=ctx.name(member), title=title))
        return title

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        out = super().export_member(ctx, member)
        given = sorted(key[2:] for key, st in ctx.state.scan("m:") if isinstance(st, dict) and st.get("by") == member)
        if given:
            out["conferred_on"] = given
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        ctx.state.delete(f"m:{member}")
        for key, _ in list(ctx.state.scan(f"m:{member}:")):
            ctx.state.delete(key)
        for key, st in list(ctx.state.scan("m:")):
            if isinstance(st, dict) and st.get("by") == member:
                ctx.state.put(key, {**st, "by": None})  # the title stays; who gave it goes

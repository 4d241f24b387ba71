"""``qunyun members``: search the member directory, show, export or erase one member;
link a person's ids on several platforms into one member.

``search`` goes through the ``profile`` playbook's ``search`` command, so it
sees exactly what the chat search sees for the viewer given with ``--as``
(and is logged as a command record). ``show`` and ``export`` read what
``Engine.export_member`` gathers; ``erase`` runs ``Engine.erase_member``
(SPEC §9.2). MEMBER is a user id, or a display name if exactly one member
has it. ``link`` and ``unlink`` are the engine's own ``members`` commands
(``Engine.command``: one transaction, audited, idempotent by ``--id``), the
same path the console takes; see docs/identities.md.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from qunyun.cli.app import app
from qunyun.cli.common import CommunityOpt, ConfigOpt, open_community_engine, pick_community
from qunyun.cli.i18n import cli_lang
from qunyun.config.model import CommunitySettings
from qunyun.core.errors import CommandError, Msg
from qunyun.engine.engine import Engine
from qunyun.store import models as m

members_app = typer.Typer(
    name="members",
    help="The member directory: search it, show, export or erase one member's data, link one person's ids.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(members_app, name="members")

_ZH = {
    "member": "成员",
    "name": "名字",
    "verified": "认证",
    "profile": "名片",
    "tags": "标签",
    "no member matches": "没有符合条件的成员",
    "{n} found, {shown} shown": "共 {n} 位，显示 {shown} 位",
    "the directory is open to admins only: a member sees nobody": "名录只对管理员开放：成员搜索看不到任何人",
    "user id": "用户 ID",
    "title": "头衔",
    "first seen": "首次出现",
    "last seen": "最近出现",
    "groups": "所在群",
    "points": "积分",
    "messages": "消息数",
    "sharing": "名录可见范围",
    "in the directory": "在名录中",
    "yes": "是",
    "no": "否",
    "erased": "已抹除",
    "community default": "社群默认",
    "written to {path}": "已写入 {path}",
    "Erase all personal data of {who}? This cannot be undone.": "抹除 {who} 的全部个人数据？此操作无法撤销。",
    "erased {who}: now {label}": "已抹除 {who}：现在记为 {label}",
    "these playbooks failed to erase (their part was rolled back): {names}": "以下玩法抹除失败（已回滚其部分）：{names}",
    "hidden": "（已隐藏）",
    "platform": "平台",
    "linked": "关联时间",
    "by": "操作人",
    "own id": "本身的 ID",
    "linked id": "关联的 ID",
    "Merge {other} into {into}? Their history becomes one member's; this cannot be undone.":
        "把 {other} 合并到 {into}？两者的记录将归为同一成员，此操作无法撤销。",
    "linked {other} to {into} (member #{member})": "已把 {other} 关联到 {into}（成员 #{member}）",
    "merged {other}'s history into it: {moved}": "并已把 {other} 的记录合并进来：{moved}",
    "{into} and {other} are already one member (#{member})": "{into} 和 {other} 已经是同一成员（#{member}）",
    "this command id was already carried out: nothing done": "这个命令 ID 已经执行过：未做任何改动",
    "{pid}: both ids had {keys}; the first id's values were kept": "{pid}：两个 ID 都有 {keys}，保留了第一个 ID 的值",
    "{pid} failed to merge its data (rolled back, see qunyun doctor's failures)":
        "{pid} 合并数据失败（已回滚，失败记录见 failures）",
    "unlinked {id}: its next events make a new member": "已解除 {id} 的关联：它之后的消息将算作新成员",
    "{who}: {n} id(s)": "{who}：共 {n} 个 ID",
    # a membership's status
    "active": "在群",
    "left": "已退群",
    "removed": "已移出",
}


def _t(text: str, **values: object) -> str:
    chosen = _ZH.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


class Viewer(enum.StrEnum):
    member = "member"
    admin = "admin"


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: the config's deployment.database, $QUNYUN_DATABASE_URL, "
        "or the default SQLite file).",
    ),
]
PlatformOpt = Annotated[
    str | None, typer.Option("--platform", help="Platform of the member's user id (needed when groups use several).")
]
MemberArg = Annotated[str, typer.Argument(help="User id, or a display name that only one member has.")]


def _open(config: Path, db: str | None, community: str | None, platform: str | None) -> tuple[
    Engine, CommunitySettings, str
]:
    settings, engine = open_community_engine(config, db)
    chosen = pick_community(settings, community)
    platforms = sorted({g.platform for g in chosen.groups.values()})
    if platform is None:
        if len(platforms) != 1:
            engine.db.dispose()
            if not platforms:
                raise CommandError(Msg("community {community!r} has no groups", community=chosen.id),
                                   hint=Msg("add groups first"))
            raise CommandError(
                Msg("community {community!r} has groups on {count} platforms; say which one",
                    community=chosen.id, count=len(platforms)),
                hint=Msg("add --platform (one of: {platforms})", platforms=", ".join(platforms)),
            )
        platform = platforms[0]
    elif platform not in platforms:
        engine.db.dispose()
        raise CommandError(
            Msg("community {community!r} has no groups on platform {platform!r}",
                community=chosen.id, platform=platform),
            hint=Msg("one of: {platforms}", platforms=", ".join(platforms)),
        )
    return engine, chosen, platform


def _resolve(engine: Engine, community: str, platform: str, member: str) -> str:
    """The user id MEMBER stands for: itself if known, else the one member with that name."""
    mt = m.table(m.Member)
    with engine.db.connect() as conn:
        base = select(mt.c.user_id).where(mt.c.community_id == community, mt.c.platform == platform)
        if conn.execute(base.where(mt.c.user_id == member)).first() is not None:
            return member
        named = [r[0] for r in conn.execute(base.where(mt.c.name == member, mt.c.erased.is_(False)).limit(6))]
    if len(named) == 1:
        return str(named[0])
    if len(named) > 1:
        raise CommandError(
            Msg("{count} members are called {member!r}", count=len(named), member=member),
            hint=Msg("give the user id: {ids}", ids=", ".join(named[:5])),
        )
    return member  # maybe only a playbook knows this id; export/erase will tell


def _holds_anything(data: dict[str, Any]) -> bool:
    keys = ("member", "memberships", "messages", "events", "records")
    return any(data.get(k) for k in keys) or any(data["ledger"].values()) or any(data["playbooks"].values())


def _field_labels(community: CommunitySettings) -> dict[str, str]:
    from qunyun.playbooks.profile import ProfileConfig

    raw = community.playbook_specs.get("profile")
    if raw is None:
        return {}
    cfg = ProfileConfig.model_validate(raw or {})
    return {f.id: f.label(cli_lang()) for f in cfg.fields}


# ----------------------------------------------------------------- search


@members_app.command("search")
def search_command(
    config: ConfigOpt,
    text: Annotated[list[str] | None, typer.Argument(help="Free-text words; every one must match.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="An exact tag, e.g. city:上海 or 运营.")] = None,
    expertise: Annotated[str | None, typer.Option("--expertise", help="Part of an expertise tag.")] = None,
    city: Annotated[str | None, typer.Option("--city", help="Part of the city.")] = None,
    viewer: Annotated[
        Viewer, typer.Option("--as", help="See the directory as a member or as an admin (the sharing level applies).")
    ] = Viewer.admin,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    db: DbOpt = None,
    community: CommunityOpt = None,
    platform: PlatformOpt = None,
) -> None:
    """Search the member directory by tag, expertise, city or free text.

    Opted-out members never appear. With --as member you see what a member
    would see at the community's sharing level (open, community, admins).

    Example: qunyun members search --config qunyun.yaml --city 上海 --expertise 运营 --as member
    """
    engine, chosen, _ = _open(config, db, community, platform)
    try:
        args: dict[str, Any] = {"viewer_role": viewer.value, "limit": limit}
        for key, value in (("tag", tag), ("expertise", expertise), ("city", city)):
            if value:
                args[key] = value
        if text:
            args["text"] = " ".join(text)
        result = engine.command(chosen.id, "profile", "search", args, actor="cli")
    finally:
        engine.db.dispose()
    rows = result.get("rows", [])
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    out = Console()
    if result.get("admins_only"):
        out.print(_t("the directory is open to admins only: a member sees nobody"))
        return
    if not rows:
        out.print(_t("no member matches"))
        return
    labels = _field_labels(chosen)
    table = Table(show_lines=False)
    for head in ("#", _t("member"), _t("name"), _t("verified"), _t("profile")):
        table.add_column(head, overflow="fold")
    for i, row in enumerate(rows, 1):
        fields = "; ".join(f"{labels.get(k, k)}: {v}" for k, v in row["fields"].items())
        table.add_row(
            str(i),
            escape(row["member"] or _t("hidden")),
            escape(row["name"] or _t("hidden")),
            "✅" if row["verified"] else "",
            escape(fields),
        )
    out.print(table)
    out.print(_t("{n} found, {shown} shown", n=result.get("count", len(rows)), shown=len(rows)))


# ------------------------------------------------------------------- show


@members_app.command("show")
def show_command(
    member: MemberArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    platform: PlatformOpt = None,
) -> None:
    """Show one member: identity, groups, points and profile.

    Example: qunyun members show u-17 --config qunyun.yaml
    """
    engine, chosen, plat = _open(config, db, community, platform)
    try:
        uid = _resolve(engine, chosen.id, plat, member)
        data = engine.export_member(chosen.id, plat, uid)
    finally:
        engine.db.dispose()
    if not _holds_anything(data):
        raise CommandError(Msg("no member {member!r} in community {community!r} on {platform}",
                               member=member, community=chosen.id, platform=plat))
    row = data["member"] or {}
    profile = (data["playbooks"].get("profile") or {}).get(f"m:{uid}") or {}
    labels = _field_labels(chosen)
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")

    def add(label: str, value: Any) -> None:
        table.add_row(_t(label), escape("" if value is None else str(value)))

    add("user id", uid)
    add("name", row.get("name"))
    add("title", row.get("title"))
    add("first seen", row.get("first_seen_at"))
    add("last seen", row.get("last_seen_at"))
    add("groups", ", ".join(f"{ms['group']} ({_t(ms['status'])})" for ms in data["memberships"]))
    points = sum(a["balance"] for a in data["ledger"]["accounts"] if a["currency"] == "POINTS")
    add("points", points)
    add("messages", len(data["messages"]))
    if row.get("erased"):
        add("erased", _t("yes"))
    if profile:
        add("verified", _t("yes") if profile.get("verified") else _t("no"))
        add("sharing", profile.get("sharing") or _t("community default"))
        add("in the directory", _t("no") if profile.get("opt_out") else _t("yes"))
        for fid, value in (profile.get("fields") or {}).items():
            table.add_row(escape(labels.get(fid, fid)), escape(str(value)))
        add("tags", ", ".join(profile.get("tags") or []))
    Console().print(table)


# ----------------------------------------------------------------- export


@members_app.command("export")
def export_command(
    member: MemberArg,
    config: ConfigOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON to this file, not stdout.")] = None,
    db: DbOpt = None,
    community: CommunityOpt = None,
    platform: PlatformOpt = None,
) -> None:
    """Everything held about one member, as JSON (access and portability, SPEC §9.2).

    The member row, memberships, messages and raw events they sent, ledger
    accounts and postings, records naming them, and each playbook's data.

    Example: qunyun members export u-17 --config qunyun.yaml --out u-17.json
    """
    engine, chosen, plat = _open(config, db, community, platform)
    try:
        uid = _resolve(engine, chosen.id, plat, member)
        data = engine.export_member(chosen.id, plat, uid)
    finally:
        engine.db.dispose()
    if not _holds_anything(data):
        raise CommandError(Msg("no member {member!r} in community {community!r} on {platform}",
                               member=member, community=chosen.id, platform=plat))
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    Console(stderr=True).print(_t("written to {path}", path=escape(str(out))), highlight=False)


# ------------------------------------------------------------------ erase


@members_app.command("erase")
def erase_command(
    member: MemberArg,
    config: ConfigOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOpt = None,
    community: CommunityOpt = None,
    platform: PlatformOpt = None,
) -> None:
    """Erase one member's personal data from every table (erasure, SPEC §9.2).

    Their name becomes erased-<n>; messages, profile and playbook data go;
    counters and the ledger stay (anonymous, still balanced). Exit code 1 if a
    playbook failed to erase its part. Stop the running engine first, or
    restart it afterwards: it caches names and state.

    Example: qunyun members erase u-17 --config qunyun.yaml --yes
    """
    engine, chosen, plat = _open(config, db, community, platform)
    try:
        uid = _resolve(engine, chosen.id, plat, member)
        data = engine.export_member(chosen.id, plat, uid)
        if not _holds_anything(data):
            raise CommandError(Msg("no member {member!r} in community {community!r} on {platform}",
                                   member=member, community=chosen.id, platform=plat))
        name = (data["member"] or {}).get("name")
        who = f"{name} ({uid})" if name and name != uid else uid
        if not yes:
            typer.confirm(_t("Erase all personal data of {who}? This cannot be undone.", who=who), abort=True)
        failed = engine.erase_member(chosen.id, plat, uid)
        label = (engine.export_member(chosen.id, plat, uid)["member"] or {}).get("name") or uid
    finally:
        engine.db.dispose()
    out = Console()
    out.print(_t("erased {who}: now {label}", who=escape(who), label=escape(label)), highlight=False)
    if failed:
        out.print(
            "[red]" + _t("these playbooks failed to erase (their part was rolled back): {names}",
                         names=escape(", ".join(failed))) + "[/]"
        )
        raise typer.Exit(1)


# ------------------------------------------------------------- identities


IdentityArg = Annotated[
    str, typer.Argument(help="PLATFORM:USER_ID, e.g. telegram:123456789 or matrix:@alice:example.org.")
]
IdOpt = Annotated[
    str | None,
    typer.Option("--id", help="Command id: giving the same id again does nothing twice (default: a fresh one)."),
]


@members_app.command("link")
def link_command(
    into: IdentityArg,
    other: IdentityArg,
    config: ConfigOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before merging two members.")] = False,
    id: IdOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    db: DbOpt = None,
    community: CommunityOpt = None,
) -> None:
    """Link two platform ids of one person into one member (the first one's).

    Events from OTHER count for INTO's member from now on: points, streaks,
    levels, rollups. If OTHER already has history it is merged into INTO
    (asks first; cannot be undone). A running qunyun run picks the link up
    by itself.

    Example: qunyun members link --config qunyun.yaml matrix:@alice:example.org telegram:123456789
    """
    from qunyun.engine.identities import parse_identity

    settings, engine = open_community_engine(config, db)
    try:
        chosen = pick_community(settings, community)
        a, b = parse_identity(into), parse_identity(other)
        if not yes and _both_have_history(engine, chosen.id, a, b):
            typer.confirm(
                _t("Merge {other} into {into}? Their history becomes one member's; this cannot be undone.",
                   other=other, into=into),
                abort=True,
            )
        result = engine.command(chosen.id, "members", "link", {"into": into, "other": other}, actor="cli", id=id)
    finally:
        engine.db.dispose()
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    out = Console()
    if result.get("duplicate"):
        out.print(_t("this command id was already carried out: nothing done"))
        return
    if result.get("already"):
        out.print(_t("{into} and {other} are already one member (#{member})", into=escape(into),
                     other=escape(other), member=result["member"]), highlight=False)
        return
    out.print(_t("linked {other} to {into} (member #{member})", other=escape(other), into=escape(result["into"]),
                 member=result["member"]), highlight=False)
    if result.get("merged"):
        moved = ", ".join(f"{k} {v}" for k, v in result.get("moved", {}).items()) or "-"
        out.print(_t("merged {other}'s history into it: {moved}", other=escape(other), moved=escape(moved)),
                  highlight=False)
    failed = False
    for pid, info in (result.get("playbooks") or {}).items():
        if info.get("failed"):
            failed = True
            out.print("[red]" + _t("{pid} failed to merge its data (rolled back, see qunyun doctor's failures)",
                                   pid=escape(pid)) + "[/]")
        elif info.get("kept_target"):
            out.print(_t("{pid}: both ids had {keys}; the first id's values were kept", pid=escape(pid),
                         keys=escape(", ".join(info["kept_target"]))), highlight=False)
    if failed:
        raise typer.Exit(1)


def _both_have_history(engine: Engine, community: str, a: tuple[str, str], b: tuple[str, str]) -> bool:
    from qunyun.engine.identities import _lookup

    with engine.db.connect() as conn:
        return _lookup(conn, community, *a) is not None and _lookup(conn, community, *b) is not None


@members_app.command("unlink")
def unlink_command(
    identity: IdentityArg,
    config: ConfigOpt,
    id: IdOpt = None,
    db: DbOpt = None,
    community: CommunityOpt = None,
) -> None:
    """Detach a linked id: its later events make a new member; history stays merged.

    Example: qunyun members unlink --config qunyun.yaml telegram:123456789
    """
    settings, engine = open_community_engine(config, db)
    try:
        chosen = pick_community(settings, community)
        result = engine.command(chosen.id, "members", "unlink", {"id": identity}, actor="cli", id=id)
    finally:
        engine.db.dispose()
    if result.get("duplicate"):
        Console().print(_t("this command id was already carried out: nothing done"))
        return
    Console().print(_t("unlinked {id}: its next events make a new member", id=escape(identity)), highlight=False)


@members_app.command("identities")
def identities_command(
    member: Annotated[str, typer.Argument(help="PLATFORM:USER_ID, a user id (with --platform) or a display name.")],
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ids as JSON.")] = False,
    db: DbOpt = None,
    community: CommunityOpt = None,
    platform: PlatformOpt = None,
) -> None:
    """List every platform id of one member: its own, then those linked to it.

    Example: qunyun members identities --config qunyun.yaml telegram:123456789
    """
    from qunyun.engine.identities import identities

    settings, engine = open_community_engine(config, db)
    try:
        chosen = pick_community(settings, community)
        head, sep, rest = member.partition(":")
        platforms = {g.platform for g in chosen.groups.values()}
        if sep and head in platforms and platform is None:
            plat, uid = head, rest
        else:
            engine.db.dispose()
            engine, chosen, plat = _open(config, db, community, platform)
            uid = _resolve(engine, chosen.id, plat, member)
        with engine.db.connect() as conn:
            found = identities(conn, chosen.id, plat, uid)
    finally:
        engine.db.dispose()
    if found is None:
        raise CommandError(
            Msg("no member {member!r} in community {community!r} on {platform}",
                member=member, community=chosen.id, platform=plat),
            hint=Msg("give PLATFORM:USER_ID as in events, e.g. telegram:123456789"),
        )
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    table = Table()
    for head_ in (_t("platform"), _t("user id"), "", _t("linked"), _t("by")):
        table.add_column(head_, overflow="fold")
    for row in found["ids"]:
        table.add_row(
            escape(row["platform"]), escape(row["user_id"]), _t("own id") if row["own"] else _t("linked id"),
            escape(row["linked_at"] or ""), escape(row["linked_by"] or ""),
        )
    out = Console()
    out.print(_t("{who}: {n} id(s)", who=escape(found["name"] or str(found["member"])), n=len(found["ids"])),
              highlight=False)
    out.print(table)

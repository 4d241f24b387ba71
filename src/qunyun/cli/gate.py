"""``qunyun gate``: the entry gate's waiting list and the admins' decisions.

Every subcommand is a ``gate`` playbook command run with
:meth:`Engine.command` — the same path as the console, the API and an
admin's ``批准 @某人`` in the admins' group — so the CLI can do nothing the
playbook would refuse, and everything it does is in the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qunyun.cli.app import app
from qunyun.cli.common import (
    CommunityOpt,
    ConfigOpt,
    DbOpt,
    JsonOpt,
    run_command,
)
from qunyun.cli.i18n import cli_lang
from qunyun.core.text import clip

gate_app = typer.Typer(
    help="Entry gate (入群门槛): list the applications waiting, approve, reject, verify.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(gate_app, name="gate")

GroupOpt = Annotated[
    str | None,
    typer.Option("--group", help="Only the application in this group (default: every one the member has waiting)."),
]
MemberArg = Annotated[str, typer.Argument(help="The applicant's platform user id (as in events).")]

_LABELS: dict[str, str] = {
    "Applications waiting": "待处理的入群申请",
    "nobody is waiting": "没有待处理的入群申请",
    "member": "成员",
    "name": "昵称",
    "group": "群",
    "mode": "门槛",
    "since": "申请时间",
    "deadline": "截止",
    "details": "内容",
    "in the group": "已在群内",
    "attempts": "已用次数",
    "held": "待退款",
    "approved {member}: {groups}": "已批准 {member}：{groups}",
    "rejected {member}: {groups}": "已拒绝 {member}：{groups}",
    "verified {member}: {groups}": "已核验 {member}：{groups}",
    "chose {member}'s bounty answer: {groups}": "已选 {member} 的悬赏回答为最佳：{groups}",
    "payment recorded for {member} in {group}: admitted": "已为 {member} 登记付款（{group}）：已通过",
    "payment recorded for {member} in {group}: not enough yet": "已为 {member} 登记付款（{group}）：尚未付满",
    "approval": "审核",
    "quiz": "答题",
    "invitation": "邀请制",
    "paid": "付费",
    "bounty": "悬赏",
    "credential": "资质核验",
}


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def _run(config: Path, db: str | None, community: str | None, name: str, args: dict[str, Any]) -> dict[str, Any]:
    # with --group the command runs in that group (it reaches the applicant's platform)
    return run_command(config, db, community, "gate", name, args, group=args.get("group"))


def _details(row: dict[str, Any]) -> str:
    parts = [f"{q}: {a}" for q, a in (row.get("answers") or {}).items()]
    if row.get("credential") and not parts:
        parts.append(row["credential"])
    if row.get("bounty") and not parts:
        parts.append(f"#{row['bounty']['n']} {row['bounty']['answer']}")
    if row.get("attempts"):
        parts.append(f"{_t('attempts')}: {row['attempts']}")
    if row.get("held"):
        parts.append(f"{_t('held')}: " + ", ".join(f"{n} {c}" for c, n in row["held"].items()))
    if row.get("in_group"):
        parts.append(_t("in the group"))
    return clip(" · ".join(parts), 160)


@gate_app.command("pending")
def pending_command(
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the applications waiting for a decision (or for the applicant to finish).

    Example: qunyun gate pending --config qunyun.yaml
    """
    rows = _run(config, db, community, "pending", {})["pending"]
    out = Console()
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print(_t("nobody is waiting"))
        return
    table = Table(title=_t("Applications waiting"))
    for col in ("member", "name", "group", "mode", "since", "deadline", "details"):
        table.add_column(_t(col), overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["member"]),
            escape(row["name"]),
            escape(row["group"] or ""),
            _t(row["mode"] or ""),
            escape((row["since"] or "")[:16]),
            escape((row["deadline"] or "")[:16]),
            escape(_details(row)),
        )
    out.print(table)


def _decision(name: str, message: str, member: str, config: Path, db: str | None, community: str | None,
              group: str | None, **extra: Any) -> None:
    args: dict[str, Any] = {"member": member, **extra}
    if group is not None:
        args["group"] = group
    result = _run(config, db, community, name, args)
    Console().print(escape(_t(message, member=result["member"], groups=", ".join(result["groups"]))))


@gate_app.command("approve")
def approve_command(
    member: MemberArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    group: GroupOpt = None,
) -> None:
    """Admit MEMBER: an invite (the platform accepts the request), or a welcome if already in the group.

    Example: qunyun gate approve u-17 --config qunyun.yaml
    """
    _decision("approve", "approved {member}: {groups}", member, config, db, community, group)


@gate_app.command("reject")
def reject_command(
    member: MemberArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    group: GroupOpt = None,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Told to the applicant by direct message.")] = "",
) -> None:
    """Turn MEMBER down, telling them why; removed if already in the group.

    Example: qunyun gate reject u-17 --reason "资料不完整" --config qunyun.yaml
    """
    _decision("reject", "rejected {member}: {groups}", member, config, db, community, group, reason=reason)


@gate_app.command("verify")
def verify_command(
    member: MemberArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    group: GroupOpt = None,
) -> None:
    """Confirm MEMBER's declared credential (credential gate) and admit them.

    Example: qunyun gate verify u-17 --config qunyun.yaml
    """
    _decision("verify", "verified {member}: {groups}", member, config, db, community, group)


@gate_app.command("pick")
def pick_command(
    member: MemberArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    group: GroupOpt = None,
) -> None:
    """Choose MEMBER's bounty answer as the best: they enter free (bounty gate).

    Example: qunyun gate pick u-17 --config qunyun.yaml
    """
    _decision("pick", "chose {member}'s bounty answer: {groups}", member, config, db, community, group)


@gate_app.command("record-payment")
def record_payment_command(
    member: MemberArg,
    amount: Annotated[int, typer.Argument(help="Amount in minor units (fen, cents): 20000 is 200.00.", min=1)],
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    group: GroupOpt = None,
    currency: Annotated[str | None, typer.Option("--currency", help="Default: the gate's fee currency.")] = None,
) -> None:
    """Record an entry fee MEMBER paid outside the chat (paid gate); admitted once the fee is met.

    Example: qunyun gate record-payment u-17 20000 --config qunyun.yaml
    """
    args: dict[str, Any] = {"member": member, "amount": amount}
    if group is not None:
        args["group"] = group
    if currency is not None:
        args["currency"] = currency
    result = _run(config, db, community, "record_payment", args)
    key = (
        "payment recorded for {member} in {group}: admitted"
        if result.get("admitted")
        else "payment recorded for {member} in {group}: not enough yet"
    )
    Console().print(escape(_t(key, member=result["member"], group=result["group"])))

"""``qunyun demo``: simulate a learning community, run it, show what happened."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from qunyun.adapters.sim import PERSONAS
from qunyun.cli.app import app
from qunyun.core.errors import QunyunError
from qunyun.demo import DemoRun, Summary, run_demo


class Lang(StrEnum):
    zh = "zh-CN"
    en = "en"


LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "{community} · {days} 天模拟（{groups} 个群，{members} 人，种子 {seed}）",
        "progress": "模拟中",
        "console_title": "控制台：",
        "console_login": "登录",
        "console_later": "以后再打开：",
        "console_stop": "按 Ctrl+C 停止。",
        "error": "错误",
        "port_in_use": "127.0.0.1 的端口 {port} 已被占用；"
        "请用 --port 运行 `qunyun console --config {config}`，或用 --port 运行演示",
        "day": "第 {day} 天",
        "overview": "概况",
        "events": "事件",
        "messages": "消息",
        "reactions": "表情回应",
        "joins": "入群",
        "leaves": "退群",
        "removed": "被移出",
        "members_now": "当前成员",
        "welcome": "欢迎仪式",
        "welcome_messages": "欢迎消息",
        "newcomers_welcomed": "被欢迎的新人",
        "charters": "重发群公约",
        "checkin": "每日打卡",
        "checkins": "打卡次数",
        "checkin_members": "打卡人数",
        "longest_streak": "最长连续",
        "streak_days": "{n} 天（{name}）",
        "streaks": "最佳连续天数分布",
        "streak_bucket": "{label} 天",
        "members": "人数",
        "levels": "等级",
        "level_ups": "升级次数",
        "level_held": "当前达到「{name}」",
        "faq": "关键词问答",
        "faq_answers": "自动回答",
        "faq_entry": "条目 {entry}",
        "moderation": "秩序",
        "rule": "规则",
        "hits": "命中（已删除）",
        "removals": "移出",
        "warnings": "警告",
        "deletions": "删除消息",
        "no_hits": "没有违规",
        "top": "最活跃的 10 位成员",
        "rank": "#",
        "name": "成员",
        "checkins_short": "打卡",
        "points": "积分",
        "groups": "各群活跃度（最近 7 天）",
        "group": "群",
        "speakers": "发言人数",
        "ratio": "活跃率",
        "bot": "机器人动作",
        "failures": "玩法出错 {n} 次（已隔离回滚，详见 failures 表）",
        "speed": "共处理 {events:,} 个事件，{actions:,} 个动作，用时 {seconds:.1f} 秒（{rate:,.0f} 事件/秒）。",
        "files": "文件（目录每次运行都会重建）：",
        "config": "配置",
        "events_file": "事件",
        "db": "数据库",
        "replay": "用引擎重放这些事件：",
        "rule_blacklist": "违禁词",
        "rule_ads": "广告",
        "rule_contact": "留联系方式",
        "rule_links": "外链",
        "rule_qr": "二维码",
        "rule_oversize": "超长/不合适内容",
        "rule_flood": "刷屏",
        "rule_rejoin": "被移出后再入群",
        "cast": "模拟的成员：{cast}",
        "cast_sep": "，",
        "removed_by": "被移出（按玩法）",
        "playbook": "玩法",
        "gate": "入群验证（答题）",
        "gate_applicants": "需答题的新人",
        "gate_admitted": "通过",
        "gate_failed": "答错的次数",
        "gate_blocked": "多次答错被拦下",
        "gate_removed": "到期未通过被移出",
        "rules": "群规确认",
        "rules_acknowledged": "已回复确认",
        "rules_pending": "尚未确认（仍在群里）",
        "rules_lapsed": "逾期未确认（已告知管理员）",
        "profile": "名片登记",
        "profile_intros": "识别出的自我介绍",
        "profiles_filled": "已有名片的成员",
        "profiles_with_expertise": "写了擅长领域",
        "profiles_asked": "私信补充缺项",
        "top_tags": "热门擅长标签",
        "top_cities": "成员最多的城市",
        "tag": "标签",
        "city": "城市",
        "activation": "新人激活",
        "activation_nudged": "发出的私信提醒",
        "activation_activated": "7 天内开口的新人",
        "cohort": "入群周",
        "joined": "入群",
        "activated": "已开口",
        "rate": "激活率",
        "hours": "开放时间（{groups}）",
        "hours_notices": "开放/休息通知",
        "hours_reminders": "休息时间发言提醒",
        "hours_members": "被提醒的成员",
        "hours_strikes": "记次警告",
        "hours_admin_notes": "报告管理员",
        "guard": "吵架预警",
        "guard_alerts": "发给管理员的预警",
        "guard_members": "涉及成员",
        "microphone": "传麦",
        "microphone_passes": "转给专家的问题",
        "microphone_asked": "@ 专家次数",
        "microphone_experts": "被请教的专家",
        "elimination": "末位淘汰（每周）",
        "elimination_warned": "警告",
        "elimination_spared": "警告后恢复活跃",
        "elimination_removed": "到期移出",
        "elimination_invited": "邀请候补成员",
        "referrals": "邀请裂变",
        "referrals_total": "记入的邀请",
        "referrers": "邀请过人的成员",
        "inviter": "邀请人",
        "invited": "邀请人数",
        "qa": "问答",
        "qa_questions": "提问（Q 编号）",
        "qa_answered": "有人回答的问题",
        "qa_answers": "回答",
        "qa_answerers": "回答过的成员",
        "qa_votes": "回答得票",
        "qa_best": "最佳答案",
        "qa_median": "首个回答的中位等待",
        "minutes": "{n:.0f} 分钟",
        "fund": "群基金",
        "fund_in": "收入（进入基金）",
        "fund_dues": "会费（{n} 笔）",
        "fund_donations": "捐赠",
        "fund_awards": "周奖励发出",
        "fund_out": "支出合计",
        "fund_balance": "基金结余",
        "admin_dues": "群管费账户（付值班津贴）",
        "awards": "每周奖励",
        "week": "周",
        "pool": "奖池",
        "winners": "获奖者",
        "paid": "发出",
        "for_answers": "答疑",
        "for_shares": "分享",
        "challenge": "押金挑战「{name}」",
        "challenge_participants": "参加人数（押金合计）",
        "challenge_days": "已结算天数",
        "challenge_checkins": "按时打卡次数",
        "challenge_perfect": "全勤",
        "challenge_refunded": "退还押金",
        "challenge_redistributed": "未完成者押金分给完成者",
        "challenge_to_fund": "转入基金",
        "challenge_pot": "奖池余额（结束后应为 0）",
        "duty": "值班轮换",
        "duty_queue": "报名顺序：{queue}",
        "on_duty": "值班",
        "duty_pay": "津贴",
        "kpi": "值班成绩",
        "kpi_line": "答疑 {answerers} 人 · 得票 {votes} · 解决 {resolved}\n精华{digest} · 清单 {done}/{total}",
        "running": "（进行中）",
        "yes": "已发布",
        "no": "未发布",
        "digest": "精华与周报",
        "essence_entries": "精华消息（作者 {n} 人）",
        "digest_periods": "已发布的周报",
        "digest_entries": "周报收录条目",
        "digest_authors": "被收录的作者",
        "digest_files": "周报文件：",
        "sessions": "分享会",
        "sessions_held": "已举办",
        "session_questions": "收集的问题",
        "medals": "勋章",
        "medal": "勋章",
        "holders": "获得人数",
        "titles": "册封头衔",
        "title_col": "头衔",
        "commands_file": "运营命令",
    },
    "en": {
        "title": "{community} · {days}-day simulation ({groups} groups, {members} members, seed {seed})",
        "progress": "Simulating",
        "console_title": "Console:",
        "console_login": "Sign in",
        "console_later": "Open it again later:",
        "console_stop": "Press Ctrl+C to stop.",
        "error": "error",
        "port_in_use": "port {port} on 127.0.0.1 is in use; "
        "run `qunyun console --config {config}` with --port, or the demo with --port",
        "day": "day {day}",
        "overview": "Overview",
        "events": "Events",
        "messages": "Messages",
        "reactions": "Reactions",
        "joins": "Joins",
        "leaves": "Left",
        "removed": "Removed",
        "members_now": "Members now",
        "welcome": "Welcome",
        "welcome_messages": "Welcome messages",
        "newcomers_welcomed": "Newcomers welcomed",
        "charters": "Charter reposts",
        "checkin": "Check-in",
        "checkins": "Check-ins",
        "checkin_members": "Members who checked in",
        "longest_streak": "Longest streak",
        "streak_days": "{n} days ({name})",
        "streaks": "Best-streak distribution",
        "streak_bucket": "{label} days",
        "members": "Members",
        "levels": "Levels",
        "level_ups": "Level-ups",
        "level_held": "Now at {name}",
        "faq": "FAQ",
        "faq_answers": "Answers",
        "faq_entry": "entry {entry}",
        "moderation": "Moderation",
        "rule": "Rule",
        "hits": "Hits (deleted)",
        "removals": "Removed",
        "warnings": "Warnings",
        "deletions": "Messages deleted",
        "no_hits": "No rule was broken",
        "top": "Top 10 most active members",
        "rank": "#",
        "name": "Member",
        "checkins_short": "Check-ins",
        "points": "Points",
        "groups": "Activity per group (last 7 days)",
        "group": "Group",
        "speakers": "Speakers",
        "ratio": "Active ratio",
        "bot": "Bot actions",
        "failures": "{n} playbook failures (isolated and rolled back; see the failures table)",
        "speed": "Handled {events:,} events and {actions:,} actions in {seconds:.1f} s ({rate:,.0f} events/s).",
        "files": "Files (the directory is recreated on every run):",
        "config": "config",
        "events_file": "events",
        "db": "database",
        "replay": "Replay these events through the engine:",
        "rule_blacklist": "banned words",
        "rule_ads": "ads",
        "rule_contact": "contact details",
        "rule_links": "links",
        "rule_qr": "QR codes",
        "rule_oversize": "oversized/unwanted content",
        "rule_flood": "flooding",
        "rule_rejoin": "rejoined after removal",
        "cast": "Simulated members: {cast}",
        "cast_sep": ", ",
        "removed_by": "Removed, by playbook",
        "playbook": "Playbook",
        "gate": "Entry gate (quiz)",
        "gate_applicants": "Newcomers quizzed",
        "gate_admitted": "Passed",
        "gate_failed": "Failed attempts",
        "gate_blocked": "Blocked after too many failures",
        "gate_removed": "Removed at the deadline",
        "rules": "Group rules",
        "rules_acknowledged": "Acknowledged",
        "rules_pending": "Not acknowledged (still in a group)",
        "rules_lapsed": "Deadline missed (admins told)",
        "profile": "Member cards",
        "profile_intros": "Introductions read",
        "profiles_filled": "Members with a card",
        "profiles_with_expertise": "Cards naming an expertise",
        "profiles_asked": "Asked privately for missing fields",
        "top_tags": "Most common expertise tags",
        "top_cities": "Cities with most members",
        "tag": "Tag",
        "city": "City",
        "activation": "Activation of newcomers",
        "activation_nudged": "Private nudges sent",
        "activation_activated": "Newcomers who spoke within 7 days",
        "cohort": "Join week",
        "joined": "Joined",
        "activated": "Spoke",
        "rate": "Activation rate",
        "hours": "Open hours ({groups})",
        "hours_notices": "Opening/closing notices",
        "hours_reminders": "Reminders for speaking while closed",
        "hours_members": "Members reminded",
        "hours_strikes": "Strikes",
        "hours_admin_notes": "Reported to the admins",
        "guard": "Quarrel guard",
        "guard_alerts": "Alerts to the admins",
        "guard_members": "Members involved",
        "microphone": "Microphone",
        "microphone_passes": "Questions passed to experts",
        "microphone_asked": "Experts @-mentioned",
        "microphone_experts": "Distinct experts asked",
        "elimination": "Elimination (weekly)",
        "elimination_warned": "Warned",
        "elimination_spared": "Active again after the warning",
        "elimination_removed": "Removed at the deadline",
        "elimination_invited": "Waiting list invited",
        "referrals": "Referrals",
        "referrals_total": "Referrals counted",
        "referrers": "Members who brought someone",
        "inviter": "Inviter",
        "invited": "Brought in",
        "qa": "Q&A",
        "qa_questions": "Questions (with a Q number)",
        "qa_answered": "Questions answered",
        "qa_answers": "Answers",
        "qa_answerers": "Members who answered",
        "qa_votes": "Votes on answers",
        "qa_best": "Best answers",
        "qa_median": "Median wait for a first answer",
        "minutes": "{n:.0f} min",
        "fund": "Community fund",
        "fund_in": "Into the fund",
        "fund_dues": "Dues ({n} payments)",
        "fund_donations": "Donations",
        "fund_awards": "Weekly awards paid",
        "fund_out": "Out in all",
        "fund_balance": "Balance",
        "admin_dues": "Admin dues account (pays duty)",
        "awards": "Weekly awards",
        "week": "Week",
        "pool": "Pool",
        "winners": "Winners",
        "paid": "Paid",
        "for_answers": "answers",
        "for_shares": "shares",
        "challenge": "Deposit challenge \"{name}\"",
        "challenge_participants": "Participants (deposits)",
        "challenge_days": "Days settled",
        "challenge_checkins": "On-time check-ins",
        "challenge_perfect": "Made every day",
        "challenge_refunded": "Deposits returned",
        "challenge_redistributed": "Forfeits shared among those who made it",
        "challenge_to_fund": "Sent to the fund",
        "challenge_pot": "Left in the pot (0 when settled)",
        "duty": "Duty rotation",
        "duty_queue": "Sign-up order: {queue}",
        "on_duty": "On duty",
        "duty_pay": "Pay",
        "kpi": "KPI",
        "kpi_line": "{answerers} answerers · {votes} votes · {resolved} resolved\ndigest {digest} · checklist {done}/{total}",
        "running": " (running)",
        "yes": "published",
        "no": "not published",
        "digest": "Essence and digest",
        "essence_entries": "Essence messages ({n} authors)",
        "digest_periods": "Weekly digests published",
        "digest_entries": "Entries in the digests",
        "digest_authors": "Authors credited",
        "digest_files": "Digest files:",
        "sessions": "Sharing sessions",
        "sessions_held": "Held",
        "session_questions": "Questions collected",
        "medals": "Medals",
        "medal": "Medal",
        "holders": "Holders",
        "titles": "Titles conferred",
        "title_col": "Title",
        "commands_file": "operator commands",
    },
}


@app.command()
def demo(
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same community.")
    ] = 42,
    groups: Annotated[int, typer.Option(min=1, max=50, help="Number of group chats.")] = 3,
    members: Annotated[
        int, typer.Option(min=1, max=100_000, help="Members in all groups together.")
    ] = 300,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days.")] = 30,
    lang: Annotated[
        Lang, typer.Option("--lang", help="Language of the bot and of this summary.")
    ] = Lang.zh,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory for qunyun.yaml, events.jsonl and demo.db (recreated each run).",
        ),
    ] = Path("qunyun-demo"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL instead of DIR/demo.db (it must hold no events yet)."
        ),
    ] = None,
    commands: Annotated[
        bool,
        typer.Option(
            "--commands/--no-commands",
            help="Give the operator's commands (a deposit challenge, a sharing session). "
            "Without them `qunyun replay` of the events file reproduces the run exactly.",
        ),
    ] = True,
    console_: Annotated[
        bool,
        typer.Option(
            "--console/--no-console",
            help="Afterwards, serve the console on 127.0.0.1 with a sign-in for the demo (Ctrl+C stops it).",
        ),
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the console.")] = 8040,
) -> None:
    """Simulate a learning community, run it through the engine and summarise it.

    Writes DIR (default ./qunyun-demo, recreated on every run) with the demo
    config, every simulated event (replayable with `qunyun replay`), the
    operator's commands, the weekly digests and the SQLite database, then
    prints what the bot did and how the groups are doing.

    Example: qunyun demo --members 150 --days 22 --lang en --out /tmp/demo
    """
    console = Console()
    locale = lang.value
    t = LABELS[locale]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[events]:,} " + t["events"].lower()),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            task = progress.add_task(t["progress"], total=days, events=0)

            def on_day(done: int, events: int) -> None:
                progress.update(task, completed=done, events=events)

            run = run_demo(
                seed=seed,
                groups=groups,
                members=members,
                days=days,
                lang=locale,
                out=out,
                db_url=db,
                on_day=on_day,
                commands=commands,
            )
    except QunyunError as exc:
        Console(stderr=True).print(f"[bold red]{t['error']}:[/] {escape(exc.localized(locale))}", highlight=False)
        raise typer.Exit(2) from None
    render(console, run, locale, seed=seed, groups=groups, members=members, days=days)
    if console_:
        serve_demo_console(console, run, locale, port)


def demo_login(db_url: str, community: str) -> tuple[str, str]:
    """A console owner for the demo community: ("demo", a fresh random password)."""
    import secrets

    from qunyun.console.accounts import Accounts
    from qunyun.core.clock import SystemClock
    from qunyun.store.db import open_engine

    password = secrets.token_urlsafe(9)
    engine = open_engine(db_url)
    try:
        accounts = Accounts(engine, SystemClock())
        if any(name == "demo" for name, *_ in accounts.users()):
            accounts.set_password("demo", password)
        else:
            accounts.create_user("demo", password, display_name="demo")
        accounts.grant("demo", community, "owner")
    finally:
        engine.dispose()
    return "demo", password


def serve_demo_console(console: Console, run: DemoRun, locale: str, port: int) -> None:
    """Start the console on the demo's database and print where and how to sign in."""
    import socket

    from qunyun.cli.console import serve_console
    from qunyun.config.model import load_settings

    t = LABELS[locale]
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            problem = t["port_in_use"].format(port=port, config=run.config_path)
            Console(stderr=True).print(f"[bold red]{t['error']}:[/] {escape(problem)}", highlight=False)
            raise typer.Exit(2) from None
    community = next(iter(load_settings(str(run.config_path)).communities))
    user, password = demo_login(run.db_url, community)
    url = f"http://127.0.0.1:{port}/"
    console.print()
    console.print(f"[bold]{t['console_title']}[/] {url}", highlight=False)
    console.print(f"  {t['console_login']}: [bold]{user}[/] / [bold]{password}[/]", highlight=False)
    console.print(f"  [dim]{t['console_later']}[/] qunyun console --config {run.config_path}", highlight=False)
    console.print(f"  [dim]{t['console_stop']}[/]", highlight=False)
    serve_console(run.config_path, run.db_url, host="127.0.0.1", port=port, announce=False)


# ------------------------------------------------------------------ render


def _table(title: str, *columns: str, right: tuple[int, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i in right else "left")
    return table


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


def render(
    console: Console, run: DemoRun, locale: str, *, seed: int, groups: int, members: int, days: int
) -> None:
    """Print the summary of a demo run."""
    t = LABELS[locale]
    s: Summary = run.summary
    console.print()
    title = t["title"].format(
        community=s.community, days=days, groups=groups, members=members, seed=seed
    )
    console.print(f"[bold cyan]{escape(title)}[/]")
    console.print(f"{s.first_day.isoformat()} → {s.last_day.isoformat()}", style="dim")
    cast = t["cast_sep"].join(
        f"{PERSONAS[kind].label[locale]} {count}" for kind, count in run.personas.items() if count
    )
    console.print(t["cast"].format(cast=cast), style="dim", highlight=False)
    console.print(
        _pairs(
            t["overview"],
            [
                (t["events"], f"{s.events:,}"),
                (t["messages"], f"{s.messages:,}"),
                (t["reactions"], f"{s.reactions:,}"),
                (t["joins"], f"{s.joins:,}"),
                (t["leaves"], f"{s.leaves - s.removed:,}"),
                (t["removed"], f"{s.removed:,}"),
                (t["members_now"], f"{s.members_now:,}"),
            ],
        )
    )
    console.print(
        _pairs(
            t["welcome"],
            [
                (t["welcome_messages"], f"{s.welcome_messages:,}"),
                (t["newcomers_welcomed"], f"{s.newcomers_welcomed:,} / {s.joins:,}"),
                (t["charters"], f"{s.charters:,}"),
            ],
        )
    )
    streak = (
        t["streak_days"].format(n=s.longest_streak, name=s.longest_streak_member)
        if s.longest_streak_member
        else "—"
    )
    console.print(
        _pairs(
            t["checkin"],
            [
                (t["checkins"], f"{s.checkins:,}"),
                (t["checkin_members"], f"{s.checkin_members:,}"),
                (t["longest_streak"], streak),
            ],
        )
    )
    dist = _table(t["streaks"], t["longest_streak"], t["members"], right=(1,))
    for label, count in s.streaks:
        dist.add_row(t["streak_bucket"].format(label=label), f"{count:,}")
    console.print(dist)
    console.print(
        _pairs(
            t["levels"],
            [(t["level_ups"], f"{s.level_ups:,}")]
            + [(t["level_held"].format(name=name), f"{count:,}") for name, count in s.levels],
        )
    )
    console.print(
        _pairs(
            t["faq"],
            [(t["faq_answers"], f"{s.faq_answers:,}")]
            + [
                (t["faq_entry"].format(entry=entry), f"{count:,}")
                for entry, count in s.faq_by_entry
            ],
        )
    )
    mod = _table(t["moderation"], t["rule"], t["hits"], t["removals"], right=(1, 2))
    for rule, (hits, removed) in s.by_rule.items():
        mod.add_row(t.get(f"rule_{rule}", rule), f"{hits:,}", f"{removed:,}")
    if not s.by_rule:
        mod.add_row(t["no_hits"], "0", "0")
    mod.add_section()
    mod.add_row(t["warnings"], f"{s.warnings:,}", "")
    mod.add_row(t["deletions"], f"{s.deletions:,}", "")
    mod.add_row(t["removals"], "", f"{s.removals:,}")
    console.print(mod)
    top = _table(
        t["top"],
        t["rank"],
        t["name"],
        t["messages"],
        t["checkins_short"],
        t["points"],
        right=(0, 2, 3, 4),
    )
    for i, person in enumerate(s.top_members, 1):
        top.add_row(
            str(i),
            person.name,
            f"{person.messages:,}",
            f"{person.checkins:,}",
            f"{person.points:,}",
        )
    console.print(top)
    gt = _table(
        t["groups"],
        t["group"],
        t["members_now"],
        t["speakers"],
        t["ratio"],
        t["messages"],
        right=(1, 2, 3, 4),
    )
    for g in s.groups:
        gt.add_row(
            f"{g.name} ({g.key})",
            f"{g.members:,}",
            f"{g.speakers_7d:,}",
            f"{g.active_ratio:.0%}",
            f"{g.messages:,}",
        )
    console.print(gt)
    render_lifecycle(console, s, t)
    render_contribution(console, s, t, locale)
    console.print(
        _pairs(t["bot"], [(playbook, f"{count:,}") for playbook, count in s.bot_actions.items()])
    )
    if s.failures:
        console.print(f"[yellow]{t['failures'].format(n=s.failures)}[/]")
    console.print(
        t["speed"].format(
            events=run.events, actions=run.actions, seconds=run.seconds, rate=run.events_per_second
        )
    )
    console.print()
    console.print(t["files"])
    console.print(f"  {t['config']}: {run.config_path}", highlight=False)
    console.print(f"  {t['events_file']}: {run.events_path}", highlight=False)
    console.print(f"  {t['commands_file']}: {run.commands_path}", highlight=False)
    console.print(f"  {t['db']}: {_safe_url(run.db_url)}", highlight=False)
    if s.digest_files:
        console.print(t["digest_files"])
        for path in s.digest_files:
            console.print(f"  {path}", highlight=False, soft_wrap=True)
    console.print(t["replay"])
    replay_db = f"sqlite:///{run.out / 'replay.db'}"
    console.print(
        f"  qunyun replay {run.events_path} --config {run.config_path} --db {replay_db} "
        f"--actions {run.out / 'actions.jsonl'}",
        highlight=False,
        soft_wrap=True,
    )


def render_lifecycle(console: Console, s: Summary, t: dict[str, str]) -> None:
    """The member-lifecycle sections: gate, rules, cards, activation, hours, guard,
    microphone, elimination and referrals."""
    if s.removed_by:
        removed = _table(t["removed_by"], t["playbook"], t["removed"], right=(1,))
        for playbook, count in s.removed_by.items():
            removed.add_row(playbook, f"{count:,}")
        console.print(removed)
    console.print(
        _pairs(
            t["gate"],
            [
                (t["gate_applicants"], f"{s.gate_applicants:,}"),
                (t["gate_admitted"], f"{s.gate_admitted:,}"),
                (t["gate_failed"], f"{s.gate_failed_attempts:,}"),
                (t["gate_blocked"], f"{s.gate_blocked:,}"),
                (t["gate_removed"], f"{s.gate_removed:,}"),
            ],
        )
    )
    console.print(
        _pairs(
            t["rules"],
            [
                (t["rules_acknowledged"], f"{s.rules_acknowledged:,}"),
                (t["rules_pending"], f"{s.rules_pending:,}"),
                (t["rules_lapsed"], f"{s.rules_lapsed:,}"),
            ],
        )
    )
    console.print(
        _pairs(
            t["profile"],
            [
                (t["profile_intros"], f"{s.profile_intros:,}"),
                (t["profiles_filled"], f"{s.profiles_filled:,}"),
                (t["profiles_with_expertise"], f"{s.profiles_with_expertise:,}"),
                (t["profiles_asked"], f"{s.profiles_asked:,}"),
            ],
        )
    )
    for title, col, rows in (
        (t["top_tags"], t["tag"], s.top_tags),
        (t["top_cities"], t["city"], s.top_cities),
    ):
        if rows:
            table = _table(title, col, t["members"], right=(1,))
            for label, count in rows:
                table.add_row(escape(label), f"{count:,}")
            console.print(table)
    cohorts = _table(
        t["activation"], t["cohort"], t["joined"], t["activated"], t["rate"], right=(1, 2, 3)
    )
    for c in s.cohorts:
        cohorts.add_row(c.cohort, f"{c.joined:,}", f"{c.activated:,}", f"{c.rate:.0%}")
    cohorts.add_section()
    cohorts.add_row(t["activation_nudged"], f"{s.activation_nudged:,}", "", "")
    cohorts.add_row(t["activation_activated"], "", f"{s.activation_activated:,}", "")
    console.print(cohorts)
    if s.hours_groups:
        console.print(
            _pairs(
                t["hours"].format(groups=", ".join(s.hours_groups)),
                [
                    (t["hours_notices"], f"{s.hours_notices:,}"),
                    (t["hours_reminders"], f"{s.hours_reminders:,}"),
                    (t["hours_members"], f"{s.hours_members:,}"),
                    (t["hours_strikes"], f"{s.hours_strikes:,}"),
                    (t["hours_admin_notes"], f"{s.hours_admin_notes:,}"),
                ],
            )
        )
    console.print(
        _pairs(
            t["guard"],
            [(t["guard_alerts"], f"{s.guard_alerts:,}"), (t["guard_members"], f"{s.guard_members:,}")],
        )
    )
    console.print(
        _pairs(
            t["microphone"],
            [
                (t["microphone_passes"], f"{s.microphone_passes:,}"),
                (t["microphone_asked"], f"{s.microphone_asked:,}"),
                (t["microphone_experts"], f"{s.microphone_experts:,}"),
            ],
        )
    )
    console.print(
        _pairs(
            t["elimination"],
            [
                (t["elimination_warned"], f"{s.elimination_warned:,}"),
                (t["elimination_spared"], f"{s.elimination_spared:,}"),
                (t["elimination_removed"], f"{s.elimination_removed:,}"),
                (t["elimination_invited"], f"{s.elimination_invited:,}"),
            ],
        )
    )
    refs = _table(t["referrals"], t["inviter"], t["invited"], right=(1,))
    for name, count in s.top_inviters:
        refs.add_row(escape(name), f"{count:,}")
    refs.add_section()
    refs.add_row(t["referrals_total"], f"{s.referrals:,}")
    refs.add_row(t["referrers"], f"{s.referrers:,}")
    console.print(refs)


def _money(amount: int, currency: str, locale: str) -> str:
    """Minor units for people: ``¥1,234.56`` (zh-CN, CNY) or ``1,234.56 CNY``."""
    sign = "-" if amount < 0 else ""
    a = abs(amount)
    body = f"{a // 100:,}.{a % 100:02d}"
    return f"{sign}¥{body}" if locale == "zh-CN" and currency == "CNY" else f"{sign}{body} {currency}"


def render_contribution(console: Console, s: Summary, t: dict[str, str], locale: str) -> None:
    """Q&A, the fund and its weekly awards, the deposit challenge, the duty rotation,
    essence and the digest, the sharing session, medals and titles."""
    cur = s.currency

    def money(n: int) -> str:
        return _money(n, cur, locale)

    median = (
        t["minutes"].format(n=s.qa_median_minutes) if s.qa_median_minutes is not None else "—"
    )
    console.print(
        _pairs(
            t["qa"],
            [
                (t["qa_questions"], f"{s.qa_questions:,}"),
                (t["qa_answered"], f"{s.qa_answered:,}"),
                (t["qa_answers"], f"{s.qa_answers:,}"),
                (t["qa_answerers"], f"{s.qa_answerers:,}"),
                (t["qa_votes"], f"{s.qa_votes:,}"),
                (t["qa_best"], f"{s.qa_best:,}"),
                (t["qa_median"], median),
            ],
        )
    )
    console.print(
        _pairs(
            t["fund"],
            [
                (t["fund_in"], money(s.fund_in)),
                (t["fund_dues"].format(n=f"{s.dues_payments:,}"), money(s.dues_total)),
                (t["fund_donations"], money(s.donations)),
                (t["fund_awards"], money(s.fund_awards)),
                (t["fund_out"], money(s.fund_out)),
                (t["fund_balance"], money(s.fund_balance)),
                (t["admin_dues"], money(s.admin_dues_balance)),
            ],
        )
    )
    if s.award_weeks:
        awards = _table(t["awards"], t["week"], t["pool"], t["winners"], t["paid"], right=(1, 3))
        for w in s.award_weeks:
            winners = "\n".join(
                f"{rank}. {escape(who)} · {t.get('for_' + kind, kind)} · {money(amount)}"
                for who, kind, rank, amount in w.winners
            )
            awards.add_row(w.week, money(w.pool), winners or "—", money(w.paid))
        console.print(awards)
    if s.challenge is not None:
        console.print(
            _pairs(
                t["challenge"].format(name=escape(s.challenge)),
                [
                    (t["challenge_participants"], f"{s.challenge_participants:,} ({money(s.challenge_deposits)})"),
                    (t["challenge_days"], f"{s.challenge_settled} / {s.challenge_days}"),
                    (t["challenge_checkins"], f"{s.challenge_checkins:,}"),
                    (t["challenge_perfect"], f"{s.challenge_perfect:,}"),
                    (t["challenge_refunded"], money(s.challenge_refunded)),
                    (t["challenge_redistributed"], money(s.challenge_redistributed)),
                    (t["challenge_to_fund"], money(s.challenge_to_fund)),
                    (t["challenge_pot"], money(s.challenge_pot)),
                ],
            )
        )
    if s.duty_weeks or s.duty_queue:
        sep = "、" if locale == "zh-CN" else ", "
        duty = _table(t["duty"], t["week"], t["on_duty"], t["kpi"], t["duty_pay"], right=(3,))

        def shown(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        for dw in s.duty_weeks:
            if dw.checklist_total:
                digest = "—" if dw.digest is None else t["yes" if dw.digest else "no"]
                kpi = t["kpi_line"].format(
                    answerers=shown(dw.answerers), votes=shown(dw.votes), resolved=shown(dw.resolved),
                    digest=digest, done=dw.checklist_done, total=dw.checklist_total,
                )  # fmt: skip
            else:
                kpi = "—"
            duty.add_row(
                dw.week + ("" if dw.final else t["running"]),
                escape(sep.join(dw.on_duty)) or "—",
                kpi,
                money(dw.paid) if dw.final else "—",
            )
        duty.caption = t["duty_queue"].format(queue=sep.join(s.duty_queue) or "—")
        console.print(duty)
    console.print(
        _pairs(
            t["digest"],
            [
                (t["essence_entries"].format(n=f"{s.essence_authors:,}"), f"{s.essence_entries:,}"),
                (t["digest_periods"], ", ".join(s.digest_periods) or "—"),
                (t["digest_entries"], f"{s.digest_entries:,}"),
                (t["digest_authors"], f"{s.digest_authors:,}"),
            ],
        )
    )
    if s.sessions_held or s.session_questions:
        console.print(
            _pairs(
                t["sessions"],
                [
                    (t["sessions_held"], f"{s.sessions_held:,}"),
                    (t["session_questions"], f"{s.session_questions:,}"),
                ],
            )
        )
    if s.medals:
        medals = _table(t["medals"], t["medal"], t["holders"], right=(1,))
        for medal, holders in s.medals:
            medals.add_row(escape(medal), f"{holders:,}")
        console.print(medals)
    if s.titles:
        titles = _table(t["titles"], t["name"], t["title_col"])
        for who, title in s.titles:
            titles.add_row(escape(who), escape(title))
        console.print(titles)


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url

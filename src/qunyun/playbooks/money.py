"""Money helpers the money playbooks share: the community's account codes and
how an amount is written for people.

``fund``, ``challenge``, ``duty`` and ``gate`` move money between these
accounts; the codes are a contract (documented in docs/money.md), so they
are spelled in one place.
"""

from __future__ import annotations

from qunyun.engine import Context


def fmt_money(amount: int, currency: str, locale: str) -> str:
    """Minor units for people: ``¥12.34`` (zh-CN, CNY) or ``12.34 CNY``. Integer arithmetic only."""
    sign = "-" if amount < 0 else ""
    a = abs(amount)
    body = f"{a // 100}.{a % 100:02d}"
    if locale == "zh-CN" and currency == "CNY":
        return f"{sign}¥{body}"
    return f"{sign}{body} {currency}"


def fund_account(currency: str) -> str:
    return f"community:fund:{currency}"


def dues_account(currency: str) -> str:
    return f"community:dues:{currency}"


def suspense_account(currency: str) -> str:
    return f"community:suspense:{currency}"


def external_account(currency: str) -> str:
    return f"external:payments:{currency}"


def payouts_account(currency: str) -> str:
    return f"external:payouts:{currency}"


def home_group(ctx: Context, pid: str, wanted: str | None) -> str:
    """The group key where ``pid``'s jobs run and announce: ``wanted``, else the first
    non-admin group of the community running it on this platform, else this group."""
    groups = [
        g for g in ctx.community.groups.values() if pid in g.playbooks and g.platform == ctx.group.platform
    ]
    if wanted and any(g.key == wanted for g in groups):
        return wanted
    plain = [g for g in groups if not g.admin]
    return (plain or groups or [ctx.group])[0].key

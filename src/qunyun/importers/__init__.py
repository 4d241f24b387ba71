"""Importing exported chat histories as events.

One module per export format, each an :class:`Importer` that streams a file
and yields validated events (and :class:`BadRow` reports for rows it had to
skip). :func:`qunyun.importers.run.import_files` feeds them through the
engine; ``qunyun import FORMAT FILE`` is the command line. See
``docs/import.md``.
"""

from __future__ import annotations

from qunyun.importers.base import BadRow, IdentityChange, Importer, Item, in_time_order
from qunyun.importers.discord import DiscordImporter
from qunyun.importers.gitter import GitterImporter
from qunyun.importers.irc import IrcImporter
from qunyun.importers.pywxdump import PyWxDumpImporter
from qunyun.importers.telegram import TelegramImporter
from qunyun.importers.wechatmsg import WeChatMsgImporter

#: Every format by its command-line name.
FORMATS: dict[str, type[Importer]] = {
    cls.format: cls
    for cls in (
        WeChatMsgImporter,
        PyWxDumpImporter,
        TelegramImporter,
        DiscordImporter,
        GitterImporter,
        IrcImporter,
    )
}

__all__ = [
    "FORMATS",
    "BadRow",
    "DiscordImporter",
    "GitterImporter",
    "IdentityChange",
    "Importer",
    "IrcImporter",
    "Item",
    "PyWxDumpImporter",
    "TelegramImporter",
    "WeChatMsgImporter",
    "in_time_order",
]

"""Telegram: a bot in Telegram groups through the Bot API (long polling or webhook).

See ``docs/telegram.md``. :class:`TelegramAdapter` is the adapter,
:class:`TelegramSettings` the ``deployment.adapters`` item it is configured by,
:class:`BotAPIPeer` a loopback Bot API server for tests.
"""

from qunyun.adapters.telegram.adapter import CAPABILITIES, TelegramAdapter
from qunyun.adapters.telegram.peer import BotAPIPeer
from qunyun.adapters.telegram.settings import TelegramOptions, TelegramSettings

__all__ = ["CAPABILITIES", "BotAPIPeer", "TelegramAdapter", "TelegramOptions", "TelegramSettings"]

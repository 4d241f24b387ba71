"""OneBot adapter: QQ (OneBot 11: NapCat, LLBot) and WeChat (OneBot 12 implementations).

See :mod:`qunyun.adapters.onebot.adapter` and ``docs/onebot.md``. The payloads
in ``fixtures/`` were written from the published OneBot 11 and 12 standards,
not captured from a live QQ or WeChat account.
"""

from qunyun.adapters.onebot.adapter import OneBotAdapter, OneBotOptions

__all__ = ["OneBotAdapter", "OneBotOptions"]

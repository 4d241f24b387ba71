"""The Telegram adapter's settings: one item of ``deployment.adapters``.

::

    deployment:
      adapters:
        - type: telegram
          token_env: QUNYUN_TELEGRAM_TOKEN     # the token from @BotFather, never in the file
          mode: polling                        # or: webhook
          # webhook:
          #   url: https://bot.example.org/telegram/webhook   # what Telegram posts to (HTTPS)
          #   host: 127.0.0.1                                 # where qunyun listens (behind a proxy)
          #   port: 8443
          #   path: /telegram/webhook
          #   secret_env: QUNYUN_TELEGRAM_WEBHOOK_SECRET

:class:`TelegramSettings` validates the YAML item; :meth:`TelegramOptions.from_settings`
reads the secrets from the environment and gives the adapter what it runs with.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qunyun.adapters.base import Limits, Rate
from qunyun.core.errors import ConfigError, Msg

_PLATFORM = r"^[a-z][a-z0-9_-]{0,63}$"
#: What Telegram accepts as a webhook secret token (setWebhook.secret_token).
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
#: A bot token as @BotFather hands it out: "<bot id>:<secret>".
BOT_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,200}$")
#: Telegram only posts webhooks to these ports.
WEBHOOK_PORTS = (443, 80, 88, 8443)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TelegramRate(_Strict):
    count: int = Field(ge=1, le=1_000_000, description="Actions allowed…")
    per_seconds: float = Field(gt=0, le=86_400, description="…per this many seconds.")


class TelegramLimits(_Strict):
    per_group: TelegramRate | None = Field(
        default_factory=lambda: TelegramRate(count=20, per_seconds=60),
        description="Outbound actions per group; Telegram allows about 20 messages a minute in a group.",
    )
    overall: TelegramRate | None = Field(
        default_factory=lambda: TelegramRate(count=30, per_seconds=1),
        description="Outbound actions over the whole bot; Telegram allows about 30 a second.",
    )


class TelegramRetry(_Strict):
    max_attempts: int = Field(default=8, ge=1, le=1000, description="Give an action up after this many attempts.")
    base_seconds: float = Field(default=2.0, gt=0, le=3600, description="First retry waits about this long.")
    cap_seconds: float = Field(default=300.0, gt=0, le=86_400, description="No retry waits longer than this.")


class TelegramWebhook(_Strict):
    url: str | None = Field(
        default=None,
        description="Public HTTPS address Telegram posts updates to; qunyun registers it with setWebhook at start. "
        "Null: register it yourself.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address qunyun listens on.")
    port: int = Field(default=8443, ge=0, le=65_535, description="Port qunyun listens on (0: any free port).")
    path: str = Field(default="/telegram/webhook", pattern=r"^/", description="Path qunyun listens on.")
    secret_env: str = Field(
        min_length=1,
        description="Environment variable holding the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token.",
    )

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                Msg("Telegram only posts to https:// addresses, e.g. https://bot.example.org/telegram/webhook"))
        if parts.port is not None and parts.port not in WEBHOOK_PORTS:
            raise ValueError(Msg("Telegram only posts to ports {ports}, not {port}",
                                 ports=", ".join(map(str, WEBHOOK_PORTS)), port=parts.port))
        return value


class TelegramSettings(_Strict):
    """One Telegram bot (``type: telegram`` under ``deployment.adapters``)."""

    type: Literal["telegram"] = "telegram"
    platform: str = Field(default="telegram", pattern=_PLATFORM, description="The `platform` of its groups.")
    token_env: str = Field(
        default="QUNYUN_TELEGRAM_TOKEN", min_length=1, description="Environment variable holding the bot token."
    )
    mode: Literal["polling", "webhook"] = Field(
        default="polling", description="polling: qunyun asks Telegram (getUpdates); webhook: Telegram posts to qunyun."
    )
    webhook: TelegramWebhook | None = Field(default=None, description="Where to receive updates in webhook mode.")
    api_base: str = Field(
        default="https://api.telegram.org",
        description="Bot API server (change it only for a self-hosted telegram-bot-api server).",
    )
    poll_timeout_seconds: int = Field(default=30, ge=1, le=50, description="Long-polling wait per getUpdates call.")
    api_timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Wait this long for an API response.")
    max_update_bytes: int = Field(
        default=1_048_576, ge=4096, le=64 * 1_048_576, description="Larger updates are reported and dropped."
    )
    invite_hours: int = Field(
        default=24, ge=1, le=24 * 366, description="An invite link sent by the capacity router works this long."
    )
    locale: Literal["zh-CN", "en"] = Field(
        default="zh-CN", description="Language of what the adapter itself writes (the invite link message)."
    )
    limits: TelegramLimits = Field(default_factory=TelegramLimits)
    retry: TelegramRetry = Field(default_factory=TelegramRetry)
    concurrency: int = Field(default=8, ge=1, le=64, description="Actions delivered at once, each of a different group (a group keeps its order).")

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(Msg("must be an http(s) address, e.g. https://api.telegram.org"))
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_needed(self) -> TelegramSettings:
        if self.mode == "webhook" and self.webhook is None:
            raise ValueError(Msg("mode: webhook needs a `webhook:` block with at least `secret_env`"))
        return self


@dataclass(frozen=True)
class TelegramOptions:
    """What one Telegram adapter runs with (secrets already read)."""

    token: str
    platform: str = "telegram"
    mode: str = "polling"
    api_base: str = "https://api.telegram.org"
    webhook_url: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_path: str = "/telegram/webhook"
    webhook_secret: str | None = None
    poll_timeout: int = 30
    api_timeout: float = 30.0
    max_update_bytes: int = 1_048_576
    invite_hours: int = 24
    locale: str = "zh-CN"
    limits: Limits = field(default_factory=lambda: Limits(Rate(20, 60.0), Rate(30, 1.0)))
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if not BOT_TOKEN.match(self.token):
            raise ValueError("the bot token does not look like <bot id>:<secret> (as @BotFather gives it)")
        if self.mode not in ("polling", "webhook"):
            raise ValueError("mode must be polling or webhook")
        if self.mode == "webhook" and (not self.webhook_secret or not SECRET_TOKEN.match(self.webhook_secret)):
            raise ValueError("webhook mode needs a secret of 1-256 characters A-Z, a-z, 0-9, _ and -")

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    @classmethod
    def from_settings(
        cls, spec: TelegramSettings, env: Mapping[str, str] | None = None, *, where: str = "deployment.adapters"
    ) -> TelegramOptions:
        """Read the secrets named in ``spec``; ConfigError says which variable is missing or wrong."""
        env = os.environ if env is None else env
        problems: list[str] = []
        token = env.get(spec.token_env, "")
        if not token:
            problems.append(Msg("{where}.token_env: environment variable {name} is not set",
                                where=where, name=spec.token_env))
        elif not BOT_TOKEN.match(token):
            problems.append(Msg("{where}.token_env: {name} does not hold a bot token (<bot id>:<secret>, from @BotFather)",
                                where=where, name=spec.token_env))
        secret: str | None = None
        hook = spec.webhook
        if spec.mode == "webhook" and hook is not None:
            secret = env.get(hook.secret_env, "")
            if not secret:
                problems.append(Msg("{where}.webhook.secret_env: environment variable {name} is not set",
                                    where=where, name=hook.secret_env))
            elif not SECRET_TOKEN.match(secret):
                problems.append(Msg(
                    "{where}.webhook.secret_env: {name} may only hold 1-256 characters A-Z, a-z, 0-9, _ "
                    "and - (Telegram's rule); generate one with {command}",
                    where=where, name=hook.secret_env,
                    command="`python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
                ))
        if problems:
            raise ConfigError(problems, hint=Msg("see docs/telegram.md"))

        def rate(r: TelegramRate | None) -> Rate | None:
            return None if r is None else Rate(r.count, r.per_seconds)

        return cls(
            token=token,
            platform=spec.platform,
            mode=spec.mode,
            api_base=spec.api_base,
            webhook_url=hook.url if hook else None,
            webhook_host=hook.host if hook else "127.0.0.1",
            webhook_port=hook.port if hook else 8443,
            webhook_path=hook.path if hook else "/telegram/webhook",
            webhook_secret=secret,
            poll_timeout=spec.poll_timeout_seconds,
            api_timeout=spec.api_timeout_seconds,
            max_update_bytes=spec.max_update_bytes,
            invite_hours=spec.invite_hours,
            locale=spec.locale,
            limits=Limits(rate(spec.limits.per_group), rate(spec.limits.overall)),
            max_attempts=spec.retry.max_attempts,
            backoff_base=spec.retry.base_seconds,
            backoff_cap=spec.retry.cap_seconds,
            concurrency=spec.concurrency,
        )

"""The Matrix adapter's settings (one entry of ``deployment.adapters``).

::

    deployment:
      adapters:
        - type: matrix
          homeserver: https://matrix.example.org
          user_id: "@qunyun:example.org"
          access_token_env: QUNYUN_MATRIX_TOKEN     # or password_env: QUNYUN_MATRIX_PASSWORD
          state_file: /var/lib/qunyun/matrix-state.json

Secrets never stand in the file: it names the environment variables that
hold them, and :meth:`MatrixSettings.secrets` reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qunyun.adapters.base import Limits, Rate
from qunyun.core.errors import ConfigError

_USER_ID = re.compile(r"^@[a-z0-9._=/+-]+:[A-Za-z0-9.:\[\]-]+$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatrixRate(_Strict):
    count: int = Field(ge=1, le=1_000_000, description="Actions allowed…")
    per_seconds: float = Field(gt=0, le=86_400, description="…per this many seconds.")


class MatrixLimits(_Strict):
    per_group: MatrixRate | None = Field(
        default_factory=lambda: MatrixRate(count=30, per_seconds=60),
        description="Outbound actions per room (null: unlimited).",
    )
    overall: MatrixRate | None = Field(
        default_factory=lambda: MatrixRate(count=10, per_seconds=1),
        description="Outbound actions over the whole homeserver (null: unlimited).",
    )

    def limits(self) -> Limits:
        def rate(r: MatrixRate | None) -> Rate | None:
            return None if r is None else Rate(r.count, r.per_seconds)

        return Limits(rate(self.per_group), rate(self.overall))


class MatrixRetry(_Strict):
    max_attempts: int = Field(default=10, ge=1, le=1000, description="Give an action up after this many attempts.")
    base_seconds: float = Field(default=2.0, gt=0, le=3600, description="First retry waits about this long.")
    cap_seconds: float = Field(default=300.0, gt=0, le=86_400, description="No retry waits longer than this.")


class RoomTemplate(_Strict):
    """How ``create_group`` creates a room (``POST /createRoom``)."""

    name: str | None = Field(default=None, max_length=255, description="The new room's name.")
    topic: str | None = Field(default=None, max_length=4096, description="The new room's topic.")
    preset: Literal["private_chat", "public_chat", "trusted_private_chat"] = Field(
        default="private_chat", description="Matrix room preset (join rules and history visibility)."
    )
    visibility: Literal["private", "public"] = Field(
        default="private", description="`public` lists the room in the homeserver's room directory."
    )
    invite: list[str] = Field(default_factory=list, description="User ids invited at once (e.g. the admins).")
    power_users: dict[str, int] = Field(
        default_factory=dict, description="Power levels given at creation (the bot keeps 100)."
    )
    alias: bool = Field(
        default=True,
        description=(
            "Give the room a local alias derived from the action id. This makes a redelivered "
            "create_group find the room it created instead of creating a second one."
        ),
    )

    @field_validator("invite")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        bad = [u for u in value if not _USER_ID.match(u)]
        if bad:
            raise ValueError(f"not Matrix user ids: {', '.join(bad)}; write them like @name:example.org")
        return value


class MatrixSettings(_Strict):
    """One Matrix bot account on one homeserver."""

    type: Literal["matrix"] = "matrix"
    platform: str = Field(
        default="matrix", pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="The `platform` of the groups it serves."
    )
    homeserver: str = Field(description="The homeserver's client API base URL, e.g. https://matrix.example.org.")
    user_id: str = Field(description="The bot's Matrix user id, e.g. @qunyun:example.org.")
    access_token_env: str | None = Field(
        default=None, description="Environment variable holding the bot's access token."
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the bot's password (used when there is no token)."
    )
    device_id: str = Field(
        default="QUNYUN",
        min_length=1,
        max_length=64,
        description=(
            "The device a password login uses. Keep it stable: the homeserver de-duplicates "
            "transaction ids (our action ids) per device."
        ),
    )
    state_file: str = Field(
        default="qunyun-matrix-state.json",
        min_length=1,
        description="Where the sync position (next_batch), DM rooms and created rooms are kept between runs.",
    )
    sync_timeout_seconds: float = Field(default=30.0, ge=0, le=300, description="Long-poll timeout of /sync.")
    timeline_limit: int = Field(
        default=100, ge=1, le=1000, description="Events per room per /sync; more than this is a gap (limited timeline)."
    )
    backfill: bool = Field(default=True, description="Fill a sync gap from /messages.")
    backfill_limit: int = Field(default=1000, ge=0, le=100_000, description="At most this many events per gap are fetched.")
    msgtype: Literal["m.text", "m.notice"] = Field(
        default="m.text", description="The msgtype of the bot's messages (`m.notice` tells other bots not to answer)."
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Wait this long for an API answer.")
    room_templates: dict[str, RoomTemplate] = Field(
        default_factory=dict, description="Templates for `create_group`, by name."
    )
    limits: MatrixLimits = Field(default_factory=MatrixLimits)
    retry: MatrixRetry = Field(default_factory=MatrixRetry)
    concurrency: int = Field(default=8, ge=1, le=64, description="Actions delivered at once, each of a different group (a group keeps its order).")

    @field_validator("homeserver")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL, e.g. https://matrix.example.org")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _USER_ID.match(value):
            raise ValueError("must be a Matrix user id like @qunyun:example.org")
        return value

    @field_validator("access_token_env", "password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV.match(value):
            raise ValueError("must name an environment variable (letters, digits, _), not hold the secret itself")
        return value

    @model_validator(mode="after")
    def _some_login(self) -> MatrixSettings:
        if self.access_token_env is None and self.password_env is None:
            raise ValueError("set access_token_env or password_env: the bot needs one way to log in")
        return self

    def secrets(self, env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
        """(access token, password) from the environment; ConfigError if a named variable is unset."""
        env = os.environ if env is None else env
        token = env.get(self.access_token_env) if self.access_token_env else None
        password = env.get(self.password_env) if self.password_env else None
        if not token and not password:
            names = " or ".join(n for n in (self.access_token_env, self.password_env) if n)
            raise ConfigError([f"matrix adapter {self.platform}: environment variable {names} is not set"],
                              hint="export the bot's access token (or password) before `qunyun run`")
        return token or None, password or None


def parse_settings(data: Any) -> MatrixSettings:
    """Validate one adapter entry (raises pydantic's ValidationError)."""
    return MatrixSettings.model_validate(data)


__all__ = ["MatrixLimits", "MatrixRate", "MatrixRetry", "MatrixSettings", "RoomTemplate", "parse_settings"]

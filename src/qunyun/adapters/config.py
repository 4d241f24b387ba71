"""The live adapters' settings: ``deployment.adapters`` in the YAML file.

The core configuration model does not know this key yet, so ``qunyun run``
reads it from the raw document itself (with line numbers, like the rest)
and hands the remaining document to the normal loader. Secrets never stand
in the file: it names environment variables (``access_token_env``,
``secret_env``) and they are read here.

::

    deployment:
      adapters:
        - type: onebot
          platform: onebot          # the `platform` of the groups it serves
          version: 11               # 11: QQ (NapCat, LLBot); 12: WeChat implementations
          host: 127.0.0.1
          port: 8080
          ws_path: /onebot/ws       # reverse WebSocket: the implementation connects here
          http_path: /onebot/http   # HTTP POST events (v11) / webhook (v12); null: off
          access_token_env: QUNYUN_ONEBOT_TOKEN
          secret_env: QUNYUN_ONEBOT_SECRET
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qunyun.config.loader import Located, load_file, suggest
from qunyun.config.model import Settings, resolve
from qunyun.config.problems import pydantic_problems
from qunyun.core.errors import ConfigError, Msg

_PLATFORM = r"^[a-z][a-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateSpec(_Strict):
    count: int = Field(ge=1, le=1_000_000, description="Actions allowed…")
    per_seconds: float = Field(gt=0, le=86_400, description="…per this many seconds.")


class LimitsSpec(_Strict):
    per_group: RateSpec | None = Field(
        default_factory=lambda: RateSpec(count=20, per_seconds=60),
        description="Outbound actions per group (null: unlimited).",
    )
    overall: RateSpec | None = Field(
        default_factory=lambda: RateSpec(count=5, per_seconds=1),
        description="Outbound actions over the whole platform (null: unlimited).",
    )


class RetrySpec(_Strict):
    max_attempts: int = Field(default=8, ge=1, le=1000, description="Give an action up after this many attempts.")
    base_seconds: float = Field(default=2.0, gt=0, le=3600, description="First retry waits about this long.")
    cap_seconds: float = Field(default=300.0, gt=0, le=86_400, description="No retry waits longer than this.")


class OneBotSpec(_Strict):
    type: Literal["onebot"]
    platform: str = Field(default="onebot", pattern=_PLATFORM, description="The `platform` of its groups.")
    version: Literal[11, 12] = Field(default=11, description="OneBot standard version spoken by the implementation.")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65_535, description="Port to listen on (0: any free port).")
    ws_path: str = Field(default="/onebot/ws", pattern=r"^/", description="Reverse WebSocket path.")
    http_path: str | None = Field(default="/onebot/http", pattern=r"^/", description="HTTP event receiver path; null: off.")
    access_token_env: str | None = Field(default=None, description="Environment variable holding the access token.")
    secret_env: str | None = Field(default=None, description="v11: environment variable holding the HTTP POST secret.")
    self_id: str | None = Field(default=None, description="Accept only this bot account (X-Self-ID / self.user_id).")
    extensions: list[Literal["wx.delete_groupmember"]] = Field(
        default_factory=list, description="v12 extension actions the implementation offers."
    )
    max_payload_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576, description="Larger payloads are dropped.")
    api_timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Wait this long for an API response.")
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    concurrency: int = Field(default=8, ge=1, le=64, description="Actions delivered at once, each of a different group (a group keeps its order).")

    @field_validator("self_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _adapter_types() -> dict[str, type[BaseModel]]:
    """Adapter type → its settings model (imported here, so each adapter package stays optional)."""
    from qunyun.adapters.matrix.settings import MatrixSettings
    from qunyun.adapters.telegram.settings import TelegramSettings

    return {"onebot": OneBotSpec, "telegram": TelegramSettings, "matrix": MatrixSettings}


#: The known adapter types, for messages; see :func:`_adapter_types`.
ADAPTER_TYPES: tuple[str, ...] = ("onebot", "telegram", "matrix")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_adapters(raw: Any, located: Located, env: Mapping[str, str] | None = None) -> list[Any]:
    """Validate ``deployment.adapters``; returns the adapters' options, raises ConfigError."""
    from qunyun.adapters.onebot.adapter import OneBotOptions

    env = os.environ if env is None else env
    base: tuple[str | int, ...] = ("deployment", "adapters")
    if raw is None or raw == []:
        raise ConfigError(
            [Msg("{where}: {key}: no adapter is configured",
                 where=located.where(base if raw is not None else ("deployment",)), key="deployment.adapters")],
            hint=Msg("add one, e.g. `{example}`; see docs/adapters.md",
                     example="deployment: {adapters: [{type: onebot, version: 11, port: 8080}]}"),
        )
    if not isinstance(raw, list):
        raise ConfigError([Msg("{where}: {key}: must be a list of adapters", where=located.where(base),
                               key="deployment.adapters")])
    problems: list[str] = []
    out: list[Any] = []
    platforms: dict[str, int] = {}
    for i, item in enumerate(raw):
        loc = (*base, i)
        kind = item.get("type") if isinstance(item, dict) else None
        model = _adapter_types().get(kind) if isinstance(kind, str) else None
        if model is None:
            what = Msg("required key is missing") if kind is None else Msg(
                "unknown adapter type {type!r}{suggestion}", type=kind, suggestion=suggest(str(kind), ADAPTER_TYPES))
            where = located.where((*loc, "type")) if isinstance(item, dict) else located.where(loc)
            problems.append(Msg("{where}: {key}: {problem}; known: {known}", where=where,
                                key=f"deployment.adapters.{i}.type", problem=what, known=", ".join(ADAPTER_TYPES)))
            continue
        try:
            spec: Any = model.model_validate(item)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, located, loc, list(model.model_fields)))
            continue
        if spec.platform in platforms:
            problems.append(Msg(
                "{where}: {key}: {platform!r} is already served by adapter {other}; "
                "give each adapter its own platform name",
                where=located.where((*loc, "platform")), key=f"deployment.adapters.{i}.platform",
                platform=spec.platform, other=platforms[spec.platform],
            ))
            continue
        platforms[spec.platform] = i
        if not isinstance(spec, OneBotSpec):
            try:
                out.append(_other_options(spec, env, where=f"{located.where(loc)}: deployment.adapters.{i}"))
            except ConfigError as exc:
                problems.extend(exc.problems)
            continue
        secrets: dict[str, str | None] = {}
        for key in ("access_token_env", "secret_env"):
            name = getattr(spec, key)
            if name is None:
                secrets[key] = None
                continue
            value = env.get(name)
            if not value:
                problems.append(Msg("{where}: {key}: environment variable {name} is not set",
                                    where=located.where((*loc, key)), key=f"deployment.adapters.{i}.{key}", name=name))
            secrets[key] = value or None
        if spec.secret_env and spec.version == 12:
            problems.append(Msg(
                "{where}: {key}: OneBot 12 webhooks are authenticated by the access token, not a signature; "
                "use access_token_env",
                where=located.where((*loc, "secret_env")), key=f"deployment.adapters.{i}.secret_env",
            ))
        if spec.access_token_env is None and not _is_loopback(spec.host):
            problems.append(Msg(
                "{where}: {key}: listening on {host} without an access token would let anyone push events; "
                "set access_token_env (or listen on 127.0.0.1)",
                where=located.where((*loc, "host")), key=f"deployment.adapters.{i}.host", host=spec.host,
            ))
        if spec.extensions and spec.version == 11:
            problems.append(Msg("{where}: {key}: extensions are for OneBot 12",
                                where=located.where((*loc, "extensions")), key=f"deployment.adapters.{i}.extensions"))
        out.append(OneBotOptions.from_spec(spec, access_token=secrets["access_token_env"], secret=secrets["secret_env"]))
    if problems:
        raise ConfigError(problems, hint=Msg("see docs/adapters.md and docs/onebot.md"))
    return out


def _other_options(spec: BaseModel, env: Mapping[str, str], *, where: str) -> Any:
    """Telegram's options, or Matrix's settings with the secrets read from the environment."""
    from qunyun.adapters.matrix.settings import MatrixSettings
    from qunyun.adapters.telegram.settings import TelegramOptions, TelegramSettings

    if isinstance(spec, TelegramSettings):
        return TelegramOptions.from_settings(spec, env, where=where)
    assert isinstance(spec, MatrixSettings)
    try:
        token, password = spec.secrets(env)
    except ConfigError as exc:
        raise ConfigError([Msg("{where}: {problem}", where=where, problem=p) for p in exc.problems]) from None
    return MatrixOptions(spec, token, password)


class MatrixOptions:
    """A Matrix adapter's validated settings with its secrets (never printed)."""

    def __init__(self, settings: Any, access_token: str | None, password: str | None) -> None:
        self.settings = settings
        self.platform: str = settings.platform
        self.access_token = access_token
        self.password = password
        self.max_attempts: int = settings.retry.max_attempts
        self.concurrency: int = settings.concurrency
        self.backoff_base: float = settings.retry.base_seconds
        self.backoff_cap: float = settings.retry.cap_seconds

    def __repr__(self) -> str:
        return f"MatrixOptions(platform={self.platform!r}, homeserver={self.settings.homeserver!r})"


def split_adapters(located: Located) -> tuple[Located, Any]:
    """The document without ``deployment.adapters``, and that key's raw value (None if absent)."""
    data = located.data
    if not isinstance(data, dict):
        return located, None
    deployment = data.get("deployment")
    if not isinstance(deployment, dict) or "adapters" not in deployment:
        return located, None
    rest = {k: v for k, v in deployment.items() if k != "adapters"}
    raw = deployment["adapters"]
    return Located({**data, "deployment": rest}, located.lines, located.source), raw


def load_run_config(path: str, env: Mapping[str, str] | None = None) -> tuple[Settings, list[Any]]:
    """The deployment settings and the validated adapters of the file at ``path``."""
    located = load_file(path)
    rest, raw = split_adapters(located)
    settings = resolve(rest)
    return settings, parse_adapters(raw, located, env)

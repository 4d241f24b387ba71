"""The deployment configuration: one YAML file, validated by pydantic.

deployment → communities (id, name, time zone, locale, roles) → groups
(platform, room, capacity) → playbooks per community with per-group
overrides → templates. See ``docs/configuration.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qunyun.config.loader import Located, load_file, load_yaml, suggest
from qunyun.config.problems import pydantic_problems
from qunyun.core.errors import ConfigError, Msg

Locale = Literal["zh-CN", "en"]
Role = Literal["owner", "admin", "assistant", "guest", "member"]
ROLES: tuple[str, ...] = ("owner", "admin", "assistant", "guest", "member")
Slug = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupSpec(_Strict):
    id: str = Field(min_length=1, max_length=256, description="The `group` field of events.")
    platform: str = Field(default="sim", min_length=1)
    name: str | None = None
    room: str | None = Field(default=None, description="Platform room/chat id, if it differs from id.")
    capacity: int = Field(default=500, ge=1, le=1_000_000)
    #: The admins' group: where notify_admins actions go.
    admin: bool = False
    playbooks: dict[str, dict[str, Any]] = Field(default_factory=dict)


class CommunitySpec(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    locale: Locale = "zh-CN"
    #: Events from groups not listed here join this community (useful for replays).
    catch_all: bool = False
    roles: dict[Role, list[str]] = Field(default_factory=dict)
    groups: list[GroupSpec] = Field(default_factory=list)
    playbooks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    templates: dict[str, str | dict[Locale, str]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                Msg("unknown time zone {zone!r}; use an IANA name like Asia/Shanghai or Europe/Berlin", zone=value)
            ) from None
        return value


class DeploymentSpec(_Strict):
    database: str | None = Field(
        default=None, description="Database URL; $QUNYUN_DATABASE_URL or the default file if unset."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    adapters: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "The chat platforms `qunyun run` connects to (onebot, telegram, matrix); each is checked "
            "when `qunyun run` starts. See docs/adapters.md."
        ),
    )


class ConfigSpec(_Strict):
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    communities: list[CommunitySpec] = Field(min_length=1)


# --- the resolved configuration the engine uses ---------------------------------


@dataclass(frozen=True)
class GroupSettings:
    key: str
    platform: str
    name: str
    room: str
    capacity: int
    admin: bool
    community: CommunitySettings
    #: Enabled playbooks, in the order the community lists them, with their
    #: validated configuration for this group.
    playbooks: dict[str, Any]


@dataclass(frozen=True)
class CommunitySettings:
    id: str
    name: str
    timezone: str
    tz: ZoneInfo
    locale: str
    catch_all: bool
    roles: dict[str, str]
    #: ``{"welcome.batch": {"zh-CN": "...", "en": "..."}}`` overrides.
    templates: dict[str, dict[str, str]]
    #: community-level playbook settings as written (before group overrides)
    playbook_specs: dict[str, dict[str, Any]]
    groups: dict[tuple[str, str], GroupSettings] = field(default_factory=dict, compare=False)

    def role_of(self, user_id: str) -> str:
        return self.roles.get(user_id, "member")


@dataclass(frozen=True)
class Settings:
    """The validated configuration, with playbook configs resolved per group."""

    source: str
    database: str | None
    log_level: str
    communities: dict[str, CommunitySettings]

    def group(self, platform: str, key: str) -> GroupSettings | None:
        for community in self.communities.values():
            found = community.groups.get((platform, key))
            if found is not None:
                return found
        return None

    def catch_all(self) -> CommunitySettings | None:
        for community in self.communities.values():
            if community.catch_all:
                return community
        return None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# the same tokens as engine.templates.render: {{ and }} are literal braces
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def _known_fields(model: type[BaseModel]) -> list[str]:
    names: set[str] = set(model.model_fields)
    for sub in (GroupSpec, CommunitySpec, DeploymentSpec, ConfigSpec):
        names |= set(sub.model_fields)
    return sorted(names)


def resolve(located: Located, registry: Any | None = None) -> Settings:
    """Validate a located YAML document and resolve every group's playbooks."""
    from qunyun.engine.registry import default_registry

    reg = registry or default_registry()
    try:
        spec = ConfigSpec.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(
            pydantic_problems(exc, located, (), _known_fields(ConfigSpec)),
            hint=Msg("see docs/configuration.md, or start from `qunyun init`"),
        ) from None

    problems: list[str] = []
    communities: dict[str, CommunitySettings] = {}
    seen_groups: dict[tuple[str, str], str] = {}
    for ci, cspec in enumerate(spec.communities):
        cloc: tuple[str | int, ...] = ("communities", ci)
        if cspec.id in communities:
            problems.append(Msg("{where}: community id {community!r} is used twice",
                                where=located.where((*cloc, "id")), community=cspec.id))
        roles: dict[str, str] = {}
        for role in ROLES:
            for user in cspec.roles.get(role, []):  # type: ignore[call-overload]
                roles.setdefault(user, role)
        for name in cspec.playbooks:
            if name not in reg:
                problems.append(Msg(
                    "{where}: unknown playbook {playbook!r}{suggestion}; installed: {installed}",
                    where=located.where((*cloc, "playbooks", name)), playbook=name,
                    suggestion=suggest(name, reg.ids()), installed=", ".join(reg.ids()),
                ))
        templates: dict[str, dict[str, str]] = {}
        for tkey, tval in cspec.templates.items():
            where = located.where((*cloc, "templates", tkey))
            pid, _, tname = tkey.partition(".")
            known = reg.get(pid)
            if known is None or tname not in known.templates:
                choices = [f"{p}.{t}" for p in reg.ids() for t in reg[p].templates]
                problems.append(Msg("{where}: unknown template {template!r}{suggestion}", where=where,
                                    template=tkey, suggestion=suggest(tkey, choices)))
                continue
            per_locale: dict[str, str] = (
                {"zh-CN": tval, "en": tval} if isinstance(tval, str) else {str(k): v for k, v in tval.items()}
            )
            for loc_name, text in per_locale.items():
                for ph in (m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None):
                    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ph):
                        problems.append(Msg(
                            "{where}: template {template!r} ({locale}) has a bad placeholder {{{placeholder}}}; "
                            "placeholders are plain names like {{name}}; write {{{{ and }}}} for literal braces",
                            where=where, template=tkey, locale=loc_name, placeholder=ph,
                        ))
            templates[tkey] = per_locale
        community = CommunitySettings(
            id=cspec.id,
            name=cspec.name,
            timezone=cspec.timezone,
            tz=ZoneInfo(cspec.timezone),
            locale=cspec.locale,
            catch_all=cspec.catch_all,
            roles=roles,
            templates=templates,
            playbook_specs={k: v for k, v in cspec.playbooks.items() if k in reg},
        )
        # Validate community-level playbook settings once, so errors point there.
        for name, raw in community.playbook_specs.items():
            try:
                reg[name].config_model.model_validate(raw or {})
            except ValidationError as exc:
                problems.extend(
                    pydantic_problems(
                        exc,
                        located,
                        (*cloc, "playbooks", name),
                        sorted(reg[name].config_model.model_fields),
                    )
                )
        for gi, gspec in enumerate(cspec.groups):
            gloc = (*cloc, "groups", gi)
            gkey = (gspec.platform, gspec.id)
            if gkey in seen_groups:
                problems.append(Msg(
                    "{where}: group {group!r} on {platform} is already in community {other!r}",
                    where=located.where((*gloc, "id")), group=gspec.id, platform=gspec.platform,
                    other=seen_groups[gkey],
                ))
                continue
            seen_groups[gkey] = cspec.id
            for name in gspec.playbooks:
                if name not in community.playbook_specs:
                    problems.append(Msg(
                        "{where}: playbook {playbook!r} is not enabled for community {community!r}; "
                        "add it under the community's playbooks first{suggestion}",
                        where=located.where((*gloc, "playbooks", name)), playbook=name, community=cspec.id,
                        suggestion=suggest(name, community.playbook_specs),
                    ))
            group_problems, group = _group_settings(gspec, community, reg, located, gloc)
            problems.extend(group_problems)
            if group is not None:
                community.groups[gkey] = group
        communities[cspec.id] = community
    if sum(1 for c in communities.values() if c.catch_all) > 1:
        problems.append(Msg("{where}: only one community may set catch_all: true", where=located.source))
    if problems:
        raise ConfigError(problems, hint=Msg("fix the lines above; `qunyun doctor --config FILE` checks again"))
    return Settings(
        source=located.source,
        database=spec.deployment.database,
        log_level=spec.deployment.log_level,
        communities=communities,
    )


def _group_settings(
    gspec: GroupSpec,
    community: CommunitySettings,
    reg: Any,
    located: Located,
    gloc: tuple[str | int, ...],
) -> tuple[list[str], GroupSettings | None]:
    problems: list[str] = []
    resolved: dict[str, Any] = {}
    for name, base in community.playbook_specs.items():
        raw = _merge(base or {}, gspec.playbooks.get(name) or {})
        try:
            cfg = reg[name].config_model.model_validate(raw)
        except ValidationError as exc:
            override = gspec.playbooks.get(name) or {}
            # Report only what the group's own override got wrong; a bad
            # community setting was already reported once, at its own line.
            own = [e for e in exc.errors() if e["loc"] and str(e["loc"][0]) in override]
            if own:
                problems.extend(
                    pydantic_problems(
                        ValidationError.from_exception_data(exc.title, own),  # type: ignore[arg-type]
                        located,
                        (*gloc, "playbooks", name),
                        sorted(reg[name].config_model.model_fields),
                    )
                )
            continue
        if cfg.enabled:
            resolved[name] = cfg
    return problems, GroupSettings(
        key=gspec.id,
        platform=gspec.platform,
        name=gspec.name or gspec.id,
        room=gspec.room or gspec.id,
        capacity=gspec.capacity,
        admin=gspec.admin,
        community=community,
        playbooks=resolved,
    )


def auto_group(community: CommunitySettings, platform: str, key: str, registry: Any | None = None) -> GroupSettings:
    """Settings for a group first seen in events, in a ``catch_all`` community."""
    from qunyun.engine.registry import default_registry

    reg = registry or default_registry()
    found = community.groups.get((platform, key))
    if found is not None:
        return found
    resolved = {}
    for name, raw in community.playbook_specs.items():
        cfg = reg[name].config_model.model_validate(raw or {})
        if cfg.enabled:
            resolved[name] = cfg
    group = GroupSettings(
        key=key,
        platform=platform,
        name=key,
        room=key,
        capacity=500,
        admin=False,
        community=community,
        playbooks=resolved,
    )
    community.groups[(platform, key)] = group
    return group


def load_settings(path: str, registry: Any | None = None) -> Settings:
    """Read, validate and resolve a configuration file."""
    return resolve(load_file(path), registry)


def settings_from_text(text: str, source: str = "<config>", registry: Any | None = None) -> Settings:
    return resolve(load_yaml(text, source), registry)

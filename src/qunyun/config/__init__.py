"""Configuration: one YAML file per deployment, validated with located errors."""

from qunyun.config.model import (
    CommunitySettings,
    GroupSettings,
    Settings,
    auto_group,
    load_settings,
    settings_from_text,
)

__all__ = [
    "CommunitySettings",
    "GroupSettings",
    "Settings",
    "auto_group",
    "load_settings",
    "settings_from_text",
]

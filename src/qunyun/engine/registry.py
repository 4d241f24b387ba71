"""Finding playbooks: the ``qunyun.playbooks`` entry-point group.

Built-in playbooks are declared in our own ``pyproject.toml`` under that
group, exactly as a third-party package would declare theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from importlib.metadata import entry_points

from qunyun.core.errors import PlaybookError
from qunyun.engine.playbook import Playbook

GROUP = "qunyun.playbooks"


class Registry:
    """Playbook classes by id."""

    def __init__(self, playbooks: dict[str, type[Playbook]] | None = None) -> None:
        self._by_id: dict[str, type[Playbook]] = {}
        for cls in (playbooks or {}).values():
            self.add(cls)

    def add(self, cls: type[Playbook]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Playbook)):
            raise PlaybookError(f"{cls!r} is not a Playbook subclass")
        if not cls.id:
            raise PlaybookError(f"{cls.__qualname__} has no id")
        other = self._by_id.get(cls.id)
        if other is not None and other is not cls:
            raise PlaybookError(
                f"two playbooks claim the id {cls.id!r}: {other.__module__} and {cls.__module__}"
            )
        self._by_id[cls.id] = cls

    def __contains__(self, pid: object) -> bool:
        return pid in self._by_id

    def __getitem__(self, pid: str) -> type[Playbook]:
        return self._by_id[pid]

    def get(self, pid: str) -> type[Playbook] | None:
        return self._by_id.get(pid)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def __iter__(self) -> Iterator[type[Playbook]]:
        return iter(self._by_id.values())


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Every playbook installed in this environment."""
    registry = Registry()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:
            raise PlaybookError(
                f"playbook entry point {ep.name!r} ({ep.value}) failed to load: {exc}",
                hint="reinstall the package that provides it, or uninstall it",
            ) from exc
        if getattr(cls, "id", None) != ep.name:
            raise PlaybookError(
                f"entry point {ep.name!r} points at a playbook whose id is {getattr(cls, 'id', None)!r}"
            )
        registry.add(cls)
    return registry

"""The playbook contract.

A playbook (玩法) is one community-operations mechanism: welcome, check-in,
levels... It is a class with metadata and handlers. The engine creates one
instance per process and calls it with a :class:`~qunyun.engine.context.Context`
that carries everything it may touch: the event's group and community, its
own configuration for that group, its state, the ledger, the scheduler and
the outbox. A playbook never reads the wall clock, never imports a platform
SDK and keeps no state on ``self`` between calls (the store is the state).

Built-in playbooks are registered exactly like third-party ones, through the
``qunyun.playbooks`` entry-point group. See ``docs/playbooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from qunyun.core.events import BaseEvent
    from qunyun.engine.context import Command, Context, JobCall, Posting


class PlaybookConfig(BaseModel):
    """Base for every playbook's configuration model.

    Unknown keys are errors (a typo must not be silently ignored).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Switch the playbook off for one group while the community has it on.
    enabled: bool = True


class Playbook:
    """Base class of every playbook. Override the handlers you need."""

    #: Stable id, used in configuration, state, action ``playbook`` fields.
    id: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: The typed configuration; validated per group from the YAML.
    config_model: ClassVar[type[PlaybookConfig]] = PlaybookConfig
    #: Action types this playbook may emit (checked when it emits; empty means
    #: any). An adapter that cannot do one of them gets it downgraded to
    #: ``notify_admins`` by the engine.
    emits: ClassVar[frozenset[str]] = frozenset()
    #: Event types ``on_event`` wants; others are never delivered (speed).
    handles: ClassVar[frozenset[str]] = frozenset()
    #: True if ``on_postings`` should see ledger postings made during an event.
    watches_ledger: ClassVar[bool] = False
    #: Operator commands ``on_command`` understands: ``{name: one-line help}``.
    commands: ClassVar[dict[str, str]] = {}
    #: One line in each locale, shown by ``--help`` style listings and docs.
    summary: ClassVar[dict[str, str]] = {}
    #: Default message templates: ``{name: {"zh-CN": ..., "en": ...}}``.
    #: Operators override them in the config as ``templates: {"<id>.<name>": ...}``.
    templates: ClassVar[dict[str, dict[str, str]]] = {}

    def setup(self, ctx: Context) -> None:
        """Called once per group when the engine first sees the clock.

        Register recurring jobs here with ``ctx.schedule(..., cron=...)``;
        registering is idempotent.
        """

    def on_event(self, ctx: Context, event: BaseEvent) -> None:
        """Handle one event of a type listed in :attr:`handles`."""

    def on_job(self, ctx: Context, job: JobCall) -> None:
        """Handle a scheduled job that this playbook registered."""

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        """Carry out an operator's command (``Engine.command``); return a JSON result.

        Raise :class:`~qunyun.core.errors.CommandError` to refuse it: nothing
        the command did is kept and the message is shown to the operator.
        List the command names in :attr:`commands` so tools can offer them.
        """
        from qunyun.core.errors import CommandError, Msg

        raise CommandError(Msg("playbook {playbook!r} has no command {command!r}", playbook=self.id,
                               command=command.name))

    def on_postings(self, ctx: Context, postings: list[Posting]) -> None:
        """See the ledger postings other playbooks made for this event or job."""

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        """Everything this playbook keeps about ``member`` (a platform user id).

        The default covers the state convention: the key ``m:<member>`` and
        keys under ``m:<member>:``. Override it if you keep more.
        """
        found = dict(ctx.state.scan(f"m:{member}:"))
        own = ctx.state.get(f"m:{member}")
        if own is not None:
            found[f"m:{member}"] = own
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Delete personal data about ``member``; keep anonymous aggregates."""
        for key in self.export_member(ctx, member):
            ctx.state.delete(key)

    def merge_member(self, ctx: Context, source: str, target: str) -> list[str]:
        """Two platform ids were linked as one person: ``source``'s data becomes ``target``'s.

        Called once per community when an operator links ``source`` (the user id
        of a member with history) into the member whose own user id is
        ``target``; later events from ``source`` reach playbooks as ``target``.
        The default moves the state convention's keys (``m:<source>`` and
        ``m:<source>:…``) to the same keys of ``target``. Where ``target``
        already has a key, its value is kept and ``source``'s dropped; those keys
        are returned so the operator is told. Override to combine values (see
        ``checkin`` and ``levels``) or to move keys of your own.
        """
        kept: list[str] = []
        own = ctx.state.get(f"m:{source}")
        found = [(f"m:{source}", own)] if own is not None else []
        found.extend(ctx.state.scan(f"m:{source}:"))
        for key, value in found:
            new_key = f"m:{target}" + key[len(f"m:{source}"):]
            if ctx.state.get(new_key) is None:
                ctx.state.put(new_key, value)
            else:
                kept.append(new_key)
            ctx.state.delete(key)
        return kept

"""Operator commands (``Engine.command``) and reading another playbook's state."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from qunyun.core.errors import CommandError
from qunyun.engine import Command, Context, Playbook, Registry, default_registry
from qunyun.testing import Chat


class Notes(Playbook):
    id = "notes"
    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {"add": "add a note", "boom": "fails half-way"}
    summary: ClassVar[dict[str, str]] = {"zh-CN": "笔记", "en": "notes"}

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.state.put(f"m:{event.actor.id}", {"said": event.text})

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        if command.name == "add":
            ctx.state.put("note", command.args["text"])
            ctx.ledger.award_points(command.args["member"], 5, "note")
            ctx.send(f"note: {command.args['text']}")
            return {"saved": True}
        if command.name == "boom":
            ctx.state.put("note", "half")
            ctx.send("never sent")
            raise CommandError("refused on purpose")
        return super().on_command(ctx, command)


class Reader(Playbook):
    id = "reader"
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "读者", "en": "reader"}

    def on_event(self, ctx: Context, event: Any) -> None:
        seen = ctx.state_of("notes").get(f"m:{event.actor.id}")
        keys = [k for k, _ in ctx.state_of("notes").scan("m:")]
        ctx.send(f"notes say {seen} / {keys} / mic={ctx.enabled('microphone')}")


def _registry() -> Registry:
    reg = Registry({p.id: p for p in default_registry()})
    reg.add(Notes)
    reg.add(Reader)
    return reg


def _chat(db_url: str) -> Chat:
    return Chat({"notes": {}, "reader": {}}, db_url=db_url, registry=_registry())


def test_a_command_changes_state_ledger_and_outbox_in_one_go(db_url: str) -> None:
    with _chat(db_url) as chat:
        assert chat.command("notes", "add", text="hello", member="u1") == {"saved": True}
        chat.assert_sent("note: hello")
        assert chat.state("notes", "note") == "hello"
        assert chat.points("u1") == 5
        assert [r["kind"] for r in chat.records("notes")] == ["command"]
        chat.assert_ledger_balanced()


def test_a_refused_command_leaves_nothing_behind(db_url: str) -> None:
    with _chat(db_url) as chat:
        with pytest.raises(CommandError, match="refused on purpose"):
            chat.command("notes", "boom")
        assert chat.state("notes", "note") is None
        chat.assert_nothing_sent()
        assert chat.records("notes") == []


def test_unknown_commands_playbooks_and_communities_are_named(db_url: str) -> None:
    with _chat(db_url) as chat:
        with pytest.raises(CommandError, match="no command 'nope'"):
            chat.command("notes", "nope")
        with pytest.raises(CommandError, match="'checkin' is not enabled"):
            chat.command("checkin", "anything")
        with pytest.raises(CommandError, match="unknown community"):
            chat.engine.command("elsewhere", "notes", "add")


def test_a_command_retried_with_its_id_runs_once(db_url: str) -> None:
    with _chat(db_url) as chat:
        chat.command("notes", "add", id="c-1", text="a", member="u1")
        assert len(chat.take()) == 1
        assert chat.command("notes", "add", id="c-1", text="a", member="u1") == {"duplicate": True}
        chat.assert_nothing_sent()
        assert chat.points("u1") == 5
        chat.command("notes", "add", id="c-2", text="b", member="u1")
        assert chat.points("u1") == 10


def test_a_playbook_reads_another_playbooks_state_but_not_its_own_layer(db_url: str) -> None:
    with _chat(db_url) as chat:
        chat.say("u1", "hi")
        chat.assert_sent("notes say {'said': 'hi'} / ['m:u1'] / mic=False")


class Router(Playbook):
    id = "router"
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "路由", "en": "router"}

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.invite(event.actor.id, group=event.text)


def test_a_playbook_may_address_another_group_of_its_community(db_url: str) -> None:
    reg = _registry()
    reg.add(Router)
    with Chat({"router": {}}, db_url=db_url, registry=reg, groups=("g-main", "g-two")) as chat:
        chat.say("u1", "g-two")
        (action,) = chat.take()
        assert (action["type"], action["group"], action["member"]) == ("invite", "g-two", "u1")
        chat.say("u1", "g-nowhere")
        chat.assert_nothing_sent()
        assert "has no group 'g-nowhere'" in chat.failures()[0]["error"]


class Echo(Playbook):
    id = "echo"
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "回声", "en": "echo"}

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.send(f"note is {ctx.state_of('notes').get('note')}; jobs {ctx.job_due('later')}")


def test_a_running_engine_sees_what_another_process_wrote(db_url: str) -> None:
    """A command given from the CLI (another engine on the same database) while
    the live engine runs: the live engine's next event sees the new state."""
    from qunyun.engine import Engine

    reg = _registry()
    reg.add(Echo)
    with Chat({"notes": {}, "echo": {}}, db_url=db_url, registry=reg) as live:
        live.say("u1", "hi")
        live.assert_sent("note is None")  # the live engine has now cached notes' state
        other = Engine(live.db, live.settings, clock=live.clock, registry=reg)
        other.command("test", "notes", "add", {"text": "from the CLI", "member": "u2"})
        live.say("u1", "again")
        live.assert_sent("note is from the CLI")
        assert live.points("u2") == 5
        live.assert_ledger_balanced()
        # and the other way round: the CLI's engine sees the live engine's writes
        live.command("notes", "add", text="live again", member="u2")
        other.command("test", "notes", "add", {"text": "cli again", "member": "u2"})
        assert live.points("u2") == 15
        live.assert_ledger_balanced()


def test_an_engine_that_only_reads_does_not_make_others_reload(db_url: str) -> None:
    from qunyun.engine import Engine

    reg = _registry()
    reg.add(Echo)
    with Chat({"notes": {}, "echo": {}}, db_url=db_url, registry=reg) as live:
        live.say("u1", "hi")
        epoch = live.scalar("SELECT epoch FROM communities WHERE id = 'test'")
        reader = Engine(live.db, live.settings, clock=live.clock, registry=reg)
        reader.export_member("test", "sim", "u1")
        reader.advance_to(live.now)
        assert live.scalar("SELECT epoch FROM communities WHERE id = 'test'") == epoch
        live.say("u1", "again")
        assert live.scalar("SELECT epoch FROM communities WHERE id = 'test'") == epoch + 1


def test_a_query_answers_and_keeps_nothing(db_url: str) -> None:
    with _chat(db_url) as chat:
        answer = chat.engine.query(next(iter(chat.settings.communities)), "notes", "add", {"text": "draft", "member": "u1"})
        assert answer == {"saved": True}
        assert chat.state("notes", "note") is None
        assert chat.points("u1") == 0
        chat.assert_nothing_sent()
        assert chat.records("notes") == []
        with pytest.raises(CommandError, match="refused on purpose"):
            chat.engine.query(next(iter(chat.settings.communities)), "notes", "boom")
        # a real command afterwards still works normally
        assert chat.command("notes", "add", text="kept", member="u1") == {"saved": True}
        assert chat.state("notes", "note") == "kept"

"""Nobody reads the wall clock except ``qunyun.core.clock``.

An AST scan of every module under ``src/qunyun``: a call to
``datetime.now``/``utcnow``/``today``, ``date.today`` or ``time.time`` /
``time.time_ns`` anywhere but ``core/clock.py`` fails the suite. Imports are
followed (``from datetime import datetime as dt; dt.now()`` is caught), and
so are textual attribute calls like ``datetime.now()`` on names the scanner
cannot resolve.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "qunyun"
ALLOWED = {SRC / "core" / "clock.py"}

#: Fully qualified callables that read the wall clock.
FORBIDDEN = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
    }
)
#: The same, as the last two parts of an attribute call we cannot resolve.
FORBIDDEN_TAILS = frozenset(tuple(name.split(".")[-2:]) for name in FORBIDDEN)


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}() reads the wall clock; use a Clock (ctx.now)"


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}
        self.hits: list[Hit] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _dotted(self, node: ast.expr) -> list[str] | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        return None

    def visit_Call(self, node: ast.Call) -> None:
        parts = self._dotted(node.func)
        if parts:
            head = self.aliases.get(parts[0])
            qualified = ".".join([head, *parts[1:]]) if head else ".".join(parts)
            textual = tuple(parts[-2:]) in FORBIDDEN_TAILS and len(parts) >= 2
            if qualified in FORBIDDEN or textual:
                self.hits.append(Hit(self.path, node.lineno, ".".join(parts)))
        self.generic_visit(node)


def scan_source(source: str, path: str = "<string>") -> list[Hit]:
    """Every wall-clock read in ``source``."""
    scanner = _Scanner(path)
    scanner.visit(ast.parse(source, filename=path))
    return scanner.hits


def scan_tree(root: Path, allowed: set[Path]) -> list[Hit]:
    hits: list[Hit] = []
    for path in sorted(root.rglob("*.py")):
        if path.resolve() in allowed:
            continue
        hits.extend(scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(root.parent))))
    return hits


def test_no_wall_clock_reads_outside_the_clock_module() -> None:
    files = list(SRC.rglob("*.py"))
    assert len(files) > 20  # we are scanning the real package
    hits = scan_tree(SRC, ALLOWED)
    assert not hits, "\n".join(str(h) for h in hits)


def test_the_clock_module_is_the_one_exception() -> None:
    # proof that the scanner would see the real thing: clock.py itself reads the clock
    hits = scan_source((SRC / "core" / "clock.py").read_text(encoding="utf-8"))
    assert [h.call for h in hits] == ["datetime.now"]


# --------------------------------------------------------------------------- self-test


@pytest.mark.parametrize(
    ("source", "call"),
    [
        ("import datetime\nx = datetime.datetime.now()\n", "datetime.datetime.now"),
        ("import datetime\nx = datetime.datetime.utcnow()\n", "datetime.datetime.utcnow"),
        ("import datetime\nx = datetime.date.today()\n", "datetime.date.today"),
        ("from datetime import datetime\nx = datetime.now()\n", "datetime.now"),
        ("from datetime import datetime, UTC\nx = datetime.now(UTC)\n", "datetime.now"),
        ("from datetime import datetime as dt\nx = dt.now()\n", "dt.now"),
        ("from datetime import date\nx = date.today()\n", "date.today"),
        ("import datetime as d\nx = d.date.today()\n", "d.date.today"),
        ("import time\nx = time.time()\n", "time.time"),
        ("import time as t\nx = t.time_ns()\n", "t.time_ns"),
        ("from time import time\nx = time()\n", "time"),
        ("from time import time as wall\nx = wall()\n", "wall"),
        ("def f(datetime):\n    return datetime.now()\n", "datetime.now"),
        ("x = [d.isoformat() for d in (datetime.utcnow(),)]\n", "datetime.utcnow"),
    ],
)
def test_the_scanner_catches_planted_clock_reads(source: str, call: str) -> None:
    hits = scan_source(source, "planted.py")
    assert [h.call for h in hits] == [call]
    assert hits[0].path == "planted.py"
    assert hits[0].line == source.rstrip("\n").count("\n") + 1  # each plant is on its last line
    assert "wall clock" in str(hits[0])


@pytest.mark.parametrize(
    "source",
    [
        "x = clock.now()\n",
        "x = ctx.now\n",
        "x = self.clock.now()\n",
        "import time\nx = time.monotonic()\nx = time.perf_counter()\n",
        "from datetime import datetime\nx = datetime.fromisoformat('2026-01-01T00:00:00+00:00')\n",
        "from datetime import date\nx = date(2026, 1, 1)\n",
        "x = 'datetime.now()'  # in a string\n",
        "# datetime.now() in a comment\n",
        "x = now()\n",
        "x = today()\n",
    ],
)
def test_the_scanner_lets_honest_code_through(source: str) -> None:
    assert scan_source(source) == []


def test_the_scanner_reports_every_hit_with_its_line(tmp_path: Path) -> None:
    pkg = tmp_path / "qunyun"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "clock.py").write_text("from datetime import datetime\nx = datetime.now()\n")
    (pkg / "engine.py").write_text(
        "import time\n\n\ndef f():\n    return time.time()\n\n\ny = 1\nz = time.time()\n"
    )
    hits = scan_tree(pkg, {(pkg / "core" / "clock.py").resolve()})
    assert [(h.path, h.line) for h in hits] == [("qunyun/engine.py", 5), ("qunyun/engine.py", 9)]

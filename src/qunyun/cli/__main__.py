"""``python -m qunyun.cli``: the same as the ``qunyun`` command."""

from qunyun.cli import main

main()

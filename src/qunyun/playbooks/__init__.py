"""Built-in playbooks. Each is registered through the ``qunyun.playbooks``
entry-point group in ``pyproject.toml``, exactly like a third-party one.

``BUILTINS`` lists them in one place, in the order a starter config enables them.
"""

BUILTINS = ("moderation", "welcome", "checkin", "faq", "levels")

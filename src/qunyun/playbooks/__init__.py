"""Built-in playbooks. Each is registered through the ``qunyun.playbooks``
entry-point group in ``pyproject.toml``, exactly like a third-party one.

``BUILTINS`` lists them in one place, in their working order: the order a
starter configuration lists them in, which is the order they see an event.
``moderation`` comes first so it can hide spam from the rest; ``gate`` next,
so an applicant's answers and entry fee are not taken for chat or dues;
``capacity`` after ``gate``, so a refused applicant is never routed;
``challenge`` before ``fund``, so a deposit is not taken for dues;
``sessions`` before the rest of the chat playbooks, so floor mode can keep
the floor; ``knowledge`` before ``faq``; ``medals`` after everything whose
counters it reads (check-in, referrals, qa, essence, sessions, digest).

``STARTER_ON`` are the ones a new community starts with switched on; the
others are written to the starter configuration switched off, with every
setting shown, because each of them changes who may stay in the group or
when it may talk — a decision for the operator.
"""

BUILTINS = (
    "moderation",
    "gate",
    "rules",
    "capacity",
    "referrals",
    "challenge",
    "fund",
    "welcome",
    "profile",
    "activation",
    "hours",
    "guard",
    "sessions",
    "checkin",
    "knowledge",
    "faq",
    "microphone",
    "qa",
    "essence",
    "digest",
    "titles",
    "medals",
    "levels",
    "duty",
    "rhythm",
    "core_group",
    "structure",
    "elimination",
    "flash",
    "launch",
    "report",
)

STARTER_ON = ("moderation", "welcome", "checkin", "faq", "levels")

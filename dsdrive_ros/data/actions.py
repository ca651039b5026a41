"""The expert's driving actions, and finding the action a text states.

`action_from_text(text)` finds the stated action in any text (teacher output, VLM answer, or the
student's generated reasoning): it reads the `Plan:` clause when there is one, otherwise the
sentences that announce an intention ("I will ...", "the ego should ..."), otherwise the whole
text, and returns the first non-negated action phrase.
"""
from __future__ import annotations

import re

__all__ = ["ACTIONS", "action_from_text", "plan_segment"]

ACTIONS: tuple[str, ...] = ("stop", "slow", "go", "turn left", "turn right")
"""The expert's actions, exactly as `SceneState.action` and the dataset's `action` field spell them."""

# Order inside one action does not matter; across actions the earliest match in the text wins.
_ACTION_PATTERNS: dict[str, tuple[str, ...]] = {
    "turn left": (
        r"turn(?:ing)?\s+(?:to\s+the\s+)?left",
        r"(?:a|the)\s+left\s+turn",
        r"left\s+turn",
        r"(?:take|hang|make|swing)\s+a\s+left",
        r"go\s+left",
        r"turn\s+left",
    ),
    "turn right": (
        r"turn(?:ing)?\s+(?:to\s+the\s+)?right",
        r"(?:a|the)\s+right\s+turn",
        r"right\s+turn",
        r"(?:take|hang|make|swing)\s+a\s+right",
        r"go\s+right",
    ),
    "stop": (
        r"stop(?:ping)?",
        r"come\s+to\s+(?:a\s+)?(?:full\s+|complete\s+)?(?:stop|halt)",
        r"halt",
        r"brake\s+to\s+(?:a\s+)?standstill",
        r"stay\s+(?:stopped|still|put|stationary)",
        r"remain\s+(?:stopped|still|stationary)",
        r"hold\s+(?:still|position)",
        r"wait(?:ing)?",
    ),
    "slow": (
        r"slow(?:ing)?(?:\s+down)?",
        r"reduc(?:e|ing)\s+(?:my\s+|the\s+|our\s+)?speed",
        r"decelerat(?:e|ing)",
        r"eas(?:e|ing)\s+off",
        r"brak(?:e|ing)\s+(?:gently|lightly|a\s+little)",
    ),
    "go": (
        r"go(?:ing)?(?:\s+straight|\s+ahead|\s+on)?",
        r"proceed(?:ing)?",
        r"continu(?:e|ing)",
        r"keep\s+(?:going|driving|moving|straight|my\s+speed|the\s+speed|following)",
        r"drive\s+on",
        r"carry\s+on",
        r"accelerat(?:e|ing)",
        r"speed\s+up",
        r"maintain(?:ing)?\s+(?:my\s+|the\s+|our\s+)?(?:speed|pace|course)",
        r"cruis(?:e|ing)",
        r"follow(?:ing)?\s+the\s+lane",
    ),
}

_NEGATION = re.compile(
    r"(?:\bno\s+need\s+to|\bnot|n't|\bnever|\bno|\bwithout|\bavoid(?:ing)?|\binstead\s+of|\brather\s+than)"
    r"(?:\s+\w+){0,2}\s*$"
)
_PLAN_LABEL = re.compile(r"\b(?:driving\s+plan|plan|action|decision)\s*:", re.I)
_ANY_LABEL = re.compile(
    r"\b(?:scene|objects?|key\s+objects?|plan|driving\s+plan|action|decision|reason|explanation|why)\s*:",
    re.I,
)
_INTENT = re.compile(
    r"\b(?:i\s+will|i'll|i\s+should|i\s+must|i\s+need\s+to|we\s+will|we\s+should|the\s+ego\s+(?:will|should|must)"
    r"|the\s+(?:vehicle|car)\s+(?:will|should|must)|my\s+plan|the\s+plan|best\s+action|should\s+now)\b",
    re.I,
)
_COMPILED: list[tuple[str, re.Pattern[str]]] = [
    (action, re.compile(r"\b(?:" + "|".join(pats) + r")\b", re.I))
    for action, pats in _ACTION_PATTERNS.items()
]


def _first_action(segment: str) -> str | None:
    best: tuple[int, int, str] | None = None  # (start, -length, action)
    for action, pattern in _COMPILED:
        for m in pattern.finditer(segment):
            if _NEGATION.search(segment[: m.start()].lower()):
                continue
            key = (m.start(), -(m.end() - m.start()), action)
            if best is None or key < best:
                best = key
            break  # first non-negated match of this action is enough
    return None if best is None else best[2]


def plan_segment(text: str) -> str | None:
    """The text of the `Plan:` clause (up to the next label), or None when there is no label."""
    m = _PLAN_LABEL.search(text)
    if not m:
        return None
    rest = text[m.end():]
    nxt = _ANY_LABEL.search(rest)
    return rest[: nxt.start()] if nxt else rest


def action_from_text(text: str) -> str | None:
    """The driving action a text states, as one of `ACTIONS`, or None when it states none.

    Looks at the `Plan:` clause first, then at sentences announcing an intention, then at the whole
    text; within the chosen part the earliest non-negated action phrase wins ("no need to stop, keep
    going" -> "go"). Turn phrases ("turn left", "take a left", "left turn") map to "turn left"/"turn
    right"; "slow down"/"reduce speed"/"decelerate" to "slow"; "stop"/"halt"/"wait" to "stop";
    "go"/"proceed"/"continue"/"keep going"/"accelerate" to "go".
    """
    if not text:
        return None
    seg = plan_segment(text)
    if seg is not None:
        found = _first_action(seg)
        if found is not None:
            return found
    sentences = re.split(r"(?<=[.!?;])\s+|\n+", text)
    for s in sentences:
        if _INTENT.search(s):
            found = _first_action(s)
            if found is not None:
                return found
    return _first_action(text)

"""Rooms, booking requests and grading of the room-selector example (all invented here).

The office books rooms by a house policy the agent is not told up front: each team has
its home room, whatever the meeting. An optimizer has to discover the policy from graded transcripts.
"""

from __future__ import annotations

import random
import re
from typing import Any

import attrs

__all__ = ["POLICY", "ROOMS", "Room", "grade", "make_tasks", "rooms_text", "split_tasks"]


@attrs.frozen
class Room:
    name: str
    seats: int
    equipment: tuple[str, ...]


ROOMS: tuple[Room, ...] = (
    Room("Pebble", 2, ("phone",)),
    Room("Quartz", 4, ("whiteboard",)),
    Room("Maple", 6, ("screen",)),
    Room("Harbor", 8, ("whiteboard", "sticky notes")),
    Room("Summit", 12, ("screen", "video camera")),
    Room("Atlas", 40, ("stage", "microphones")),
)

# team -> (its home room, booking requests of that team). The request names the team and the
# purpose; the policy depends on the team only.
POLICY: dict[str, tuple[str, tuple[str, ...]]] = {
    "legal": (
        "Pebble",
        (
            "Legal team: contract review with a supplier.",
            "Legal team: meeting with outside counsel.",
            "Legal team: NDA check for a new partner.",
            "Legal team: audit preparation.",
            "Legal team: update on the privacy policy.",
            "Legal team: weekly case review.",
        ),
    ),
    "recruiting": (
        "Quartz",
        (
            "Recruiting team: planning the hiring fairs.",
            "Recruiting team: weekly pipeline review.",
            "Recruiting team: call with a staffing agency.",
            "Recruiting team: candidate feedback session.",
            "Recruiting team: retrospective of the last campaign.",
            "Recruiting team: rehearsal of a campus talk.",
        ),
    ),
    "sales": (
        "Maple",
        (
            "Sales team: quarterly forecast.",
            "Sales team: brainstorm for a new pitch.",
            "Sales team: weekly call with the reps.",
            "Sales team: meeting with a customer from a bank.",
            "Sales team: onboarding of a new account executive.",
            "Sales team: pricing discussion.",
        ),
    ),
    "design": (
        "Harbor",
        (
            "Design team: review of the new logo.",
            "Design team: user interview.",
            "Design team: sketching the checkout flow.",
            "Design team: call with the branding agency.",
            "Design team: mockups for a client.",
            "Design team: critique of the mobile app.",
        ),
    ),
    "platform": (
        "Summit",
        (
            "Platform team: daily stand-up.",
            "Platform team: database migration plan.",
            "Platform team: interview with an SRE candidate.",
            "Platform team: incident review.",
            "Platform team: caching design session.",
            "Platform team: demo of the deploy tool.",
        ),
    ),
    "people": (
        "Atlas",
        (
            "People team: company all-hands.",
            "People team: promotion talk with a manager.",
            "People team: summer party planning.",
            "People team: onboarding of new graduates.",
            "People team: engagement survey workshop.",
            "People team: monthly meeting with the CEO.",
        ),
    ),
}


def rooms_text() -> str:
    """The room list as the agent sees it: one line per room."""
    return "\n".join(f"- {r.name}: {r.seats} seats, {', '.join(r.equipment)}" for r in ROOMS)


def make_tasks(seed: int) -> list[dict[str, Any]]:
    """Every request once, shuffled with ``seed``; each task carries its right room."""
    tasks = [
        {"request": request, "answer": room} for room, requests in POLICY.values() for request in requests
    ]
    random.Random(seed).shuffle(tasks)
    return tasks


def split_tasks(seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Train (12), validation (12) and held-out test (12) sets, two per team in each."""
    tasks = make_tasks(seed)
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for room, _ in POLICY.values():
        mine = [t for t in tasks if t["answer"] == room]
        train += mine[:2]
        val += mine[2:4]
        test += mine[4:6]
    rng = random.Random(seed + 1)
    for part in (train, val, test):
        rng.shuffle(part)
    return train, val, test


_NAMES = re.compile(r"\b(" + "|".join(r.name for r in ROOMS) + r")\b", re.IGNORECASE)


def grade(reply: str, answer: str) -> float:
    """1.0 when the reply names exactly one room and it is ``answer``; else 0.0."""
    named = {m.lower() for m in _NAMES.findall(reply or "")}
    return 1.0 if named == {answer.lower()} else 0.0


def train_tasks(seed: int = 0) -> list[dict[str, Any]]:
    """The training requests of :func:`split_tasks` (for ``room_selector.toml``)."""
    return split_tasks(seed)[0]


def val_tasks(seed: int = 0) -> list[dict[str, Any]]:
    """The validation requests of :func:`split_tasks` (for ``room_selector.toml``)."""
    return split_tasks(seed)[1]

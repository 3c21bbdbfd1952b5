"""Rooms, booking requests and grading of the room-selector example (all invented here).

The office books rooms by a house policy the agent is not told up front: each kind of
meeting has its room. An optimizer has to discover the policy from graded transcripts.
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

# kind of meeting -> (room, ways people ask for it)
POLICY: dict[str, tuple[str, tuple[str, ...]]] = {
    "one-to-one or phone call": (
        "Pebble",
        (
            "I need a quiet spot for a phone call with a supplier at 9:30.",
            "Monthly one-to-one with my manager, just the two of us.",
            "Private call with a doctor's office, 15 minutes.",
            "Quick 1:1 catch-up with a new hire this afternoon.",
            "Need to take a confidential call with our lawyer.",
            "Two of us need to talk salary, somewhere private.",
        ),
    ),
    "job interview": (
        "Quartz",
        (
            "Interviewing a candidate for the backend role at 3pm, three interviewers.",
            "Final-round interview with a designer, panel of two.",
            "Phone screen follow-up: onsite interview with a data analyst.",
            "We are hiring an accountant; interview slot needed tomorrow morning.",
            "Technical interview with a whiteboard coding exercise for an intern.",
            "Hiring panel meets a product manager candidate at noon.",
        ),
    ),
    "client demo": (
        "Maple",
        (
            "Showing our new dashboard to a client, four visitors.",
            "Sales demo for a prospect from a bank on Thursday.",
            "A customer wants to see the mobile app before signing.",
            "Demo of the beta release to two people from our partner company.",
            "Presenting the pricing proposal to a potential customer.",
            "Walkthrough of the product for visitors from a retailer.",
        ),
    ),
    "workshop or brainstorm": (
        "Harbor",
        (
            "Design sprint with the product team, lots of sketching.",
            "Brainstorm names for the new product, six of us.",
            "Retrospective for the mobile team with sticky notes.",
            "Planning workshop to map the customer journey.",
            "Ideation session for the marketing campaign.",
            "Whole morning of story mapping with the developers.",
        ),
    ),
    "call with remote team": (
        "Summit",
        (
            "Weekly sync with the Berlin office over video.",
            "Stand-up with half the team dialing in remotely.",
            "Video meeting with the offshore QA team.",
            "Quarterly review with regional managers joining online.",
            "Hybrid planning meeting, eight here and five on video.",
            "Cross-office video call about the migration.",
        ),
    ),
    "all-hands or training": (
        "Atlas",
        (
            "Company all-hands on Friday, about thirty people.",
            "Security training for every new employee this month.",
            "Town hall with the CEO and the whole department.",
            "Onboarding lecture for twenty-five graduates.",
            "Guest speaker talk open to all staff.",
            "Annual compliance training session for the sales floor.",
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
    """Train (12), validation (12) and held-out test (12) sets, two per kind of meeting in each."""
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

"""A requested rollout change, before anything is written: the ordered changes and what stands in the way.

The CLI and the admin API both turn a request (a phase, some flags, an emergency rollback) into a
`Proposal` here, so both validate, order and check alike; each then shows it, asks or refuses, and
applies it through `rollout.apply`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auth_migration.flags import Flags, parse_flags
from auth_migration.rollout.changes import FlagChange, emergency_rollback, plan_changes
from auth_migration.rollout.checks import Blocker
from auth_migration.rollout.phases import PHASES

__all__ = ["Proposal", "propose_emergency_rollback", "propose_flags", "propose_phase"]


@dataclass(frozen=True, slots=True)
class Proposal:
    #: What was asked, for messages and replies: "phase 3", "flags", "emergency rollback".
    target: str
    #: Validated and safely ordered; empty when the flags already hold the request.
    changes: list[FlagChange]
    blockers: list[Blocker] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "changes": [{"flag": c.name, "old": c.old, "new": c.new} for c in self.changes],
            "blockers": [{"reason": b.reason, "figures": b.figures} for b in self.blockers],
        }


def propose_phase(
    current: Mapping[str, str], number: int, *, blockers: Callable[[int, Flags], list[Blocker]]
) -> Proposal:
    """`blockers(number, flags in force)` runs the safety checks (rollout.checks.phase_blockers on a
    connection); it is not called when nothing would change."""
    changes = plan_changes(current, PHASES[number])
    found = blockers(number, parse_flags(current)[0]) if changes else []
    return Proposal(f"phase {number}", changes, found)


def propose_flags(current: Mapping[str, str], desired: Mapping[str, str]) -> Proposal:
    """Raises InvalidRequest for an unknown flag or a value it cannot take."""
    return Proposal("flags", plan_changes(current, desired))


def propose_emergency_rollback(current: Mapping[str, str]) -> Proposal:
    return Proposal("emergency rollback", plan_changes(current, emergency_rollback(current)))

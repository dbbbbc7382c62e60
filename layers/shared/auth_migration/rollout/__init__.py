"""Rollout control: the phases, flag changes in a safe order, their audit, and the checks that stop an
unsafe step. Used by the operator's CLI (and, to come, the admin API and AutoRollback).

phases (the reference document's four flag sets), changes (validate and order a set of changes so no
intermediate state is less safe than both ends), store (SSM Parameter Store, where functions read the
flags), audit (flag_changes: who, when, what, why, from where), checks (what must hold before a phase).
"""

from auth_migration.rollout.changes import FlagChange, emergency_rollback, plan_changes
from auth_migration.rollout.phases import PHASES, phase_of

__all__ = ["PHASES", "FlagChange", "emergency_rollback", "phase_of", "plan_changes"]

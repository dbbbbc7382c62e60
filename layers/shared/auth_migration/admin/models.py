"""The admin API's request and reply bodies (pydantic): what Event Handler validates and OpenAPI describes."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    model_validator,
)

__all__ = [
    "BlockerBody",
    "ChangeBody",
    "FlagBody",
    "MigrationReport",
    "RolloutChange",
    "RolloutChangeReply",
    "RolloutRefusal",
    "RolloutView",
]

_MAX_FLAGS: Final = 20


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("reason must not be blank")
    return value.strip()


def _as_stored(value: Any) -> Any:
    # A JSON client may send 10 or true; SSM stores strings, and flags.canonical_value validates them.
    # Anything else (a list, an object) is left for the str check to refuse.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


#: A flag's value as SSM stores it; numbers and booleans are accepted and stored as their text.
FlagValue = Annotated[StrictStr, BeforeValidator(_as_stored), Field(max_length=4096)]


class RolloutChange(BaseModel):
    """Exactly one of `phase`, `flags` or `emergency_rollback`, with the reason kept in the audit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_not_blank)]
    phase: Annotated[int, Field(ge=1, le=4, strict=True)] | None = None
    flags: (
        Annotated[
            dict[Annotated[str, Field(min_length=1, max_length=64)], FlagValue],
            Field(min_length=1, max_length=_MAX_FLAGS),
        ]
        | None
    ) = None
    emergency_rollback: StrictBool = False
    #: Go ahead although a safety check refuses (phase 3/4); audited as forced.
    force: StrictBool = False
    #: Answer what would change and what stands in the way; write nothing.
    dry_run: StrictBool = False

    @model_validator(mode="after")
    def _one_request(self) -> RolloutChange:
        asked = [name for name in ("phase", "flags") if getattr(self, name) is not None]
        if self.emergency_rollback:
            asked.append("emergency_rollback")
        if len(asked) != 1:
            raise ValueError("give exactly one of phase, flags or emergency_rollback")
        return self


class ChangeBody(BaseModel):
    flag: str
    old: str | None
    new: str


class BlockerBody(BaseModel):
    reason: str
    figures: dict[str, Any]


class RolloutChangeReply(BaseModel):
    #: False for a dry run, or when the flags already held the request.
    applied: bool
    target: str
    changes: list[ChangeBody]
    blockers: list[BlockerBody]
    forced: bool
    #: flag_changes ids; None when the audit rows could not be written (the reply says why in `audit`).
    audit_ids: list[int] | None
    audit: Literal["written", "failed", "none"]
    #: The phase the flags hold after the change (None: a mix that is no phase).
    phase: int | None


class RolloutRefusal(BaseModel):
    error: Literal["unsafe"]
    message: str
    target: str
    changes: list[ChangeBody]
    blockers: list[BlockerBody]


class FlagBody(BaseModel):
    flag: str
    stored: str | None
    in_force: str
    problem: str | None


class RolloutView(BaseModel):
    prefix: str
    phase: int | None
    phase_name: str | None
    flags: list[FlagBody]
    #: Better-Auth-primary and Supabase-primary traffic over the AutoRollback window.
    health: dict[str, Any]
    #: rollout.figures: canary vs all requests, rates, latency, recent errors.
    canary: dict[str, Any]
    #: The progressive canary plan, or None.
    plan: dict[str, Any] | None


class MigrationReport(BaseModel):
    migration_id: str
    status: str
    source: str
    target: str
    dry_run: bool
    batch_size: int
    processed_count: int
    error_count: int
    batches_total: int
    batches_done: int
    batches_failed: int
    batches_pending: int
    migrated: int
    outcomes: dict[str, int]
    errors_by_code: list[dict[str, Any]]
    created_at: str
    updated_at: str | None
    completed_at: str | None
    elapsed_s: float
    users_per_s: float | None
    #: Counts of the migrated users' flags (needs_password_reset, no_credentials, oauth_only...).
    flags: dict[str, int] = {}
    #: The supabase target: users created without a password (count, first ids; `predicted` in a dry run).
    needs_password_reset: dict[str, Any] | None = None

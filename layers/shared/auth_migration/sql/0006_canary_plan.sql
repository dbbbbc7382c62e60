-- Progressive canary: a stored plan of canary percentages that AutoRollback walks one step at a time,
-- each step only after it baked for `bake_seconds`, had the minimum sample and was healthy. A breach
-- stops the plan (and rolls the canary back to 0); 100 % baked makes it `ready`: waiting for a person
-- to move to phase 3 (the plan never switches phases by itself).

-- The plan's steps are valid by construction (the CLI parses them), but a row written by hand must
-- not be able to widen past 100 % or step backwards either: AutoRollback writes whatever step comes next.
CREATE OR REPLACE FUNCTION canary_plan_steps_valid(steps numeric[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT AS
$$
    SELECT cardinality(steps) >= 1
       AND steps[cardinality(steps)] = 100
       AND NOT EXISTS (
           SELECT 1 FROM generate_subscripts(steps, 1) AS i
           WHERE steps[i] IS NULL OR steps[i] <= 0 OR steps[i] > 100 OR (i > 1 AND steps[i] <= steps[i - 1]))
$$;

CREATE TABLE IF NOT EXISTS canary_plans (
    id              bigserial PRIMARY KEY,
    -- Percentages in order, strictly increasing, each in (0, 100], the last 100.
    steps           numeric[] NOT NULL CHECK (canary_plan_steps_valid(steps)),
    bake_seconds    integer NOT NULL CHECK (bake_seconds > 0),
    -- 0-based index into steps of the percentage in force; step_started_at is when it took effect
    -- (or when the plan was last resumed: a resume bakes the step again from the start).
    step_index      integer NOT NULL DEFAULT 0 CHECK (step_index >= 0),
    step_started_at timestamptz NOT NULL,
    -- ready: the last step (100 %) baked healthy; a person decides on phase 3.
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'stopped', 'ready')),
    -- Why it was paused, stopped or became ready, and by whom (a person, or auto-rollback).
    status_reason   text,
    status_actor    text,
    actor           text NOT NULL,
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CHECK (step_index < cardinality(steps))
);
-- One plan steers the canary at a time: two would fight over CANARY_PERCENTAGE.
CREATE UNIQUE INDEX IF NOT EXISTS canary_plans_one_open ON canary_plans ((true)) WHERE status IN ('active', 'paused');
CREATE INDEX IF NOT EXISTS canary_plans_recent ON canary_plans (created_at DESC);

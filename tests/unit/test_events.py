"""Specification of the sample events: each parses, and each folder belongs to a template function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auth_migration_ops.local.invoke import load_event
from auth_migration_ops.local.template import DEFAULT_TEMPLATE_PATH, list_functions, resolve_function

EVENTS_DIR = DEFAULT_TEMPLATE_PATH.parent / "events"
EVENT_FILES = sorted(EVENTS_DIR.glob("**/*.json"))
MIGRATION_ID = "mig_20261125T120000_ab12cd"


def event_id(path: Path) -> str:
    return str(path.relative_to(EVENTS_DIR))


def test_there_are_sample_events() -> None:
    assert len(EVENT_FILES) >= 8


@pytest.mark.parametrize("path", EVENT_FILES, ids=event_id)
def test_every_event_is_a_json_object(path: Path) -> None:
    assert isinstance(load_event(path), dict)


def test_every_event_folder_is_the_code_dir_of_a_template_function() -> None:
    code_dirs = {resolve_function(name).code_dir.name for name in list_functions()}
    folders = {path.parent.relative_to(EVENTS_DIR).parts[0] for path in EVENT_FILES}

    assert folders <= code_dirs, f"event folders without a function: {sorted(folders - code_dirs)}"


@pytest.mark.parametrize("case", ["start", "start_dry_run", "start_profiles"])
def test_start_events_carry_a_complete_plan_request(case: str) -> None:
    event = load_event(EVENTS_DIR / "migration_control" / f"{case}.json")

    assert event["action"] == "start"
    assert event["source"] in {"supabase", "profiles"}
    assert event["target"] == "better-auth"
    assert event["dry_run"] is (case == "start_dry_run")
    assert event["batch_size"] == 100


@pytest.mark.parametrize("action", ["resume", "rollback", "status"])
def test_id_events_name_their_action_and_migration(action: str) -> None:
    event = load_event(EVENTS_DIR / "migration_control" / f"{action}.json")

    assert event == {"action": action, "migration_id": MIGRATION_ID}


@pytest.mark.parametrize(("case", "records", "receive_count"), [("batch", 1, "1"), ("batch_redelivered", 2, "3")])
def test_batch_events_are_sqs_events_whose_bodies_are_batch_messages(
    case: str, records: int, receive_count: str
) -> None:
    event = load_event(EVENTS_DIR / "migrate_batch" / f"{case}.json")

    assert len(event["Records"]) == records
    for record in event["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith("arn:aws:sqs:")
        assert record["attributes"]["ApproximateReceiveCount"] == receive_count
        assert set(json.loads(record["body"])) == {"migration_id", "batch_no", "after_id", "upto_id"}
    assert len({record["messageId"] for record in event["Records"]}) == records


def test_first_batch_starts_from_the_beginning() -> None:
    (record,) = load_event(EVENTS_DIR / "migrate_batch" / "batch.json")["Records"]

    assert json.loads(record["body"]) == {
        "migration_id": MIGRATION_ID,
        "batch_no": 1,
        "after_id": None,
        "upto_id": "00000000-0000-4000-8000-000000000064",
    }


def test_load_event_rejects_json_that_is_not_an_object(tmp_path: Path) -> None:
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]", encoding="utf-8")
    not_json = tmp_path / "broken.json"
    not_json.write_text("{", encoding="utf-8")

    with pytest.raises(ValueError, match="JSON object"):
        load_event(not_object)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_event(not_json)

"""Status output: schema-valid JSON documents and the human view."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest

from synthorg_tasks.health.readiness import ReadinessResult
from synthorg_tasks.status.collect import (
    NatsOutcome,
    PostgresOutcome,
    Snapshot,
    VolumeInfo,
)
from synthorg_tasks.status.render import (
    human_lines,
    image_display,
    load_schema,
    render_human,
    status_document,
)
from synthorg_tasks.status.verdict import evaluate
from tests.unit._status_fakes import READY_URL, healthy_snapshot


def _validate(snapshot: Snapshot) -> dict[str, object]:
    document = status_document(snapshot, evaluate(snapshot))
    round_tripped = json.loads(json.dumps(document))
    jsonschema.validate(round_tripped, load_schema())
    return round_tripped


def _broken() -> Snapshot:
    snapshot = healthy_snapshot("postgres", "nats")
    snapshot.readiness = ReadinessResult(READY_URL, error="refused")
    snapshot.postgres = PostgresOutcome("auth_failed", "password rejected")
    snapshot.nats = NatsOutcome("mismatch", max_payload_actual=1024)
    snapshot.volume = VolumeInfo("demo_synthorg-pgdata", -1)
    snapshot.boot_failures = {"backend": "ERROR: x"}
    return snapshot


SNAPSHOTS = [
    pytest.param(healthy_snapshot, id="healthy-sqlite"),
    pytest.param(lambda: healthy_snapshot("postgres", "nats"), id="healthy-full"),
    pytest.param(_broken, id="broken-full"),
    pytest.param(lambda: Snapshot(None, not_initialized="no config"), id="not-init"),
]


@pytest.mark.parametrize("build", SNAPSHOTS)
def test_document_validates_against_schema(build: object) -> None:
    document = _validate(build())  # type: ignore[operator]
    assert document["schema_version"] == 1


def test_document_content_of_broken_stack() -> None:
    document = _validate(_broken())
    assert document["verdict"] == "CRITICAL"
    codes = [issue["code"] for issue in document["issues"]]  # type: ignore[index]
    assert codes == [
        "boot_failure",
        "backend_unreachable",
        "postgres_auth_failed",
        "nats_max_payload_mismatch",
    ]
    assert document["persistence"] == {
        "backend": "postgres",
        "probe": "auth_failed",
        "detail": "password rejected",
        "volume": {"name": "demo_synthorg-pgdata", "size_bytes": -1},
    }
    assert document["bus"]["max_payload_actual"] == 1024  # type: ignore[index]


def test_schema_rejects_unknown_verdict() -> None:
    document = status_document(healthy_snapshot(), evaluate(healthy_snapshot()))
    document["verdict"] = "FINE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, load_schema())


def test_document_holds_no_password() -> None:
    snapshot = healthy_snapshot("postgres")
    text = json.dumps(status_document(snapshot, evaluate(snapshot)))
    assert snapshot.settings is not None
    assert snapshot.settings.postgres_password is not None
    assert snapshot.settings.postgres_password not in text


def test_plain_output_is_ascii() -> None:
    snapshot = _broken()
    stream = io.StringIO()
    render_human(snapshot, evaluate(snapshot), stream, plain=True, wide=True)
    text = stream.getvalue()
    assert text.isascii()
    assert "| Status: CRITICAL" in text
    assert "> synthorg doctor" in text
    assert "size unavailable" in text


def test_human_ok_banner_and_rows() -> None:
    snapshot = healthy_snapshot()
    lines = human_lines(snapshot, evaluate(snapshot))
    assert "All systems operational" in lines
    assert any(line.startswith("Backend healthy (uptime 12s)") for line in lines)
    data_init = next(line for line in lines if line.startswith("data-init"))
    assert "completed" in data_init
    assert "✓" in data_init


def test_human_unmatched_filter_message() -> None:
    snapshot = healthy_snapshot()
    snapshot.services_filter = ("nope",)
    snapshot.containers = []
    lines = human_lines(snapshot, evaluate(snapshot))
    assert "No containers match requested services" in lines


@pytest.mark.parametrize(
    ("reference", "shown"),
    [
        ("ghcr.io/aureliolo/synthorg-backend:1.2.3", "1.2.3"),
        ("localhost:5000/backend", "latest"),
        ("localhost:5000/backend:dev", "dev"),
        ("dhi.io/postgres:18@sha256:" + "a" * 64, "@sha256:aaaaaaaaaaaa"),
    ],
    ids=["tag", "registry-port-no-tag", "registry-port-tag", "digest"],
)
def test_image_display(reference: str, shown: str) -> None:
    assert image_display(reference) == shown
    assert image_display(reference, no_trunc=True) == reference

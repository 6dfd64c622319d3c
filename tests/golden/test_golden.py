"""Golden files of compose.yml and nats.conf, compared after normalisation.

Set ``UPDATE_GOLDEN=1`` to rewrite the files after an intended change.
"""

from __future__ import annotations

import os

import pytest

from tests.golden.variants import (
    COMPOSE_VARIANTS,
    GOLDEN_DIR,
    NATS_VARIANTS,
    normalise,
    render_nats_variant,
    render_variant,
)

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _check(name: str, rendered: str) -> None:
    path = GOLDEN_DIR / name
    if UPDATE:
        path.write_text(rendered)
    assert path.exists(), f"{path} is missing; run with UPDATE_GOLDEN=1"
    assert normalise(rendered) == normalise(path.read_text())


@pytest.mark.parametrize("name", sorted(COMPOSE_VARIANTS))
def test_compose_matches_golden(name: str) -> None:
    _check(f"{name}.yml", render_variant(name))


@pytest.mark.parametrize("name", sorted(NATS_VARIANTS))
def test_nats_conf_matches_golden(name: str) -> None:
    _check(name, render_nats_variant(name))


def test_volatile_parts_are_normalised() -> None:
    text = render_variant("pinned")
    mutated = text.replace("@sha256:" + "ab" * 32, "@sha256:" + "cd" * 32)
    mutated = mutated.replace("postgres:18-debian13", "postgres:19-debian14")
    mutated = mutated.replace("busybox:1.38-musl", "busybox:1.39-musl")
    mutated = mutated.replace("synthorg-tasks 0.0.0-golden.", "synthorg-tasks 9.9.9.")
    assert mutated != text
    assert normalise(mutated) == normalise(text)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    read_only: true\n", ""),
        ('"127.0.0.1:3001:3001"', '"127.0.0.1:3005:3001"'),
        ('SYNTHORG_LOG_LEVEL: "info"', 'SYNTHORG_LOG_LEVEL: "debug"'),
        ("synthorg-backend:1.0.0", "synthorg-backend:1.0.1"),
    ],
    ids=["removed-key", "changed-port", "changed-env", "changed-synthorg-tag"],
)
def test_structural_change_is_detected(old: str, new: str) -> None:
    text = render_variant("postgres_nats")
    assert old in text
    changed = text.replace(old, new, 1)
    assert normalise(changed) != normalise(text)

"""Validator properties: invalid input writes nothing, valid input round-trips."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from synthorg_tasks import grammars
from synthorg_tasks.errors import UsageError
from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output
from synthorg_tasks.ports import find_collision
from synthorg_tasks.render.natsconf import format_nats_size, parse_nats_size
from synthorg_tasks.state.config import load_strict, serialise_config

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _valid_port(text: str) -> bool:
    try:
        grammars.parse_port(text)
    except ValueError:
        return False
    return True


def _assert_rejected(request: InitRequest) -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "install"
        with pytest.raises(UsageError) as caught:
            run_init(request, data, Output())
        assert caught.value.exit_code == 2
        assert not data.exists()


@SETTINGS
@given(st.text(max_size=8))
def test_invalid_port_text_rejected(text: str) -> None:
    assume(not _valid_port(text))
    _assert_rejected(InitRequest(web_port=text, environ={}))


@SETTINGS
@given(st.text(max_size=70))
def test_invalid_project_name_rejected(name: str) -> None:
    assume(not (grammars.PROJECT_NAME_RE.fullmatch(name) and len(name) <= 63))
    _assert_rejected(InitRequest(project_name=name, environ={}))


@SETTINGS
@given(st.text(max_size=140))
def test_invalid_image_tag_rejected(tag: str) -> None:
    assume(not grammars.TAG_RE.fullmatch(tag))
    _assert_rejected(InitRequest(image_tag=tag, environ={}))


@SETTINGS
@given(st.text(max_size=40))
def test_invalid_bind_address_rejected(address: str) -> None:
    try:
        grammars.parse_bind_address(address)
    except ValueError:
        _assert_rejected(InitRequest(bind_address=address, environ={}))
    else:
        assume(False)


PORT = st.integers(min_value=1, max_value=65535)


@SETTINGS
@given(
    web=PORT,
    backend_port=PORT,
    pg=PORT,
    nats=PORT,
    project=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
    tag=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    bind=st.sampled_from(
        ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::", "192.0.2.10"]
    ),
)
def test_valid_values_round_trip(
    web: int, backend_port: int, pg: int, nats: int, project: str, tag: str, bind: str
) -> None:
    ports = {
        "web_port": web,
        "backend_port": backend_port,
        "postgres_port": pg,
        "nats_client_port": nats,
    }
    assume(find_collision(dict(ports)) is None)
    request = InitRequest(
        backend="postgres",
        bus="nats",
        web_port=str(web),
        backend_port=str(backend_port),
        postgres_port=str(pg),
        nats_port=str(nats),
        project_name=project,
        image_tag=tag,
        bind_address=bind,
        environ={},
    )
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "install"
        result = run_init(request, data, Output())
        loaded = load_strict(data)
        assert loaded == result.config
        assert loaded.ports() == ports
        assert loaded.project_name == project
        assert (data / "config.json").read_bytes() == serialise_config(loaded)


@given(
    st.dictionaries(
        st.sampled_from(
            ["web_port", "backend_port", "postgres_port", "nats_client_port"]
        ),
        PORT,
    )
)
def test_collision_validator_matches_definition(ports: dict[str, int]) -> None:
    pairs = [
        ("backend_port", "web_port"),
        ("postgres_port", "web_port"),
        ("postgres_port", "backend_port"),
        ("nats_client_port", "postgres_port"),
        ("nats_client_port", "web_port"),
        ("nats_client_port", "backend_port"),
    ]
    forbidden = any(
        a in ports and b in ports and ports[a] == ports[b] for a, b in pairs
    )
    assert (find_collision(dict(ports)) is not None) == forbidden


@given(st.text(max_size=80))
def test_project_name_derivation(base: str) -> None:
    name = grammars.derive_project_name(base)
    assert grammars.PROJECT_NAME_RE.fullmatch(name)
    assert len(name) <= 63
    assert grammars.derive_project_name(name) == name


@given(st.integers(min_value=1, max_value=2**40))
def test_nats_size_format_then_parse(size: int) -> None:
    assert parse_nats_size(format_nats_size(size)) == size

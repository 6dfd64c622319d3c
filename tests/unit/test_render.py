"""compose.yml rendering: the filter audit, topology structure and image refs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import nodes

from synthorg_tasks.errors import ConfigInvalid
from synthorg_tasks.render.compose import render_compose, template_environment, yint, yq
from synthorg_tasks.render.params import RenderParams, active_overrides
from synthorg_tasks.resources import templates_dir
from synthorg_tasks.state.config import Config
from synthorg_tasks.verify.pins import load_pins

PINS = load_pins()
PASSWORD = "p@ss$w:rd/#%'\"" + "y" * 30
TOPOLOGIES = [
    ("sqlite", "internal"),
    ("postgres", "internal"),
    ("sqlite", "nats"),
    ("postgres", "nats"),
]


def _config(backend: str = "postgres", bus: str = "nats", **changes: Any) -> Config:
    config = Config(
        data_dir=Path("/srv/synthorg"),
        project_name="synthorg",
        image_tag="1.0.0",
        persistence_backend=backend,
        bus_backend=bus,
        postgres_port=3002 if backend == "postgres" else None,
        postgres_password=PASSWORD if backend == "postgres" else None,
        nats_client_port=3003 if bus == "nats" else None,
    )
    return config.replace(**changes)


def _render(config: Config, environ: dict[str, str] | None = None) -> dict[str, Any]:
    params = RenderParams.from_config(config, PINS, environ=environ or {})
    loaded = yaml.safe_load(render_compose(params))
    assert isinstance(loaded, dict)
    return loaded


def _output_expressions(node: nodes.Node) -> list[nodes.Node]:
    found = []
    for output in node.find_all(nodes.Output):
        found += [
            child for child in output.nodes if not isinstance(child, nodes.TemplateData)
        ]
    return found


def test_every_template_expression_ends_in_one_filter() -> None:
    env = template_environment()
    source = (templates_dir() / "compose.yml.j2").read_text()
    tree = env.parse(source)
    expressions = _output_expressions(tree)
    assert expressions
    for expression in expressions:
        assert isinstance(expression, nodes.Filter), expression
        assert expression.name in ("yq", "yint"), expression
        inner = list(expression.find_all(nodes.Filter))
        assert inner == [], f"nested filter in {expression}"


def test_filter_audit_catches_an_unfiltered_expression() -> None:
    env = jinja2.Environment()
    tree = env.parse("a: {{ value }}\nb: {{ value | yq }}\n")
    kinds = [isinstance(e, nodes.Filter) for e in _output_expressions(tree)]
    assert kinds == [False, True]


@pytest.mark.parametrize(("backend", "bus"), TOPOLOGIES)
def test_structure_per_topology(backend: str, bus: str) -> None:
    text = render_compose(
        RenderParams.from_config(_config(backend, bus), PINS, environ={})
    )
    doc = yaml.safe_load(text)
    assert "name" not in doc
    assert "version" not in doc
    for forbidden in ("ulimits", "env_file", "${"):
        assert forbidden not in text
    services = doc["services"]
    expected = [
        "data-init",
        *(["postgres"] if backend == "postgres" else []),
        *(["nats"] if bus == "nats" else []),
        "backend",
        "web",
    ]
    assert list(services) == expected
    env = services["backend"]["environment"]
    assert all(isinstance(v, str) for v in env.values())
    assert "healthcheck" not in services["backend"]
    assert services["web"]["depends_on"] == {
        "backend": {"condition": "service_healthy"}
    }
    script = services["data-init"]["command"][2]
    if backend == "postgres":
        pg = services["postgres"]
        assert pg["environment"]["PGDATA"] == "/var/lib/postgresql/data"
        assert pg["volumes"] == ["synthorg-pgdata:/var/lib/postgresql/data"]
        assert pg["healthcheck"]["test"][0] == "CMD"
        assert "SYNTHORG_DB_PATH" not in env
        assert env["SYNTHORG_POSTGRES_SSL_MODE"] == "disable"
        assert services["backend"]["depends_on"]["postgres"] == {
            "condition": "service_healthy"
        }
        assert "chown -R 70:70 /pgdata; chmod 0700 /pgdata" in script
        assert "synthorg-pgdata" in doc["volumes"]
    else:
        assert env["SYNTHORG_DB_PATH"] == "/data/synthorg.db"
        assert "SYNTHORG_DATABASE_URL" not in env
        assert "pgdata" not in text
    if bus == "nats":
        assert services["nats"]["command"] == ["-c", "/etc/nats/nats.conf"]
        assert env["SYNTHORG_NATS_URL"] == "nats://nats:4222"
        assert services["backend"]["depends_on"]["nats"] == {
            "condition": "service_started"
        }
        assert "chown -R 65532:65532 /nats-data" in script
        assert all("8222" not in port for port in services["nats"]["ports"])
    else:
        assert "nats" not in doc["volumes"]
        assert "SYNTHORG_NATS_URL" not in env
    assert doc["networks"] == {"default": {"name": "synthorg-net"}}


def test_database_url_is_percent_encoded() -> None:
    env = _render(_config())["services"]["backend"]["environment"]
    url = env["SYNTHORG_DATABASE_URL"]
    assert url.startswith("postgresql://synthorg:p%40ss%24w%3Ard%2F%23%25%27%22")
    assert url.endswith("@postgres:5432/synthorg")
    userinfo = url[len("postgresql://") : url.rindex("@")]
    assert not set("$@:/?#") & set(userinfo.split(":", 1)[1])


def test_password_dollars_doubled_for_compose() -> None:
    doc = _render(_config())
    assert doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == (
        PASSWORD.replace("$", "$$")
    )


def test_pinned_synthorg_refs_need_current_cache() -> None:
    digests = {"backend": "sha256:" + "1" * 64, "web": "sha256:" + "2" * 64}
    pinned = _render(_config(verified_digests=digests, verified_image_tag="1.0.0"))
    backend = pinned["services"]["backend"]["image"]
    assert backend == "ghcr.io/aureliolo/synthorg-backend@sha256:" + "1" * 64
    stale = _render(_config(verified_digests=digests, verified_image_tag="0.9.0"))
    assert stale["services"]["backend"]["image"].endswith("synthorg-backend:1.0.0")
    partial = _render(
        _config(
            verified_digests={"backend": digests["backend"]}, verified_image_tag="1.0.0"
        )
    )
    assert partial["services"]["web"]["image"].endswith(":1.0.0")


def test_override_removes_every_digest() -> None:
    digests = {"backend": "sha256:" + "1" * 64, "web": "sha256:" + "2" * 64}
    config = _config(
        registry_host="127.0.0.1:5000",
        verified_digests=digests,
        verified_image_tag="1.0.0",
    )
    assert active_overrides(config, PINS, {}) == ["registry_host"]
    services = _render(config)["services"]
    for name in ("backend", "web", "postgres", "nats"):
        assert "@sha256" not in services[name]["image"]
    assert (
        services["backend"]["image"]
        == "127.0.0.1:5000/aureliolo/synthorg-backend:1.0.0"
    )
    assert services["postgres"]["image"] == "dhi.io/postgres:18-debian13"


def test_override_from_environment() -> None:
    env = {"SYNTHORG_DATA_INIT_IMAGE": "localhost/busybox:test"}
    config = _config()
    assert active_overrides(config, PINS, env) == ["data_init_image"]
    assert (
        _render(config, env)["services"]["data-init"]["image"]
        == "localhost/busybox:test"
    )


def test_invalid_override_never_falls_back() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        RenderParams.from_config(
            _config(), PINS, environ={"SYNTHORG_REGISTRY_HOST": "bad host"}
        )
    assert "registry_host" in caught.value.message


def test_header_lines() -> None:
    text = render_compose(RenderParams.from_config(_config(), PINS, environ={}))
    lines = text.splitlines()
    assert lines[0].startswith("# Generated by synthorg-tasks ")
    assert lines[1] == "# Contains secrets: keep this file private (mode 0600)."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("l\nc\rt\t", '"l\\nc\\rt\\t"'),
        ("\x01\x7f", '"\\x01\\x7f"'),
        ("\u0085\u2028\u2029", '"\\N\\L\\P"'),
        ("\ufeff", '"\\ufeff"'),
        ("$HOME", '"$$HOME"'),
        ("yes", '"yes"'),
    ],
)
def test_yq_escapes(value: str, expected: str) -> None:
    assert yq(value) == expected


def test_yq_rejects_nul_and_non_strings() -> None:
    with pytest.raises(ValueError):
        yq("a\0b")
    with pytest.raises(TypeError):
        yq(5)


def test_yint_rejects_bool() -> None:
    assert yint(3001) == "3001"
    with pytest.raises(TypeError):
        yint(True)
    with pytest.raises(TypeError):
        yint("3001")

"""Properties of yq, the password URL encoding and whole rendered files."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from synthorg_tasks.render.compose import render_compose, yq
from synthorg_tasks.render.params import RenderParams
from synthorg_tasks.state.config import Config
from synthorg_tasks.state.secrets import percent_encode
from synthorg_tasks.verify.pins import load_pins

PINS = load_pins()
TRICKY = st.sampled_from(
    [
        "yes",
        "no",
        "on",
        "off",
        "~",
        "null",
        "0o17",
        "010",
        "1_000",
        "12:30",
        ".inf",
        ": ",
        "#",
        "-",
        "?",
        "!",
        "&",
        "*",
        "%",
        "@",
        "`",
        "$",
        "$$",
        "${X}",
        "\\",
        '"',
        "\u2028",
        "\u2029",
        "\u0085",
        "\ufeff",
        "\x1b",
        "\x7f",
        "\t",
        "\r\n",
    ]
)
TEXT = st.lists(
    st.one_of(TRICKY, st.text(alphabet=st.characters(blacklist_characters="\0"))),
    max_size=6,
).map("".join)


def _ruamel_load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@given(TEXT)
def test_yq_loads_back_under_yaml_11_and_12(value: str) -> None:
    document = f"key: {yq(value)}\n"
    expected = value.replace("$", "$$")
    assert yaml.safe_load(document) == {"key": expected}
    assert _ruamel_load(document) == {"key": expected}


PASSWORD = st.text(
    alphabet=st.characters(
        blacklist_characters="\0\r\n\t", blacklist_categories=["Cs"]
    ),
    min_size=32,
    max_size=80,
)


@given(PASSWORD)
def test_percent_encoding_round_trips(password: str) -> None:
    encoded = percent_encode(password)
    assert not set(encoded) - set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%"
    )
    assert unquote(encoded) == password


def _leaves(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [node] if isinstance(node, str) else []


@settings(max_examples=60, deadline=None)
@given(PASSWORD, st.sampled_from(["internal", "nats"]))
def test_whole_compose_loads_identically(password: str, bus: str) -> None:
    config = Config(
        data_dir=Path("/srv/x"),
        project_name="x",
        image_tag="1.0.0",
        persistence_backend="postgres",
        bus_backend=bus,
        postgres_port=3002,
        postgres_password=password,
        nats_client_port=3003 if bus == "nats" else None,
    )
    text = render_compose(RenderParams.from_config(config, PINS, environ={}))
    pyyaml_doc = yaml.safe_load(text)
    ruamel_doc = _ruamel_load(text)
    assert _leaves(pyyaml_doc) == _leaves(ruamel_doc)
    env = pyyaml_doc["services"]["postgres"]["environment"]
    assert env["POSTGRES_PASSWORD"] == password.replace("$", "$$")
    url = pyyaml_doc["services"]["backend"]["environment"]["SYNTHORG_DATABASE_URL"]
    userinfo = url[len("postgresql://") : url.rindex("@")]
    assert unquote(userinfo.split(":", 1)[1]) == password

"""The database URL grammar: accepted forms, rejected forms, masking, rewrites."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from synthorg_tasks.errors import PersistenceConfigError
from synthorg_tasks.persistence.dsn import mask_url, parse_database_url
from synthorg_tasks.state.secrets import mask

ACCEPTED = [
    pytest.param(
        "postgresql://synthorg:secret@db.example:5432/synthorg",
        ("synthorg", "secret", "db.example", 5432, "synthorg"),
        id="plain",
    ),
    pytest.param(
        "postgres://u:pw@127.0.0.1/app",
        ("u", "pw", "127.0.0.1", None, "app"),
        id="postgres-scheme-no-port",
    ),
    pytest.param(
        "postgresql+psycopg://u:pw@localhost:1/app",
        ("u", "pw", "localhost", 1, "app"),
        id="psycopg-scheme-port-1",
    ),
    pytest.param(
        "postgresql://u:pw@[::1]:65535/app",
        ("u", "pw", "::1", 65535, "app"),
        id="ipv6-port-65535",
    ),
    pytest.param(
        "postgresql://u:p%40ss%2Fw%23d@h/app",
        ("u", "p@ss/w#d", "h", None, "app"),
        id="encoded-at-slash-hash",
    ),
    pytest.param(
        "postgresql://u:a%3Ab%3Fc%25d@h/app",
        ("u", "a:b?c%d", "h", None, "app"),
        id="encoded-colon-question-percent",
    ),
    pytest.param(
        "postgresql://u:!$&'()*+,;=@h/app",
        ("u", "!$&'()*+,;=", "h", None, "app"),
        id="sub-delims-unencoded",
    ),
    pytest.param(
        "postgresql://u@h/app", ("u", None, "h", None, "app"), id="no-password"
    ),
    pytest.param(
        "postgresql://u:@h/app", ("u", "", "h", None, "app"), id="empty-password"
    ),
    pytest.param(
        "POSTGRESQL://u:pw@h/my%20db",
        ("u", "pw", "h", None, "my db"),
        id="upper-scheme-encoded-dbname",
    ),
    pytest.param(
        "  postgresql://u:pw@h/app  ",
        ("u", "pw", "h", None, "app"),
        id="surrounding-space-trimmed",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_url_accepted(
    text: str, expected: tuple[str, str | None, str, int | None, str]
) -> None:
    url = parse_database_url(text)
    assert (url.user, url.password, url.host, url.port, url.dbname) == expected


REJECTED = [
    pytest.param(
        "postgresql://u:p@ss@host/db", "unencoded reserved character", id="double-at"
    ),
    pytest.param("postgresql://u:pa#ss@host/db", "'#'", id="hash-in-password"),
    pytest.param(
        "postgresql://u:pa/ss@host/db", "unencoded reserved character", id="slash"
    ),
    pytest.param(
        "postgresql://u:pa?ss@host/db", "unencoded reserved character", id="question"
    ),
    pytest.param(
        "postgresql://u:pa:ss@host/db", "unencoded reserved character", id="colon"
    ),
    pytest.param(
        "postgresql://u:pa ss@host/db", "unencoded reserved character", id="space"
    ),
    pytest.param(
        "postgresql://u:pä@host/db", "unencoded reserved character", id="non-ascii"
    ),
    pytest.param(
        "postgresql://u:p[1]@host/db", "unencoded reserved character", id="brackets"
    ),
    pytest.param("postgresql://u:p%4@host/db", "reserved", id="broken-escape"),
    pytest.param("postgresql://u:p%FF@host/db", "not valid UTF-8", id="bad-utf8"),
    pytest.param("postgresql://u:p%00@host/db", "NUL", id="encoded-nul"),
    pytest.param("postgresql://u:pw@host", "database name is missing", id="no-db"),
    pytest.param("postgresql://u:pw@host/", "database name is missing", id="empty-db"),
    pytest.param("postgresql://u:pw@host/a/b", "contains '/'", id="db-with-slash"),
    pytest.param("postgresql://u:pw@host:0/db", "1 to 65535", id="port-0"),
    pytest.param("postgresql://u:pw@host:70000/db", "1 to 65535", id="port-70000"),
    pytest.param("postgresql://u:pw@host:/db", "1 to 65535", id="port-empty"),
    pytest.param("postgresql://u:pw@host:-1/db", "1 to 65535", id="port-negative"),
    pytest.param("postgresql://u:pw@/db", "host is missing", id="no-host"),
    pytest.param("postgresql://u:pw@ho_st/db", "not a hostname", id="bad-host"),
    pytest.param("postgresql://u:pw@[zz]/db", "not an IPv6", id="bad-ipv6"),
    pytest.param("postgresql://:pw@host/db", "user is empty", id="empty-user"),
    pytest.param("postgresql://host/db", "user is missing", id="no-userinfo"),
    pytest.param("mysql://u:pw@host/db", "unsupported scheme mysql", id="mysql"),
    pytest.param("sqlite:///tmp/x.db", "unsupported scheme sqlite", id="sqlite-url"),
    pytest.param("u:pw@host/db", "not a URL", id="no-scheme"),
    pytest.param("postgresql://u:pw@h/db?sslmode=bogus", "SSL mode", id="sslmode"),
    pytest.param("postgresql://u:pw@h/db?a=1&a=2", "more than once", id="dup-key"),
    pytest.param("postgresql://u:pw@h/db?Key=1", "only a-z", id="upper-key"),
    pytest.param("postgresql://u:pw@h/db?flag", "key=value", id="no-value"),
]


@pytest.mark.parametrize(("text", "problem"), REJECTED)
def test_url_rejected(text: str, problem: str) -> None:
    with pytest.raises(PersistenceConfigError) as caught:
        parse_database_url(text)
    assert problem in str(caught.value)


SECRET_URLS = [
    pytest.param("postgresql://u:p@ss@host/db", ["p@ss", "u:p"], id="double-at"),
    pytest.param("postgresql://u:zq#xv@host/db", ["zq#xv", "zq", "xv"], id="hash"),
    pytest.param("postgresql://u:pw@host:0/db", ["pw"], id="port-0"),
    pytest.param("postgresql://u:secretpw@host", ["secretpw"], id="no-db"),
    pytest.param("mysql://u:secretpw@host/db", ["secretpw"], id="mysql"),
    pytest.param("postgresql://u:secret/pw@host/db", ["secret"], id="slash"),
]


@pytest.mark.parametrize(("text", "fragments"), SECRET_URLS)
def test_rejected_url_message_masks_secret(text: str, fragments: list[str]) -> None:
    with pytest.raises(PersistenceConfigError) as caught:
        parse_database_url(text)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment not in message
    assert "****" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "postgresql://u:p@ss@host:5/db", "postgresql://****@host", id="at"
        ),
        pytest.param("postgresql://u:pw/db", "postgresql://****", id="no-at"),
        pytest.param("postgresql://u:pw@[::1]/db", "postgresql://****@[::1]", id="v6"),
        pytest.param("postgresql://u:pw@h%41/db", "postgresql://****", id="odd-host"),
        pytest.param("secretpw", "****", id="no-scheme"),
    ],
)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected


def test_password_registered_as_secret() -> None:
    parse_database_url("postgresql://u:p%40ssword@h/db")
    assert mask("x p@ssword y p%40ssword") == "x **** y ****"


def test_repr_hides_password() -> None:
    url = parse_database_url("postgresql://u:hunter22@h:5/db")
    assert "hunter22" not in repr(url)
    assert url.masked() == "postgresql://****@h:5/db"


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg"], ids=str
)
def test_yoyo_uri_rewrites_scheme(scheme: str) -> None:
    url = parse_database_url(f"{scheme}://us%3Aer:p%40ss%2Fw%23d@h:5432/db")
    uri = url.yoyo_uri("disable")
    assert uri.startswith("postgresql+psycopg://")
    parts = urlsplit(uri)
    assert parts.username == "us%3Aer"
    assert parts.password == "p%40ss%2Fw%23d"
    assert parts.query == "sslmode=disable"


def test_yoyo_uri_keeps_query_and_sslmode_once() -> None:
    url = parse_database_url(
        "postgresql://u:pw@h/db?application_name=x&sslmode=require"
    )
    assert url.yoyo_uri("require").endswith("/db?application_name=x&sslmode=require")


def test_psycopg_kwargs_decoded() -> None:
    url = parse_database_url("postgresql://u:p%40ss@[::1]:6000/d%20b?connect_timeout=3")
    assert url.psycopg_kwargs("disable") == {
        "host": "::1",
        "port": 6000,
        "user": "u",
        "password": "p@ss",
        "dbname": "d b",
        "connect_timeout": "3",
        "sslmode": "disable",
    }

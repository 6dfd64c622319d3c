"""Parse, validate, mask and rewrite PostgreSQL database URLs.

Grammar: ``scheme "://" user [":" password] "@" host [":" port] "/" dbname
["?" query]``. The user-info may contain only RFC 3986 unreserved characters,
sub-delims and ``%HH`` escapes, so a password with ``@``, ``:``, ``/``, ``?``
or ``#`` must be percent-encoded. A wrong URL is rejected rather than guessed
at: a half-parsed password would otherwise be sent to the wrong host or
logged. Error messages show at most ``scheme://****@host`` and describe the
problem by kind, never by echoing the raw text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlencode

from synthorg_tasks.errors import PersistenceConfigError
from synthorg_tasks.state.secrets import MASK, percent_encode, register_secret

__all__ = [
    "SSL_MODES",
    "SUPPORTED_SCHEMES",
    "DatabaseURL",
    "mask_url",
    "parse_database_url",
    "validate_sslmode",
]

SUPPORTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# One user-info component: unreserved, sub-delims or a %HH escape.
_USERINFO_PART = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
# A path segment may also contain ':' and '@' (RFC 3986 pchar).
_DBNAME = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+$")
_QUERY_VALUE = re.compile(r"^(?:[A-Za-z0-9\-._~!$'()*+,;:@/]|%[0-9A-Fa-f]{2})*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9.-]+$")
_QUERY_KEY = re.compile(r"^[a-z_]+$")
_PORT = re.compile(r"^[0-9]+$")

# Builds the error for one URL; the part parsers call it with the problem.
_Fail = Callable[[str], PersistenceConfigError]

_RESERVED_IN_USERINFO = (
    "the user-info part contains an unencoded reserved character; "
    "percent-encode the password"
)


@dataclass(frozen=True)
class DatabaseURL:
    """A validated PostgreSQL URL whose password never appears in its repr.

    Every text field is stored decoded; :meth:`yoyo_uri` and
    :meth:`psycopg_kwargs` encode again for their consumer.
    """

    scheme: str
    user: str
    password: str | None = field(repr=False)
    host: str
    port: int | None
    dbname: str
    query: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked()!r})"

    @property
    def sslmode(self) -> str | None:
        """The ``sslmode`` query parameter, if the URL has one."""
        return dict(self.query).get("sslmode")

    def masked(self) -> str:
        """Return ``scheme://****@host[:port]/dbname`` with user and password hidden."""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{MASK}@{self._host_literal()}{port}/{self.dbname}"

    def yoyo_uri(self, sslmode: str | None) -> str:
        """Return the URI for yoyo with the psycopg 3 driver; it contains the password.

        yoyo maps ``postgresql://`` and ``postgres://`` to psycopg2, so the
        scheme is always rewritten to ``postgresql+psycopg://``.
        """
        userinfo = quote(self.user, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        port = f":{self.port}" if self.port is not None else ""
        params = [(key, value) for key, value in self.query if key != "sslmode"]
        if sslmode is not None:
            params.append(("sslmode", sslmode))
        query = f"?{urlencode(params)}" if params else ""
        dbname = quote(self.dbname, safe="")
        host = self._host_literal()
        return f"postgresql+psycopg://{userinfo}@{host}{port}/{dbname}{query}"

    def psycopg_kwargs(self, sslmode: str | None) -> dict[str, str | int]:
        """Return ``psycopg.connect`` keyword arguments, password included."""
        kwargs: dict[str, str | int] = {"host": self.host, "user": self.user}
        if self.port is not None:
            kwargs["port"] = self.port
        kwargs["dbname"] = self.dbname
        if self.password is not None:
            kwargs["password"] = self.password
        kwargs.update({key: value for key, value in self.query if key != "sslmode"})
        if sslmode is not None:
            kwargs["sslmode"] = sslmode
        return kwargs

    def _host_literal(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def validate_sslmode(value: str, source: str) -> str:
    """Return ``value`` when it is a libpq SSL mode, else raise naming ``source``."""
    if value not in SSL_MODES:
        raise PersistenceConfigError(
            f"{source}: {value[:32]!r} is not a valid SSL mode "
            f"(allowed: {', '.join(SSL_MODES)})"
        )
    return value


def mask_url(text: str) -> str:
    """Return ``scheme://****@host``, ``scheme://****`` or ``****`` for any text.

    Only a scheme and a host that match their grammar are shown, so a password
    written where the host should be is never echoed.
    """
    match = _SCHEME.match(text)
    if match is None:
        return MASK
    scheme = match.group(1)
    if len(scheme) > 32:
        return MASK
    rest = text[match.end() :]
    if "@" not in rest:
        return f"{scheme}://{MASK}"
    host = _candidate_host(rest[rest.rindex("@") + 1 :])
    if host is None:
        return f"{scheme}://{MASK}"
    return f"{scheme}://{MASK}@{host}"


def _candidate_host(after_at: str) -> str | None:
    hostport = re.split(r"[/?#]", after_at, maxsplit=1)[0]
    if hostport.startswith("["):
        end = hostport.find("]")
        literal = hostport[1:end] if end > 0 else ""
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return None
        return f"[{literal}]"
    host = hostport.split(":", 1)[0]
    if host and _HOSTNAME.match(host) and len(host) <= 253:
        return host
    return None


def parse_database_url(text: str, source: str = "SYNTHORG_DATABASE_URL") -> DatabaseURL:
    """Parse and validate a PostgreSQL URL; ``source`` names it in errors.

    Example: ``postgresql://synthorg:p%40ss@127.0.0.1:5432/synthorg`` gives the
    password ``p@ss``. The common mistake is an unencoded ``@`` or ``#`` in the
    password, which is rejected with a hint to percent-encode it. The password
    is registered as a secret, so logs and messages mask it from then on.
    """
    url = text.strip()

    def fail(problem: str) -> PersistenceConfigError:
        return PersistenceConfigError(f"{source} ({mask_url(url)}): {problem}")

    if "#" in url:
        raise fail(
            "the URL contains '#', which starts a fragment; "
            "percent-encode a '#' in the password as %23"
        )
    match = _SCHEME.match(url)
    if match is None:
        raise fail("not a URL; expected postgresql://user:password@host/dbname")
    scheme = match.group(1).lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise fail(
            f"unsupported scheme {scheme[:32]} "
            f"(supported: {', '.join(SUPPORTED_SCHEMES)})"
        )
    rest = url[match.end() :]

    # The last '@' ends the user-info, so an unencoded '@' in the password
    # lands in the user-info and is reported as a reserved character there.
    # NOTE: an unencoded '@' in a query value is reported the same way.
    if "@" not in rest:
        raise fail("the user is missing; expected user:password@host")
    userinfo, after_at = rest.rsplit("@", 1)
    user, password = _parse_userinfo(userinfo, fail)
    if password is not None:
        register_secret(password)
        register_secret(percent_encode(password))

    hostport, slash, path_query = after_at.partition("/")
    if not slash:
        raise fail("the database name is missing; expected host[:port]/dbname")
    host, port = _parse_hostport(hostport, fail)
    raw_dbname, _, raw_query = path_query.partition("?")
    dbname = _parse_dbname(raw_dbname, fail)
    query = _parse_query(raw_query, fail, source)
    return DatabaseURL(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        dbname=dbname,
        query=query,
    )


def _decode(raw: str, part: str, fail: _Fail) -> str:
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise fail(f"the {part} has %HH escapes that are not valid UTF-8") from None
    if "\x00" in decoded:
        raise fail(f"the {part} contains a NUL character")
    return decoded


def _parse_userinfo(userinfo: str, fail: _Fail) -> tuple[str, str | None]:
    raw_user, colon, raw_password = userinfo.partition(":")
    parts = [raw_user, raw_password] if colon else [raw_user]
    for part in parts:
        if not _USERINFO_PART.match(part):
            raise fail(_RESERVED_IN_USERINFO)
    user = _decode(raw_user, "user", fail)
    if not user:
        raise fail("the user is empty; expected user:password@host")
    password = _decode(raw_password, "password", fail) if colon else None
    return user, password


def _parse_hostport(hostport: str, fail: _Fail) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise fail("the IPv6 host literal has no closing ']'")
        host = hostport[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise fail("the bracketed host is not an IPv6 address") from None
        remainder = hostport[end + 1 :]
        if remainder and not remainder.startswith(":"):
            raise fail("unexpected text after the IPv6 host literal")
        raw_port = remainder[1:] if remainder else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not host:
            raise fail("the host is missing; expected user:password@host/dbname")
        if not _HOSTNAME.match(host):
            raise fail("the host is not a hostname, IPv4 address or [IPv6] literal")
        raw_port = port_text if colon else None
    if raw_port is None:
        return host, None
    if not _PORT.match(raw_port) or not 1 <= int(raw_port) <= 65535:
        raise fail("the port must be an integer from 1 to 65535")
    return host, int(raw_port)


def _parse_dbname(raw: str, fail: _Fail) -> str:
    if not raw:
        raise fail("the database name is missing; expected host[:port]/dbname")
    if "/" in raw:
        raise fail("the database name contains '/'; percent-encode it as %2F")
    if not _DBNAME.match(raw):
        raise fail("the database name contains a character that must be encoded")
    dbname = _decode(raw, "database name", fail)
    if not dbname:
        raise fail("the database name is empty")
    return dbname


def _parse_query(raw: str, fail: _Fail, source: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in raw.split("&"):
        key, equals, raw_value = item.partition("=")
        if not equals:
            raise fail("each query item must be key=value")
        if not _QUERY_KEY.match(key):
            raise fail("query keys may contain only a-z and '_'")
        if key in seen:
            raise fail(f"the query key {key} appears more than once")
        if not _QUERY_VALUE.match(raw_value):
            raise fail(f"the value of {key} contains a character that must be encoded")
        seen.add(key)
        value = _decode(raw_value, f"value of {key}", fail)
        if key == "sslmode":
            validate_sslmode(value, f"{source} sslmode")
        pairs.append((key, value))
    return tuple(pairs)

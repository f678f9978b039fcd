"""Every database connection dataqa opens (``tune.storage``: Optuna's RDB storage)
is made from one URL rule and one set of timeouts.

- **Driver**: a URL without a driver (``postgresql://user:pw@host/db``, the form the
  README shows) names the driver dataqa declares, psycopg2 (``postgresql+psycopg2://``):
  SQLAlchemy 2.1 would pick psycopg 3, which is not installed, and fail with "No module
  named 'psycopg'". A URL that names its driver (``postgresql+psycopg://``) is kept.
- **Timeouts**: a host that accepts the connection and never answers must not block a
  worker forever. Connecting gives up after :data:`CONNECT_TIMEOUT_S`; a statement after
  :data:`STATEMENT_TIMEOUT_S` (PostgreSQL: ``statement_timeout`` set at connect, plus
  TCP keepalives so a dead peer is noticed; MySQL: read/write timeouts; SQLite: the
  lock wait). The resulting SQLAlchemy ``OperationalError`` is exit code 2 with the
  database's reason (:func:`dataqa.errors.database_problem`).
- **Redaction**: every message holding a URL is printed through
  :func:`dataqa.text.redact_urls` (the CLI applies it to all it prints);
  :func:`redacted` is the same for one URL.

Decision: the timeouts are constants, not params: Optuna's statements are small (a
trial row, a heartbeat), so a minute is generous and no setting is needed to tune it.
"""

from __future__ import annotations

from typing import Any

from dataqa.text import redact_urls

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 60
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2"}


def engine_url(url: str) -> str:
    """``url`` with the declared driver filled in where it names none (see module doc)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in DEFAULT_DRIVERS:
        return f"{DEFAULT_DRIVERS[scheme.lower()]}://{rest}"
    return url


def engine_kwargs(url: str) -> dict[str, Any]:
    """``sqlalchemy.create_engine`` keyword arguments for ``url`` (after
    :func:`engine_url`): connect and statement timeouts for its dialect, and a ping
    before a pooled connection is reused."""
    dialect = url.partition("://")[0].split("+")[0].lower()
    connect: dict[str, Any] = {}
    if dialect == "postgresql":
        connect = {"connect_timeout": CONNECT_TIMEOUT_S,
                   "options": f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}",
                   "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                   "keepalives_count": 3}
    elif dialect in ("mysql", "mariadb"):
        connect = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": STATEMENT_TIMEOUT_S,
                   "write_timeout": STATEMENT_TIMEOUT_S}
    elif dialect == "sqlite":
        connect = {"timeout": CONNECT_TIMEOUT_S}
    return {"pool_pre_ping": True, "connect_args": connect}


def redacted(url: str) -> str:
    """``url`` without its password."""
    return redact_urls(url)

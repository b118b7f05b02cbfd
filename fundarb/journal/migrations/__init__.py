"""Versioned journal schema migrations, one SQL file per version and backend.

Files are named ``NNNN_name.<backend>.sql`` (backend ``sqlite`` or ``postgres``) and live next to
this module. At open, a backend creates ``schema_version`` if missing, reads the highest applied
version, refuses a schema newer than :data:`LATEST` with
:class:`~fundarb.journal.errors.JournalSchemaTooNew`, and applies each missing migration in its
own transaction together with its ``schema_version`` row. Migrations are never edited once
released: add a new file instead.
"""

from __future__ import annotations

import re
from importlib import resources

import attrs

from fundarb.journal.errors import JournalSchemaTooNew

__all__ = ["BACKENDS", "LATEST", "MIGRATIONS", "Migration", "check_version", "load_migrations", "pending"]

BACKENDS = ("sqlite", "postgres")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|postgres)\.sql$")


@attrs.frozen
class Migration:
    """One schema version: its SQL for each backend."""

    version: int
    name: str
    sql: dict[str, str]

    def sql_for(self, backend: str) -> str:
        """The SQL of this migration for ``backend``."""
        return self.sql[backend]


def load_migrations() -> tuple[Migration, ...]:
    """Read the packaged SQL files; every version must exist for every backend, numbered 1..N."""
    found: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for item in resources.files(__name__).iterdir():
        m = _NAME.match(item.name)
        if m is None:
            continue
        version, name, backend = int(m.group(1)), m.group(2), m.group(3)
        if names.setdefault(version, name) != name:
            raise RuntimeError(f"migration {version} has two names: {names[version]!r} and {name!r}")
        found.setdefault(version, {})[backend] = item.read_text(encoding="utf-8")
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"journal migrations must be numbered 1..N without gaps, found {versions}")
    for v in versions:
        missing = set(BACKENDS) - set(found[v])
        if missing:
            raise RuntimeError(f"migration {v} has no SQL for {sorted(missing)}")
    return tuple(Migration(v, names[v], found[v]) for v in versions)


MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version
"""The newest schema version this code knows."""


def check_version(current: int, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    """Raise :class:`JournalSchemaTooNew` when ``current`` is newer than ``migrations`` know."""
    known = migrations[-1].version if migrations else 0
    if current > known:
        raise JournalSchemaTooNew(current, known)


def pending(current: int, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """The migrations to apply to a schema at version ``current`` (0: empty database), in order."""
    check_version(current, migrations)
    return [m for m in migrations if m.version > current]

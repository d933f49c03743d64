"""The bench's databases: scratch databases on the server DATABASE_URL names, and the switch between them.

Imports nothing from Django at module level: `records.bench.ingest` creates the first scratch database before the
settings are read, and the settings must see its URL when they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import dj_database_url
import psycopg
from psycopg import sql


def _scratch_url(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def server_connection(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection, in autocommit (CREATE and DROP DATABASE refuse a transaction), to the database in `url`."""
    config = dj_database_url.parse(url)
    return psycopg.connect(
        dbname=str(config["NAME"]),
        user=str(config.get("USER") or "") or None,
        password=str(config.get("PASSWORD") or "") or None,
        host=str(config.get("HOST") or "") or None,
        port=str(config.get("PORT") or "") or None,
        autocommit=True,
    )


@contextlib.contextmanager
def scratch_database(url: str, suffix: str = "") -> Iterator[str]:
    """Yield the URL of a new, empty database on the server `url` names; drop it afterwards, whatever happened.

    Its name ends in `suffix`, so that one process can hold more than one."""
    name = f"sharedcare_bench_{os.getpid()}{suffix}"
    with server_connection(url) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _scratch_url(url, name)
    finally:
        # Imported here, like all of Django: the settings must first see the scratch database's URL.
        from django.db import connections

        # The server refuses to drop a database with sessions open; close ours first.
        connections.close_all()
        with server_connection(url) as server:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


KEPT_PREFIX = "sharedcare_kept_"


def kept_name_check(name: str) -> str:
    """The name of a kept database for `name` (letters, digits and underscores only)."""
    if not name or not all(character.isalnum() or character == "_" for character in name):
        raise ValueError(f"{name!r} is not a name of letters, digits and underscores")
    return f"{KEPT_PREFIX}{name.lower()}"


@contextlib.contextmanager
def kept_database(url: str, name: str) -> Iterator[str]:
    """Yield the URL of the database `sharedcare_kept_<name>` on the server `url` names, made if missing and never
    dropped, so a population built once (at 1M patients, an hour's COPY) is measured again without being rebuilt.

    It is not a scratch database: nothing drops it but `python -m records.bench.read --drop NAME`."""
    database = kept_name_check(name)
    with server_connection(url) as server:
        exists = server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield _scratch_url(url, database)
    finally:
        from django.db import connections

        connections.close_all()


def kept_database_drop(url: str, name: str) -> None:
    with server_connection(url) as server:
        server.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(kept_name_check(name)))
        )


@contextlib.contextmanager
def using_database(url: str) -> Iterator[None]:
    """Point Django's default connection at the database `url` names while inside (Django is set up)."""
    from django.db import connections

    default = connections["default"]
    name = default.settings_dict["NAME"]
    connections.close_all()
    default.settings_dict["NAME"] = dj_database_url.parse(url)["NAME"]
    try:
        yield
    finally:
        connections.close_all()
        default.settings_dict["NAME"] = name


@contextlib.contextmanager
def another_database() -> Iterator[None]:
    """Point Django's connection at another new scratch database on the same server, migrated, while inside.

    The demo's patients (its NHS numbers) and partners (their ODS codes) are fixed, so a second first run of it
    needs a database of its own; the first is used again afterwards.
    """
    from django.core.management import call_command

    with scratch_database(os.environ["DATABASE_URL"], suffix="_2") as url, using_database(url):
        call_command("migrate", verbosity=0, interactive=False)
        yield

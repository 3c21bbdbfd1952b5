"""Connecting and opening: the DSN from the argument or the environment, unreachable servers,
refused logins, foreign and newer schemas, migrations; every error names the DSN without its
password."""

from __future__ import annotations

import socket
from collections.abc import Callable

import anyio
import psycopg
import pytest

from agentlightning_core.plugins import resolve_component
from agentlightning_postgres import PostgresLightningStore, PostgresStoreError
from agentlightning_postgres.schema import DSN_ENV, MIGRATIONS, RESERVED_WORDS, SCHEMA_VERSION, redact
from agentlightning_postgres.testing import PASSWORD, USER, TemporaryCluster

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]


async def _sql(dsn: str, query: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query.encode())
        return await cur.fetchall() if cur.description else []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_new_schema_gets_the_tables_and_the_version(dsn: str, make_store: Make) -> None:
    async with make_store(schema="fresh") as store:
        await store.enqueue_rollout("x")
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert await _sql(dsn, "SELECT version FROM fresh.agl_schema_version") == [(SCHEMA_VERSION,)]


async def test_data_survives_reopening(make_store: Make) -> None:
    async with make_store(schema="reopen") as store:
        rollout = await store.enqueue_rollout({"q": "2+2"}, mode="train", metadata={"k": [1, 2]})
        res = await store.add_resources({})
    async with make_store(schema="reopen") as store:
        assert await store.get_rollout_by_id(rollout.rollout_id) == rollout
        assert await store.get_latest_resources() == res
        got = await store.dequeue_rollout()
        assert got is not None and got.rollout_id == rollout.rollout_id


async def test_processes_opening_a_new_schema_together_migrate_it_once(make_store: Make) -> None:
    stores = [make_store(schema="together") for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.statistics)  # the first call of each opens (and migrates) it
        rollout = await stores[0].enqueue_rollout("x")
        assert (await stores[3].get_rollout_by_id(rollout.rollout_id)).input == "x"
    finally:
        for store in stores:
            await store.aclose()


async def test_the_dsn_comes_from_the_environment(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, dsn)
    store = resolve_component("store", {"type": "postgres", "schema": "from_env"})
    assert isinstance(store, PostgresLightningStore)
    async with store:
        assert (await store.statistics())["rollouts"] == 0


def test_no_dsn_at_all_says_where_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    with pytest.raises(PostgresStoreError, match=rf"needs a DSN.*\${DSN_ENV}"):
        PostgresLightningStore()


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    port = _closed_port()
    store = PostgresLightningStore(f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/agl", connect_timeout=2)
    with pytest.raises(PostgresStoreError) as info:
        await store.start()
    message = str(info.value)
    assert f"port={port}" in message and "user=alice" in message and "Cannot connect" in message
    assert "s3cret-pw" not in message and "password=***" in message
    assert "s3cret-pw" not in repr(store)


async def test_a_wrong_password_is_refused_clearly(postgres: TemporaryCluster) -> None:
    dsn = f"postgresql://{USER}:not-{PASSWORD}@127.0.0.1:{postgres.port}/postgres"
    with pytest.raises(PostgresStoreError, match="password authentication failed") as info:
        async with PostgresLightningStore(dsn, schema="wrong_pw"):
            pass
    assert f"not-{PASSWORD}" not in str(info.value)


async def test_a_missing_database_is_named(postgres: TemporaryCluster) -> None:
    with pytest.raises(PostgresStoreError, match=r'dbname=no_such_db.*database "no_such_db" does not exist'):
        async with PostgresLightningStore(postgres.dsn_for("no_such_db")):
            pass


async def test_a_newer_schema_version_is_refused_and_left_untouched(dsn: str, make_store: Make) -> None:
    async with make_store(schema="newer") as store:
        await store.enqueue_rollout("x")
    await _sql(dsn, f"UPDATE newer.agl_schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(PostgresStoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer") as info:
        async with make_store(schema="newer"):
            pass
    assert "pip install -U agentlightning-postgres" in str(info.value)
    assert PASSWORD not in str(info.value) and "port=" in str(info.value)
    assert await _sql(dsn, "SELECT version FROM newer.agl_schema_version") == [(SCHEMA_VERSION + 1,)]
    assert await _sql(dsn, "SELECT count(*) FROM newer.rollouts") == [(1,)]


async def test_a_schema_of_another_application_is_refused(dsn: str, make_store: Make) -> None:
    await _sql(dsn, "CREATE SCHEMA foreign_app; CREATE TABLE foreign_app.orders (id int)")
    with pytest.raises(PostgresStoreError, match=r"'foreign_app'.*another application.*refusing"):
        async with make_store(schema="foreign_app"):
            pass
    assert await _sql(
        dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'foreign_app'"
    ) == [("orders",)]


@pytest.mark.parametrize("schema", ["", "Upper", "a-b", "x" * 59, "1st"])
def test_bad_schema_names_are_refused(dsn: str, schema: str) -> None:
    with pytest.raises(ValueError, match="schema must be a lowercase PostgreSQL name"):
        PostgresLightningStore(dsn, schema=schema)


@pytest.mark.parametrize("schema", ["order", "select", "user", "authorization"])
def test_reserved_words_are_refused_naming_the_word_and_another_name(dsn: str, schema: str) -> None:
    with pytest.raises(ValueError, match=rf"schema '{schema}' is a reserved word.*such as 'agl_{schema}'"):
        PostgresLightningStore(dsn, schema=schema)


async def test_the_servers_reserved_words_are_all_refused(dsn: str) -> None:
    reserved = await _sql(dsn, "SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')")
    assert len(reserved) > 50
    assert {word for (word,) in reserved} <= RESERVED_WORDS


@pytest.mark.parametrize("schema", ["agl_order", "values", "int"])  # key words, but not reserved
async def test_names_near_reserved_words_work(dsn: str, make_store: Make, schema: str) -> None:
    async with make_store(schema=schema) as store:
        rollout = await store.enqueue_rollout("x")
        assert (await store.get_rollout_by_id(rollout.rollout_id)).input == "x"
    assert await _sql(dsn, f"SELECT version FROM {schema}.agl_schema_version") == [(SCHEMA_VERSION,)]


def test_redact_hides_the_password_in_urls_and_key_value_dsns() -> None:
    assert "hunter2" not in redact("postgresql://bob:hunter2@db.example:5433/agl")
    assert "hunter2" not in redact("host=db.example password=hunter2 dbname=agl")
    assert "host=db.example" in redact("host=db.example password=hunter2 dbname=agl")
    assert redact("host='unterminated") == "<a DSN that libpq cannot parse>"

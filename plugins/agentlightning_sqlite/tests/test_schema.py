"""Opening files: new, reopened, corrupt, foreign, newer schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentlightning_core.plugins import resolve_component
from agentlightning_core.store.base import LightningStore
from agentlightning_sqlite import SqliteLightningStore, SqliteStoreError
from agentlightning_sqlite.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION


def _pragmas(path: Path) -> tuple[int, int, str]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
        )


@pytest.mark.anyio
async def test_new_file_gets_marker_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with SqliteLightningStore(path) as store:
        await store.enqueue_rollout("x")
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION, "wal")


@pytest.mark.anyio
async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    async with SqliteLightningStore(path) as store:
        rollout = await store.enqueue_rollout({"q": "2+2"}, mode="train", metadata={"k": [1, 2]})
        res = await store.add_resources({})
    async with SqliteLightningStore(path) as store:
        assert await store.get_rollout_by_id(rollout.rollout_id) == rollout
        assert await store.get_latest_resources() == res
        got = await store.dequeue_rollout()
        assert got is not None and got.rollout_id == rollout.rollout_id
        assert got.rollout.resources_id == res.resources_id


@pytest.mark.anyio
async def test_corrupt_file_is_refused_naming_it_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    content = b"this is not an sqlite database\n" * 200
    path.write_bytes(content)
    store = SqliteLightningStore(path)
    with pytest.raises(SqliteStoreError, match=r"corrupt\.db") as info:
        await store.enqueue_rollout("x")
    assert "not a usable SQLite database" in str(info.value)
    assert path.read_bytes() == content
    await store.aclose()


@pytest.mark.anyio
async def test_damaged_store_file_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    async with SqliteLightningStore(path) as store:
        for i in range(200):
            await store.enqueue_rollout({"i": i, "pad": "y" * 500})
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # keep the header page, wreck the rest
        data[offset : offset + page] = b"\xff" * page
    path.write_bytes(bytes(data))
    store = SqliteLightningStore(path)
    with pytest.raises(SqliteStoreError, match=r"damaged\.db"):
        await store.query_rollouts()
    await store.aclose()


@pytest.mark.anyio
async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
        conn.execute("INSERT INTO invoices (amount) VALUES (9.5)")
    store = SqliteLightningStore(path)
    with pytest.raises(SqliteStoreError, match=r"other\.db.*another application"):
        await store.start()
    await store.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT amount FROM invoices").fetchall() == [(9.5,)]


@pytest.mark.anyio
async def test_other_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tagged.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id=1234")
    store = SqliteLightningStore(path)
    with pytest.raises(SqliteStoreError, match="application_id=0x4d2"):
        await store.start()
    await store.aclose()


@pytest.mark.anyio
async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SqliteLightningStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store = SqliteLightningStore(path)
    with pytest.raises(SqliteStoreError, match=rf"future\.db.*version {SCHEMA_VERSION + 1}.*pip install -U"):
        await store.start()
    await store.aclose()


@pytest.mark.anyio
async def test_missing_directory_gives_a_clear_error(tmp_path: Path) -> None:
    store = SqliteLightningStore(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(SqliteStoreError, match=r"dir\.db.*directory exists"):
        await store.start()
    await store.aclose()


@pytest.mark.anyio
async def test_durability_levels_set_synchronous(tmp_path: Path) -> None:
    def synchronous(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    async with SqliteLightningStore(tmp_path / "a.db") as default:
        assert await default._read(synchronous) == 1  # NORMAL
    async with SqliteLightningStore(tmp_path / "b.db", durability="power_loss") as safe:
        assert await safe._read(synchronous) == 2  # FULL
    with pytest.raises(ValueError, match="'fsync'"):
        SqliteLightningStore(tmp_path / "c.db", durability="fsync")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_registered_as_sqlite_and_resolved_by_spec(tmp_path: Path) -> None:
    store = resolve_component("store", {"type": "sqlite", "path": str(tmp_path / "spec.db")})
    assert isinstance(store, SqliteLightningStore) and isinstance(store, LightningStore)
    async with store:
        assert (await store.statistics())["rollouts"] == 0


@pytest.mark.anyio
async def test_a_version_1_file_is_migrated_and_its_attempts_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    async with SqliteLightningStore(path) as store:
        res = await store.add_resources({})
        old = await store.start_rollout("before the upgrade")
        done = await store.update_attempt(old.rollout_id, old.attempt_id, status="succeeded")
    with sqlite3.connect(path) as conn:  # back to the schema version 1 wrote: no reward, no resources_id
        conn.execute("ALTER TABLE attempts DROP COLUMN reward")
        conn.execute("ALTER TABLE attempts DROP COLUMN resources_id")
        conn.execute("PRAGMA user_version=1")
        v1 = sqlite3.connect(":memory:")
        for statement in MIGRATIONS[0].split(";"):
            v1.execute(statement)
        columns = "SELECT name FROM pragma_table_info('attempts')"
        assert conn.execute(columns).fetchall() == v1.execute(columns).fetchall()
    async with SqliteLightningStore(path) as store:
        attempt = await store.get_latest_attempt(old.rollout_id)
        assert attempt is not None and attempt.status == "succeeded" and attempt.end_time == done.end_time
        assert (attempt.reward, attempt.resources_id) == (None, None)
        rewarded = await store.update_attempt(old.rollout_id, old.attempt_id, reward=0.5)
        assert rewarded.reward == 0.5
        new = await store.start_rollout("after the upgrade")
        assert new.attempt.resources_id == res.resources_id
    assert _pragmas(path)[1] == SCHEMA_VERSION == 2

"""The server's own data layer: driver errors become the library's store errors, an in-memory
SQLite database leaves no file behind, times keep their microseconds on MariaDB and are refused
without a time zone, and a license install that races another one still lands."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reference_server.data import DuplicateRowError, ServerData, tables
from storno_security.errors import StoreError, StoreUnavailableError
from tests.conftest import missing_service

WHEN = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _company(company_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": company_id,
        "organization_id": "org-1",
        "name": "ACME SRL",
        "country": "RO",
        "created_at": WHEN,
        **fields,
    }


@pytest.fixture
def memory_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerData]:
    monkeypatch.chdir(tmp_path)
    data = ServerData("sqlite:///:memory:")
    data.create_schema()
    yield data
    data.dispose()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_sqlite_database_writes_no_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = ServerData(url)
    try:
        data.create_schema()
        assert data.ping()
    finally:
        data.dispose()
    assert list(tmp_path.iterdir()) == []


def test_a_duplicate_row_is_refused_and_the_transaction_rolled_back(
    memory_data: ServerData,
) -> None:
    with memory_data.transaction() as conn:
        conn.execute(tables.companies.insert().values(_company("c-1")))
    with pytest.raises(DuplicateRowError) as caught, memory_data.transaction() as conn:  # noqa: PT012
        conn.execute(tables.companies.insert().values(_company("c-2")))
        conn.execute(tables.companies.insert().values(_company("c-1", name="Other SRL")))
    assert caught.value.reason == "duplicate"
    with memory_data.read() as conn:
        rows = conn.execute(sa.select(tables.companies.c.id, tables.companies.c.name)).all()
    assert [tuple(row) for row in rows] == [("c-1", "ACME SRL")]


def test_a_time_without_a_zone_is_refused_before_it_is_stored(memory_data: ServerData) -> None:
    naive = WHEN.replace(tzinfo=None)
    with pytest.raises(StoreError) as caught, memory_data.transaction() as conn:
        conn.execute(tables.companies.insert().values(_company("c-1", created_at=naive)))
    assert type(caught.value) is StoreError
    assert str(caught.value) == "database error"
    assert "naive datetime given to the database" in str(caught.value.__cause__)
    with memory_data.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.companies)).scalar() == 0


def test_an_unreachable_database_is_unavailable_and_not_ready() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    data = ServerData("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        assert data.ping() is False
        with pytest.raises(StoreUnavailableError) as caught, data.transaction() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert str(caught.value) == "database unavailable"
    finally:
        data.dispose()


def _server_data(backend: str, sql_urls: dict[str, str | None]) -> ServerData:
    url = sql_urls[backend]
    if url is None:
        missing_service(backend, "no server on its port")
    assert url is not None
    data = ServerData(url)
    data.create_schema()
    return data


def test_mariadb_keeps_microseconds_and_null_times(sql_urls: dict[str, str | None]) -> None:
    data = _server_data("mariadb", sql_urls)
    company_id = str(uuid.uuid4())
    try:
        with data.transaction() as conn:
            conn.execute(tables.companies.insert().values(_company(company_id, deleted_at=None)))
        with data.read() as conn:
            row = conn.execute(
                sa.select(tables.companies).where(tables.companies.c.id == company_id)
            ).one()
    finally:
        data.dispose()
    assert row.created_at == WHEN
    assert row.created_at.tzinfo is UTC
    assert row.deleted_at is None


class _Rival:
    """Another server process writing the same organization's license row, on its own
    connection, just before each of our statements on that table."""

    def __init__(self, data: ServerData, organization_id: str, *, times: int) -> None:
        self.engine = sa.create_engine(data.url, poolclass=sa.pool.NullPool)
        self.organization_id = organization_id
        self.left = times
        self.table = tables.organization_licenses
        sa.event.listen(data.engine, "before_cursor_execute", self.before)

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.left == 0 or self.table.name not in statement:
            return
        rows = self.table.c.organization_id == self.organization_id
        with self.engine.begin() as rival:
            if statement.startswith("UPDATE"):  # the row vanishes: our update changes nothing
                rival.execute(self.table.delete().where(rows))
            elif statement.startswith("INSERT"):  # and reappears: our insert collides
                rival.execute(
                    self.table.insert().values(
                        organization_id=self.organization_id,
                        license_token="theirs",
                        installed_at=WHEN,
                    )
                )
                self.left -= 1


@pytest.mark.parametrize("races", [1, 2])
def test_a_license_install_racing_another_updates_or_gives_up_after_two_tries(
    races: int, sql_urls: dict[str, str | None]
) -> None:
    data = _server_data("postgresql", sql_urls)
    organization_id = str(uuid.uuid4())
    _Rival(data, organization_id, times=races)
    try:
        if races == 1:  # the first insert collides; the retry updates the rival's row
            data.licenses.install(organization_id, "ours", now=WHEN)
            assert data.licenses.token(organization_id) == "ours"
        else:
            with pytest.raises(DuplicateRowError, match="kept changing"):
                data.licenses.install(organization_id, "ours", now=WHEN)
            assert data.licenses.token(organization_id) == "theirs"
    finally:
        data.dispose()

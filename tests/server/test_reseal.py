"""Re-sealing under a new vault key (``reference_server.data.reseal``): a value written while the
re-seal runs is never overwritten, and a value no key can read is neither counted as waiting
for an old key nor re-sealed."""

from __future__ import annotations

import sqlalchemy as sa

from reference_server.data import tables
from reference_server.data.reseal import ResealReport, reseal, still_sealed_under_old_keys
from reference_server.wiring import Server
from storno_security.integrations.keyfiles import generate_vault_key, load_vault_ring
from storno_security.vault import VaultKeyRing
from tests.server.test_cli import _seed_sealed_rows

CREDENTIALS = "app_storage_credentials.sealed"


def _rotated_ring(server: Server) -> VaultKeyRing:
    directory = server.settings.data_dir / "keys" / "vault"
    generate_vault_key(directory)
    return load_vault_ring(directory, create=False)


def _set_credential(server: Server, credential_id: str, sealed: str) -> None:
    table = tables.storage_credentials
    with server.data.transaction() as conn:
        conn.execute(table.update().where(table.c.id == credential_id).values(sealed=sealed))


def _credential(server: Server, credential_id: str) -> str:
    table = tables.storage_credentials
    with server.data.read() as conn:
        sealed: str = conn.execute(
            sa.select(table.c.sealed).where(table.c.id == credential_id)
        ).scalar_one()
    return sealed


def test_a_value_written_during_the_reseal_is_kept(server: Server) -> None:
    ids = _seed_sealed_rows(server)
    ring = _rotated_ring(server)
    associated = f"app_storage_credentials:{ids['credential']}:{ids['company']}"
    written = ring.seal("a secret the user just changed", associated_data=associated)

    def a_request_writes_meanwhile(column: str, done: int, total: int) -> None:
        if column == CREDENTIALS:
            _set_credential(server, ids["credential"], written)

    reports = reseal(server.data, ring, progress=a_request_writes_meanwhile)
    assert reports[CREDENTIALS] == ResealReport(changed_meanwhile=1)
    assert reports["storno_users.totp_secret_sealed"] == ResealReport(resealed=1)
    assert _credential(server, ids["credential"]) == written
    # the next run (no one listening to its progress) finds every value current
    again = reseal(server.data, ring)
    assert again[CREDENTIALS] == ResealReport(current=1)
    assert again["storno_users.totp_secret_sealed"] == ResealReport(current=1)
    assert still_sealed_under_old_keys(server.data, ring) == 0


def test_a_value_no_key_reads_is_not_counted_as_waiting(server: Server) -> None:
    ids = _seed_sealed_rows(server)
    ring = _rotated_ring(server)
    _set_credential(server, ids["credential"], "not a sealed token")
    # the TOTP secret and the pending enrolment wait for the old key; the garbage does not
    assert still_sealed_under_old_keys(server.data, ring) == 2
    reports = reseal(server.data, ring)
    assert reports[CREDENTIALS] == ResealReport(unreadable=1)
    assert _credential(server, ids["credential"]) == "not a sealed token"
    assert still_sealed_under_old_keys(server.data, ring) == 0

"""AuditStore on SQLite and PostgreSQL: entries keep their before/after as JSON and come
back newest first."""

from __future__ import annotations

from datetime import UTC

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.audit import AuditStore

store_db = store_fixtures.store_db


@pytest.fixture
def audit(store_db: StoreDB) -> AuditStore:
    return AuditStore(store_db.engine)


async def test_audit_log_keeps_json_before_and_after(audit: AuditStore) -> None:
    await audit.record("admin:root", "set_status", "acme", {"status": "active"},
                      {"status": "suspended"})
    await audit.record("admin:root", "create", "beta", None, {"credits": "9.00"})
    entries = await audit.newest(10)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("create", "beta"), ("set_status", "acme")]
    assert entries[1]["before"] == {"status": "active"}
    assert entries[1]["after"] == {"status": "suspended"}
    assert entries[0]["before"] is None
    assert entries[0]["at"].tzinfo is UTC
    assert len(await audit.newest(1)) == 1

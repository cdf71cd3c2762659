"""Inbound prefixes and ranges: an account may own "33612*" and "33612340000-33612349999"
as well as exact numbers.

`inbound_numbers` gets `kind` (exact, prefix or range; every existing row is exact) and
`range_end` (a range's last number; `number` is its first). The UNIQUE key on `number`
goes: "no two accounts share a number" is now an overlap between entries, which
store.inbound checks under a lock; a plain index on `number` serves the MO lookup.
Downgrading refuses while prefixes or ranges exist: 0009 cannot hold them, and dropping
them would silently leave their MOs without an owner.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Final names (op.f): alembic would otherwise apply store.tables' convention once more.
KIND_CHECK = ("ck_inbound_numbers_kind", "kind IN ('exact', 'prefix', 'range')")
RANGE_END_CHECK = (
    "ck_inbound_numbers_range_end",
    ("(kind = 'range' AND range_end IS NOT NULL AND length(range_end) = length(number)"
     " AND range_end >= number)"
     " OR (kind <> 'range' AND range_end IS NULL)"),
)


def upgrade() -> None:
    # SQLite copies the table (batch mode); PostgreSQL alters it in place.
    with op.batch_alter_table("inbound_numbers") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False,
                                   server_default="exact"))
        batch.add_column(sa.Column("range_end", sa.String(21), nullable=True))
        batch.drop_constraint(op.f("uq_inbound_numbers_number"), type_="unique")
        batch.create_index("ix_inbound_numbers_number", ["number"])
        for name, rule in (KIND_CHECK, RANGE_END_CHECK):
            batch.create_check_constraint(op.f(name), rule)


def downgrade() -> None:
    bind = op.get_bind()
    held = bind.exec_driver_sql(
        "SELECT count(*) FROM inbound_numbers WHERE kind <> 'exact'").scalar_one()
    if held:
        raise RuntimeError(
            f"cannot downgrade below 0010: {held} inbound prefixes or ranges exist, which "
            "0009 cannot hold; remove them (admin operation number.remove) and start again"
        )
    with op.batch_alter_table("inbound_numbers") as batch:
        for name, _ in (RANGE_END_CHECK, KIND_CHECK):
            batch.drop_constraint(op.f(name), type_="check")
        batch.drop_index("ix_inbound_numbers_number")
        batch.create_unique_constraint(op.f("uq_inbound_numbers_number"), ["number"])
        batch.drop_column("range_end")
        batch.drop_column("kind")

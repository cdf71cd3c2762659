"""benchmarks/store_writer.py run small, so the measurement keeps working: every row it
asks for is written, by the writer and by the floor, and the books balance. It never
asserts timing, which this shared machine cannot keep."""

from __future__ import annotations

from benchmarks import store_writer


def test_the_measurement_writes_every_row_and_the_books_balance(capsys) -> None:
    results = store_writer.main(["3", "--batches", "1,10"])
    assert [(r.who, r.batch) for r in results] == [
        ("StoreWriter", 1), ("sqlite3 floor", 1), ("StoreWriter", 10), ("sqlite3 floor", 10)]
    for r in results:
        assert r.rows_written == r.rows_asked == 3 * r.batch
        assert r.ledger_violations == []
        assert r.commits >= 3 and r.rows_per_s > 0
        assert 0 < r.commit_p50_ms <= r.commit_p99_ms
    assert "sqlite3 floor" in capsys.readouterr().out

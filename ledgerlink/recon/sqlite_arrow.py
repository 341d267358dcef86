"""Big SQLite reads as Arrow, in child processes.

A full reconciliation run reads a million stored transactions and as many receipts.
Through Python's ``sqlite3`` that is one tuple and nine Python objects a row: about
4 s and 1.2 GB for the transactions alone, before polars sees them. ADBC's SQLite driver
(Apache Arrow) hands polars columns directly: about 1 s and 0.3 GB. But it links its own
copy of SQLite, and two copies of SQLite in one process break each other's POSIX file
locks (https://sqlite.org/howtocorrupt.html, "multiple copies of SQLite linked into the
same application"; seen here as "disk I/O error" and committed rows not seen). So the
ADBC reads run in child processes, one per query and side by side, each handing back
Arrow IPC on its standard output: separate processes locking one database file is
ordinary SQLite.

The child reads committed rows; callers bound what they read by row ids taken in their
own session, so a row committed in between is not read.

    python -m ledgerlink.recon.sqlite_arrow <database file>   # SQL on standard input
"""

from __future__ import annotations

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import polars as pl

#: ADBC SQLite's option for rows per batch; its driver infers a column's type from the
#: first batch (a text column null in the first rows would be refused when a value
#: comes), so one batch holds every row.
_BATCH_ROWS = "adbc.sqlite.query.batch_rows"
_ONE_BATCH = 1 << 30


class ArrowReadError(RuntimeError):
    """A child read failed; the message is the child's error."""


def _read_one(database: str, sql: str) -> pl.DataFrame:
    done = subprocess.run(  # noqa: S603 - our own module, by this interpreter; SQL on stdin
        [sys.executable, "-m", __name__, database],
        input=sql.encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode:
        error = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArrowReadError(
            f"Reading the stored rows failed: {error[-1] if error else done.returncode}"
        )
    return pl.read_ipc(io.BytesIO(done.stdout))


def read(database: str, queries: dict[str, str]) -> dict[str, pl.DataFrame]:
    """Each of ``queries`` (name → SQL) read from the SQLite file ``database``, in
    child processes running side by side."""
    with ThreadPoolExecutor(max_workers=max(1, len(queries))) as pool:
        futures = {name: pool.submit(_read_one, database, sql) for name, sql in queries.items()}
        return {name: future.result() for name, future in futures.items()}


def _main(database: str) -> None:
    import adbc_driver_sqlite.dbapi as adbc_sqlite  # deferred: only the child loads it

    sql = sys.stdin.read()
    try:
        with adbc_sqlite.connect(database) as connection, connection.cursor() as cursor:
            cursor.adbc_statement.set_options(**{_BATCH_ROWS: str(_ONE_BATCH)})
            cursor.execute(sql)
            frame = pl.DataFrame(cursor.fetch_arrow())
    except Exception as exc:  # the parent raises it with this line: no traceback to parse
        sys.stderr.write((str(exc).splitlines() or [type(exc).__name__])[0] + "\n")
        raise SystemExit(1) from None
    frame.write_ipc(sys.stdout.buffer)


if __name__ == "__main__":
    _main(sys.argv[1])

"""A throw-away PostgreSQL server on a loopback port: for the tests and the benchmarks.

initdb refuses to run as root, so when we are root the server runs as the ``postgres`` user. The
server and its data directory are removed on :meth:`ThrowawayPostgres.stop`. ``fsync`` stays on
unless the caller asks otherwise (fine for functional tests, never for benchmarks).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from cloud.broker import free_port, wait_for_port
from cloud.errors import PostgresError

PG_USER = "lastmile"


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin``. Raises PostgresError if none is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run 'apt-get install postgresql'"
        )
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")


def libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as psycopg/libpq wants it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class ThrowawayPostgres:
    """initdb + pg_ctl start on a free port; :attr:`url` is the maintenance database. A context
    manager; ``options`` are extra server settings (``{"fsync": "off"}``)."""

    def __init__(self, *, options: dict[str, str] | None = None, start_timeout_s: int = 30) -> None:
        self._options = dict(options or {})
        self._timeout = start_timeout_s
        self._root: Path | None = None
        self._pg_bin: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self._root is None:
            raise PostgresError("not started")
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> ThrowawayPostgres:
        """Raises PostgresError (the data directory is removed again)."""
        self._pg_bin = find_pg_bin()
        root = Path(tempfile.mkdtemp(prefix="lastmile-pg-"))
        self._root = root
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres")
        data, log = root / "data", root / "log"
        self.port = free_port()
        try:
            _run(
                [
                    str(self._pg_bin / "initdb"),
                    *("-D", str(data), "-A", "trust", "-U", PG_USER, "--no-sync"),
                ],
                "initdb",
            )
            options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {root}"
            options += "".join(f" -c {k}={v}" for k, v in self._options.items())
            _run(
                [
                    str(self._pg_bin / "pg_ctl"),
                    *("-D", str(data), "-w", "-t", str(self._timeout), "-l", str(log)),
                    *("-o", options, "start"),
                ],
                "pg_ctl start",
            )
            wait_for_port("127.0.0.1", self.port, timeout=self._timeout, what="postgres")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop immediately (nothing here is worth a checkpoint) and delete the data."""
        root, self._root = self._root, None
        if root is None or self._pg_bin is None:
            return
        data = root / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(
                    [str(self._pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

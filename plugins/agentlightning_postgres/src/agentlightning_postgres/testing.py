"""A throw-away PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary
directory, started on a free loopback port, removed on exit.

    with TemporaryCluster() as cluster:
        store = PostgresLightningStore(cluster.dsn)

The server binaries are found through ``AGL_POSTGRES_BIN``, ``pg_config --bindir`` or
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package). PostgreSQL refuses to run as
root, so as root the cluster belongs to the ``postgres`` system user (``nobody`` if there is
none) and its commands run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "PASSWORD",
    "USER",
    "PostgresNotInstalledError",
    "TemporaryCluster",
    "find_bindir",
    "waiting_for_a_lock",
]

logger = logging.getLogger(__name__)

USER = "agl"
"""The cluster's superuser."""
PASSWORD = "agl-test-password"
"""Its password (connections over TCP authenticate with scram-sha-256)."""
_TIMEOUT = 180.0


class PostgresNotInstalledError(RuntimeError):
    """The PostgreSQL server binaries (``initdb``, ``pg_ctl``) are not on this machine."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (the newest Debian version first)."""
    candidates: list[str] = []
    if env := os.environ.get("AGL_POSTGRES_BIN"):
        candidates.append(env)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(
                subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        debian, key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()]
    )[::-1]
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresNotInstalledError(
        "The PostgreSQL server binaries (initdb, pg_ctl) were not found in $AGL_POSTGRES_BIN, "
        "pg_config --bindir or /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: "
        "apt-get install postgresql; ./scripts/setup.sh does it) or set AGL_POSTGRES_BIN to their directory."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TemporaryCluster:
    """A PostgreSQL cluster in a temporary directory, serving ``127.0.0.1`` on a free port.

    :param settings: server settings (``postgresql.conf`` names) added to the defaults; tests
        pass ``{"fsync": "off"}`` to spare the disk.
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(settings or {})
        self.bindir = find_bindir()
        self.port = 0
        self._tmp: Path | None = None
        self._run_as: str | None = None

    @property
    def dsn(self) -> str:
        """The DSN of the ``postgres`` database as the superuser."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    @property
    def data_dir(self) -> Path:
        assert self._tmp is not None, "the cluster is not started"
        return self._tmp / "data"

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes (postmaster, backends, WAL writer...) used so far,
        from ``/proc``: what benchmarks compare on a shared machine instead of wall time."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if int(entry) == postmaster or int(fields[1]) == postmaster:  # fields[1]: parent pid
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        # As root: switch to the cluster's owner in the child (no PAM session, unlike runuser).
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            cwd=self._tmp,
            user=self._run_as,
            group=self._run_as,
            extra_groups=None if self._run_as is None else [],
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def start(self) -> None:
        """Create the cluster and start its server; returns once it accepts connections."""
        self._tmp = Path(tempfile.mkdtemp(prefix="agl-postgres-"))
        if os.geteuid() == 0:
            self._run_as = next((name for name in ("postgres", "nobody") if _has_user(name)), None)
            if self._run_as is None:
                raise RuntimeError("Running as root, and no 'postgres' or 'nobody' user to run PostgreSQL as")
            entry = pwd.getpwnam(self._run_as)
            os.chown(self._tmp, entry.pw_uid, entry.pw_gid)
        pwfile = self._tmp / "pwfile"
        pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self._tmp),
            "max_connections": "200",
            **self.settings,
        }
        for attempt in range(3):
            self.port = _free_port()
            settings["port"] = str(self.port)
            with (self.data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
                conf.writelines(f"{k} = '{v}'\n" for k, v in settings.items())
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-l", str(self._tmp / "server.log"), "-w", "start"
                )
                break
            except RuntimeError:
                if attempt == 2:  # the port was taken between our probe and the server's bind
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{self.log()}") from None
        logger.info("Temporary PostgreSQL cluster in %s on port %d", self._tmp, self.port)

    def log(self) -> str:
        """The server's log so far."""
        path = self._tmp / "server.log" if self._tmp is not None else None
        return (
            path.read_text(encoding="utf-8", errors="replace") if path is not None and path.is_file() else ""
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster. Idempotent."""
        if self._tmp is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").is_file():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


async def waiting_for_a_lock(dsn: str) -> bool:
    """Whether some session of the database at ``dsn`` waits for a lock (for tests that hold one)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        found = await (
            await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        ).fetchone()
        return found is not None and found[0] > 0

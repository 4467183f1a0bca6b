"""A throwaway PostgreSQL server for tests and benchmarks of the PostgreSQL ledger.

:class:`ThrowawayServer` runs ``initdb`` and ``pg_ctl`` (which must be on ``PATH``) in a new temporary
directory, listening only on a unix socket there, with ``trust`` authentication: for tests on one machine
only, never for a real ledger (``docs/ledger.md`` says how to set up a real server). ``initdb`` refuses to
run as root, so under root the server runs as ``nobody`` (or a ``dprec-pgtest`` system user, created with
``useradd`` if neither exists).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile

__all__ = ["ThrowawayServer", "missing_binaries"]

_BINARIES = ("initdb", "pg_ctl", "postgres")


def missing_binaries() -> list[str]:
    """The PostgreSQL server binaries not found on ``PATH`` (empty if a server can be started)."""
    return [b for b in _BINARIES if shutil.which(b) is None]


def _server_user():
    """``None`` (run as ourselves) unless we are root: then ``nobody`` or a dedicated system user."""
    if os.geteuid() != 0:
        return None
    for name in ("nobody", "dprec-pgtest"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "dprec-pgtest"], check=True, capture_output=True)
    return pwd.getpwnam("dprec-pgtest")


class ThrowawayServer:
    """A PostgreSQL server in a temporary directory; a context manager (``start`` on enter, ``close`` on exit).

    Parameters
    ----------
    port : int
        Names the socket file ``.s.PGSQL.<port>`` only; there is no TCP listener.
    fsync : bool
        ``False`` (the default, for tests) skips flushes: much faster, not crash-safe.
    settings : dict, optional
        Further server settings (``-c name=value``).
    """

    def __init__(self, *, port: int = 5432, fsync: bool = False, settings: dict | None = None):
        self.port = port
        self._user = _server_user()
        # under /tmp: a short socket path (at most 107 bytes) that the unprivileged user can reach
        self.dir = tempfile.mkdtemp(prefix="dprec-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self._data = os.path.join(self.dir, "data")
        opts = {"listen_addresses": "''", "fsync": "on" if fsync else "off", "max_connections": "40"}
        opts.update({k: str(v) for k, v in (settings or {}).items()})
        self._opts = f"-k {self.dir} -p {port} " + " ".join(f"-c {k}={v}" for k, v in opts.items())
        self._initialised = False

    def _run(self, *cmd, check=True):
        kw = {} if self._user is None else {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        return subprocess.run(list(cmd), check=check, capture_output=True, text=True, **kw)

    def url(self, role: str, dbname: str = "postgres", *, port: int | None = None) -> str:
        """``postgresql://role@/dbname?host=<socket dir>&port=<port>``."""
        return f"postgresql://{role}@/{dbname}?host={self.dir}&port={self.port if port is None else port}"

    def start(self) -> ThrowawayServer:
        """``initdb`` (superuser ``postgres``) on first use, then start the server and wait until it accepts."""
        if not self._initialised:
            init = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions")
            self._run("initdb", "-D", self._data, *init)
            self._initialised = True
        self._run("pg_ctl", "-D", self._data, "-o", self._opts, "-l", os.path.join(self.dir, "log"), "-w", "-t", "60",
                  "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``fast`` or ``immediate``); :meth:`start` starts it again."""
        self._run("pg_ctl", "-D", self._data, "-m", mode, "-w", "-t", "60", "stop")

    def close(self) -> None:
        """Stop the server if running and delete its directory."""
        if self._initialised:
            self._run("pg_ctl", "-D", self._data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ThrowawayServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

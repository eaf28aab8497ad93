"""A PostgreSQL server of a test's own: a cluster made with `initdb` in a temporary directory and run
on a port of its own, which the test may stop as a crash would (`pg_ctl stop -m immediate`: every
session dies at once, nothing is checkpointed) and start again. The shared server on 5432 is never
touched."""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    """A port nobody listens on, below the range the system hands out for outgoing connections, so
    that none takes it while the server is down and it can be started again on the same one."""
    low = 32768
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(100):
        port = random.randint(max(low - 12000, 1024), low - 1)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port for a private PostgreSQL")


@dataclass
class Cluster:
    bin: Path
    home: Path  # owned by the postgres user: the data, its socket and its log
    port: int
    as_postgres: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.home / "data"), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the server's own output goes to its log, not to a pipe held open
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self) -> None:
        """Start it and wait until it takes connections (after a crash, once it has recovered)."""
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self._ctl("-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def crash(self) -> None:
        """Stop it as a crash would: every backend killed, no shutdown checkpoint."""
        self._ctl("-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def running(self) -> bool:
        done = subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.home / "data"), "status"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        return done.returncode == 0


@contextmanager
def private_postgres() -> Iterator[Cluster]:
    """A fresh cluster, started; stopped and deleted on leaving. Skipped if PostgreSQL's server
    programs are not installed."""
    where = binaries()
    if where is None or not (where / "pg_ctl").exists():
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root, and no runuser to start PostgreSQL as the postgres user")
        as_postgres = [runuser, "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="touchline-pg-"))
    try:
        if as_postgres:
            shutil.chown(home, "postgres", "postgres")
        init = subprocess.run(
            [
                *as_postgres,
                str(where / "initdb"),
                "-D",
                str(home / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        assert init.returncode == 0, init.stderr[-2000:]
        with open(home / "data" / "postgresql.conf", "a") as conf:
            # fsync off only spares the disk: an immediate stop kills the server's processes, not
            # the machine, so what they wrote is in the system's cache and recovered from the WAL.
            conf.write("fsync = off\nmax_connections = 200\nshared_buffers = 32MB\n")
        cluster = Cluster(where, home, _free_port(), as_postgres)
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)

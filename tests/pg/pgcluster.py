#!/usr/bin/env python3
"""pgcluster.py - a throwaway PostgreSQL cluster for the PostgreSQL store's tests.

initdb into a temporary directory (trust authentication, superuser "segspool"), then
pg_ctl start on 127.0.0.1 and a free port, its socket in that directory, and one
database "segspool". Run as root (CI is root on a fresh Debian), the server runs as
nobody: PostgreSQL refuses to run as root.

As a module:
    from pgcluster import PgCluster
    c = PgCluster(); uri = c.start(); ...; c.psql("SELECT 1"); c.stop()
As a command (ctest's fixture, or by hand):
    pgcluster.py start DIR   starts a cluster for DIR, prints its URI (also in DIR/uri)
    pgcluster.py stop DIR    stops it and removes its files
    pgcluster.py uri DIR     prints the URI of DIR's running cluster
Exit code 77 when no PostgreSQL server is installed (a test can skip on it).
"""
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def find_bindir():
    """the newest /usr/lib/postgresql/N/bin with initdb, or None."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            try:
                found.append((int(d.split("/")[-2]), d))
            except ValueError:
                pass
    return max(found)[1] if found else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """one cluster: start() -> its URI, stop() removes it."""

    def __init__(self, bindir=None, dbname="segspool"):
        self.bindir = bindir or find_bindir()
        self.dbname = dbname
        self.dir = None
        self.port = None
        self.uri = None
        # PostgreSQL will not run as root: the server is nobody's then
        self.user = "nobody" if os.geteuid() == 0 else None

    def _run(self, args, as_server=True, check=True, **kw):
        cmd = list(args)
        if as_server and self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           **kw)
        if check and p.returncode != 0:
            raise RuntimeError("pgcluster: %s failed (exit %d): %s"
                               % (" ".join(args), p.returncode, p.stdout.strip()))
        return p

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def log(self):
        return os.path.join(self.dir, "server.log")

    def start(self):
        if not self.bindir:
            raise RuntimeError("pgcluster: no PostgreSQL server (initdb in "
                               "/usr/lib/postgresql/*/bin): apt-get install postgresql")
        # short: the server's socket path must fit in 107 bytes
        self.dir = tempfile.mkdtemp(prefix="segpg.", dir="/tmp")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        try:
            self._run([self._bin("initdb"), "-D", self.data, "-A", "trust", "-U", "segspool",
                       "--no-sync", "-E", "UTF8", "--locale=C"])
            for attempt in range(5):
                self.port = free_port()
                opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on "
                        "-c max_connections=200" % (self.port, self.dir))
                p = self._run([self._bin("pg_ctl"), "start", "-w", "-t", "60", "-D", self.data,
                               "-l", self.log, "-o", opts], check=False)
                if p.returncode == 0:
                    break
                # another process took the port between our look and the server's bind
                if attempt == 4 or "in use" not in self.server_log():
                    raise RuntimeError("pgcluster: pg_ctl start failed: %s\n%s"
                                       % (p.stdout.strip(), self.server_log()[-2000:]))
            self.uri = "postgresql://segspool@127.0.0.1:%d/%s" % (self.port, self.dbname)
            self._run([self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                       "-U", "segspool", self.dbname], as_server=False)
        except BaseException:
            self.stop()
            raise
        return self.uri

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def psql(self, sql, dbname=None):
        """runs sql with psql; its output (unaligned, tuples only), stripped."""
        p = self._run([self._bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                       "-h", "127.0.0.1", "-p", str(self.port), "-U", "segspool",
                       "-d", dbname or self.dbname, "-c", sql], as_server=False)
        return p.stdout.strip()

    def createdb(self, name):
        """a new empty database; its URI."""
        self._run([self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", "segspool", name], as_server=False)
        return "postgresql://segspool@127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        if not self.dir:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run([self._bin("pg_ctl"), "stop", "-m", "fast", "-w", "-D", self.data],
                      check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def state(self):
        return {"dir": self.dir, "port": self.port, "uri": self.uri, "bindir": self.bindir,
                "user": self.user, "dbname": self.dbname}

    @classmethod
    def from_state(cls, st):
        c = cls(bindir=st["bindir"], dbname=st["dbname"])
        c.dir, c.port, c.uri, c.user = st["dir"], st["port"], st["uri"], st["user"]
        return c

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def load(statedir):
    with open(os.path.join(statedir, "cluster.json")) as f:
        return PgCluster.from_state(json.load(f))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop", "uri"):
        print("usage: pgcluster.py start|stop|uri DIR", file=sys.stderr)
        return 2
    cmd, statedir = argv[1], argv[2]
    state = os.path.join(statedir, "cluster.json")
    if cmd == "start":
        if os.path.exists(state):
            # a cluster an interrupted run left behind: replace it
            load(statedir).stop()
            os.unlink(state)
        if not find_bindir():
            print("pgcluster: no PostgreSQL server installed (apt-get install postgresql)",
                  file=sys.stderr)
            return SKIP
        os.makedirs(statedir, exist_ok=True)
        c = PgCluster()
        uri = c.start()
        with open(state + ".tmp", "w") as f:
            json.dump(c.state(), f)
        os.rename(state + ".tmp", state)
        with open(os.path.join(statedir, "uri"), "w") as f:
            f.write(uri + "\n")
        print(uri)
        return 0
    if not os.path.exists(state):
        if cmd == "stop":
            return 0
        print("pgcluster: no cluster started for %s" % statedir, file=sys.stderr)
        return 1
    if cmd == "uri":
        print(load(statedir).uri)
        return 0
    load(statedir).stop()
    os.unlink(state)
    try:
        os.unlink(os.path.join(statedir, "uri"))
    except FileNotFoundError:
        pass
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)

"""harness - shared pieces of the end-to-end tests: the emulator, a spool, the daemon.

Every test starts the servers it needs on 127.0.0.1 with a free port and stops them.
Binaries come from the environment (set by ctest): SEGSPOOL_BIN, SEGSPOOL_EMU.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ.get("SEGSPOOL_BIN", "build/segspool")
EMU = os.environ.get("SEGSPOOL_EMU", "build/segspool-emu")
TOKEN = "tok-e2e-0123456789"


class Checks:
    """check - counts results; the closing line is the plain "N passed, N failed"."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.skipped = []

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {self.name}: {what}", file=sys.stderr, flush=True)
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, f"{what}: got {got!r}, want {want!r}")

    def skip(self, what, why):
        self.skipped.append(what)
        print(f"skipped: {what} ({why})", flush=True)

    def run_parts(self, parts, *args):
        """run_parts - each part(*args) in turn, timed; a part that raises counts as one
        failure and the others still run. Prints the total time."""
        t0 = time.monotonic()
        for part in parts:
            t = time.monotonic()
            try:
                part(*args)
            except Exception as e:
                import traceback
                traceback.print_exc()
                self.check(False, f"{part.__name__} raised {e!r}")
            print(f"{part.__name__}: {time.monotonic() - t:.1f} s", flush=True)
        print(f"total {time.monotonic() - t0:.1f} s", flush=True)

    def finish(self):
        line = f"{self.passed} passed, {self.failed} failed"
        if self.skipped:
            line += f", {len(self.skipped)} skipped"
        print(line, flush=True)
        sys.exit(1 if self.failed else 0)


def stop_process(proc, timeout=10):
    """stop_process - SIGTERM, then SIGKILL if it has not exited within timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(pred, timeout=30.0, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Emulator:
    """Emulator - segspool-emu on a free loopback port."""

    def __init__(self, *args, token=TOKEN, workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="segspool-emu-")
        if not workdir:  # ours: removed when the test exits (emu.log stays readable till then)
            atexit.register(shutil.rmtree, self.dir, True)
        port_file = os.path.join(self.dir, "emu.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log = open(os.path.join(self.dir, "emu.log"), "ab")
        cmd = [EMU, "--port", "0", "--port-file", port_file]
        if token:
            cmd += ["--token", token]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.port = int(wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                                 timeout=20, what="emulator port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def admin(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self.admin("/__emu/stats")

    def state(self):
        return self.admin("/__emu/state")

    def stop(self):
        stop_process(self.proc)
        self.log.close()


class Spool:
    """Spool - a temporary spool directory with a config file pointing at an API base."""

    def __init__(self, api_base, config=None, root=None):
        self.root = root or tempfile.mkdtemp(prefix="segspool-e2e-")
        self.spool = os.path.join(self.root, "spool")
        self.config_path = os.path.join(self.root, "segspool.json")
        cfg = {"spool": self.spool, "api_base": api_base, "rate": "off", "rescan_ms": 500,
               "grace_ms": 2000, "retry": {"max_attempts": 6, "initial_ms": 50, "max_ms": 400},
               "log_level": "info"}
        if config:
            cfg.update(config)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        os.makedirs(os.path.join(self.spool, "incoming"), exist_ok=True)
        self.env = dict(os.environ, SEGMENT_TOKEN=TOKEN, SEGSPOOL_NO_DEFAULT_CONFIG="1")
        self.daemon = None
        self.daemon_log = os.path.join(self.root, "daemon.log")

    def cli(self, *args, input=None, check=False, env=None):
        r = subprocess.run([BIN, "--config", self.config_path] + list(args), input=input,
                           capture_output=True, env=env or self.env, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"segspool {' '.join(args)} exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace')}")
        return r

    def drop(self, name, content):
        """drop - the writer's protocol: write in tmp/, rename into incoming/."""
        tmp = os.path.join(self.spool, "tmp")
        os.makedirs(tmp, exist_ok=True)
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        os.rename(path, os.path.join(self.spool, "incoming", name))

    def drop_jobs(self, name, jobs):
        if name.endswith(".jsonl"):
            self.drop(name, "".join(json.dumps(j) + "\n" for j in jobs))
        else:
            self.drop(name, json.dumps(jobs))

    def start(self, *args, env=None, ready=True):
        """start - the daemon in the background; with ready, returns once it has said
        "running on spool" (its signal handlers are in place by then)."""
        before = self.log_text().count("running on spool")
        log = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen([BIN, "--config", self.config_path, "run"] + list(args),
                                       stdout=log, stderr=log, env=env or self.env)
        log.close()
        if ready:
            wait_for(lambda: self.log_text().count("running on spool") > before or
                     self.daemon.poll() is not None, timeout=30, what="daemon ready")
        return self.daemon

    def run_until_idle(self, timeout=300, env=None):
        p = self.start("--until-idle", env=env, ready=False)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                return self.daemon.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                return self.daemon.wait()
        return self.daemon.returncode if self.daemon else None

    def jobs(self, state=None):
        args = ["list", "--json", "--limit", "1000000"]
        if state:
            args += ["--state", state]
        r = self.cli(*args, check=True)
        return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]

    def show(self, job_id):
        r = self.cli("show", str(job_id), "--json", check=True)
        return json.loads(r.stdout)

    def states(self):
        out = {}
        for j in self.jobs():
            out[j["state"]] = out.get(j["state"], 0) + 1
        return out

    def out_path(self, rel):
        return os.path.join(self.spool, "out", rel)

    def log_text(self):
        try:
            return open(self.daemon_log, errors="replace").read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def results_by_id(spool, rel):
    """results_by_id - the lines of a results file (out/results/NAME.results.jsonl, issue
    13) by job id; {} when there is none (yet)."""
    try:
        with open(spool.out_path(rel)) as f:
            return {l["id"]: l for l in map(json.loads, f.read().splitlines())}
    except (FileNotFoundError, TypeError):
        return {}


def result_kept(spool, show):
    """result_kept - a succeeded job's result is where the rule puts it: its output file
    (named, a single-job file's, a paginated export's), or else its line in its file's
    results file with the stored result. None when so, else what is wrong."""
    out = show.get("output")
    if out:
        return None if os.path.isfile(spool.out_path(out)) else f"no output file {out}"
    rel = (show.get("file") or {}).get("results")
    line = results_by_id(spool, rel).get(show["id"]) if rel else None
    if not line:
        return f"neither an output file nor a line in a results file ({rel})"
    if line["state"] != "succeeded" or line.get("result") != show.get("result"):
        return f"its results line {line} differs from the store's"
    return None


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


# --- helpers for the retry/rate-limit/pagination/fan-out/control tests ---------------

def iso_ms(text):
    """iso_ms - "2026-11-26T09:27:53.653Z" (as show --json prints times) in epoch ms."""
    import calendar
    if text is None:
        return None
    t = text.rstrip("Z")
    frac = 0
    if "." in t:
        t, f = t.split(".", 1)
        frac = int((f + "000")[:3])
    secs = calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + frac


def iso_from_ms(ms):
    """iso_from_ms - epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (what not_before accepts)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def rewrite_config(spool, changes):
    """rewrite_config - merges changes into the spool's config file (atomically), e.g.
    before a SIGHUP or between runs."""
    with open(spool.config_path) as f:
        cfg = json.load(f)
    cfg.update(changes)
    tmp = spool.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, spool.config_path)
    return cfg


def emu_request(emu, method, path, body=None, token=TOKEN):
    """emu_request - one API request straight to the emulator: (status, headers, body
    text). For checking what the emulator itself sends."""
    import urllib.error
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(emu.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def wait_job_state(spool, job_id, states, timeout=30.0):
    """wait_job_state - polls show --json until the job is in one of states; the show."""
    states = (states,) if isinstance(states, str) else tuple(states)
    return wait_for(lambda: (lambda s: s if s["state"] in states else None)(spool.show(job_id)),
                    timeout=timeout, step=0.05, what=f"job {job_id} in {states}")


# --- helpers for the resource-fault and security tests ----------------------------------

def mount_tmpfs(size, prefix="segspool-tmpfs-"):
    """mount_tmpfs - a fresh tmpfs of size (e.g. "64k") on a new temporary directory;
    returns the directory. Raises OSError saying why when it cannot (not root, no
    CAP_SYS_ADMIN, no mount binary). Undo with umount_tmpfs."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                            path], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        os.rmdir(path)
        raise OSError(f"cannot run mount: {e}")
    if r.returncode != 0:
        os.rmdir(path)
        raise OSError(f"mount -t tmpfs failed: {r.stderr.decode(errors='replace').strip()}")
    return path


def remount_tmpfs(path, options):
    """remount_tmpfs - mount -o remount,OPTIONS (e.g. "ro", "rw,size=16m")."""
    subprocess.run(["mount", "-o", "remount," + options, path], check=True,
                   capture_output=True, timeout=30)


def umount_tmpfs(path):
    """umount_tmpfs - unmounts (lazily, if busy) and removes the directory; never raises."""
    if path and os.path.ismount(path):
        if subprocess.run(["umount", path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


def fill_fs(directory, name=".filler"):
    """fill_fs - writes directory/name until the filesystem is full (ENOSPC); the path."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return path


def demote(uid, gid):
    """demote - a preexec_fn that runs the child as uid:gid (no supplementary groups)."""
    def fn():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return fn


def emu_cleanup(emu):
    """emu_cleanup - stops the emulator and removes its work directory (Emulator.stop
    keeps it, for tests that read emu.log afterwards)."""
    emu.stop()
    shutil.rmtree(emu.dir, ignore_errors=True)


# --- the scripted (hostile) server of test_hostile*.py ---------------------------------

SCRIPTED = os.environ.get("SEGSPOOL_SCRIPTED", "build/tests/e2e/scripted_server")


class ScriptedServer:
    """ScriptedServer - tests/e2e/scripted_server.c on a free loopback port, answering
    from rules (a list, see the C file's comment: method, path prefix, response or
    sequence); requests() reads back what it received, one dict per request: t, method,
    uri (as sent), headers ([name, value] pairs), body_len, rule, status."""

    def __init__(self, rules, workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="segspool-scripted-")
        if not workdir:
            atexit.register(shutil.rmtree, self.dir, True)
        port_file = os.path.join(self.dir, "server.port")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        script = os.path.join(self.dir, "script.json")
        with open(script, "w") as f:
            json.dump(rules, f)
        self.out = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([SCRIPTED, "--script", script, "--log", self.log_path,
                                      "--port", "0", "--port-file", port_file],
                                     stdout=self.out, stderr=self.out)
        self.port = int(wait_for(lambda: (self.proc.poll() is None or self._died()) and
                                 os.path.exists(port_file) and open(port_file).read().strip(),
                                 timeout=60, what="scripted server port file"))
        self.url = f"http://127.0.0.1:{self.port}"

    def _died(self):
        raise RuntimeError(f"scripted server exited {self.proc.returncode}: "
                           f"{open(os.path.join(self.dir, 'server.out')).read()[-500:]}")

    def requests(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    @staticmethod
    def header(req, name):
        """header - a request's header value by name (any case), or None."""
        for n, v in req["headers"]:
            if n.lower() == name.lower():
                return v
        return None

    def stop(self):
        stop_process(self.proc)
        self.out.close()


def job_text(show):
    """job_text - what a job says about itself (show --json's error, its attempts' errors
    and its transitions' reasons), as one string to search for a reason."""
    parts = [json.dumps(show.get("error"))]
    parts += [str(a.get("error")) for a in show.get("attempts") or [] if a.get("error")]
    parts += [str(t.get("reason")) for t in show.get("transitions") or [] if t.get("reason")]
    return " | ".join(parts)


class RssWatch:
    """RssWatch - polls /proc/PID/status every 20 ms in a thread; peak() is the largest
    VmHWM (or VmRSS) seen, in bytes."""

    def __init__(self, pid):
        import threading
        self.pid, self.max, self.done = pid, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                for line in open(f"/proc/{self.pid}/status"):
                    if line.startswith(("VmHWM:", "VmRSS:")):
                        self.max = max(self.max, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                return
            time.sleep(0.02)

    def peak(self):
        self.done = True
        self.thread.join(timeout=5)
        return self.max


# --- the PostgreSQL store's tests (issue 15): a throwaway cluster ------------------------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
import pgcluster  # noqa: E402  (tests/pg/pgcluster.py: initdb + pg_ctl, as nobody for root)


class PgCluster:
    """PgCluster - the PostgreSQL cluster of a test: the one ctest's fixture started
    (SEGSPOOL_TEST_PG_FILE, its URI in a file) or SEGSPOOL_TEST_PG names, else one of its
    own (tests/pg/pgcluster.py: 127.0.0.1, a free port, trust authentication for the
    superuser "segspool"; stopped at exit). Each test asks for databases of its own
    (create_db). Its own cluster gets settings (synchronous_commit off for the e2e
    tests, which do not test durability across a power cut; fsync is on pgcluster.py's
    command line, which ALTER SYSTEM cannot override); a shared one is left as it is."""

    def __init__(self, settings=None):
        self.own = None
        self.ndb = 0
        self.psql = shutil.which("psql") or os.path.join(pgcluster.find_bindir() or "", "psql")
        external = os.environ.get("SEGSPOOL_TEST_PG")
        uri_file = os.environ.get("SEGSPOOL_TEST_PG_FILE")
        if not external and uri_file and os.path.exists(uri_file):
            external = open(uri_file).read().strip()
        self.bindir = pgcluster.find_bindir()
        if external:
            self.admin_uri = external
        else:
            if not self.bindir:
                raise FileNotFoundError("no PostgreSQL server (apt-get install postgresql)")
            self.own = pgcluster.PgCluster()
            self.admin_uri = self.own.start()
            atexit.register(self.stop)
            if settings:
                for k, v in settings.items():
                    self.sql(f"ALTER SYSTEM SET {k} = '{v}'")
                self.sql("SELECT pg_reload_conf()")
                k, v = next(iter(settings.items()))
                wait_for(lambda: self.value(f"SHOW {k}") == v, timeout=10,
                         what=f"the cluster's {k} = {v}")
        import urllib.parse
        self.parts = urllib.parse.urlsplit(self.admin_uri)
        self.port = self.parts.port

    def uri(self, db, password=None, **params):
        """uri - the cluster's URI for database db (with a password: trust ignores it, for
        tests that check it never shows), and ?k=v parameters."""
        netloc = self.parts.netloc
        if password:
            user, host = netloc.rsplit("@", 1)
            netloc = f"{user.split(':', 1)[0]}:{password}@{host}"
        base = self.parts._replace(netloc=netloc, path="/" + db, query="").geturl()
        if params:
            base += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        return base

    def create_db(self, prefix="e2e"):
        """create_db - a fresh, empty database; its URI."""
        self.ndb += 1
        name = f"{prefix}_{os.getpid()}_{self.ndb}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def sql(self, text, uri=None, timeout=60):
        """sql - runs text through psql (ON_ERROR_STOP); the rows, each a list of strings
        (NULL as None). Raises RuntimeError on an error."""
        r = subprocess.run([self.psql, "-X", "-q", "-A", "-t", "-F", "\t", "-P", "null=\\N",
                            "-v", "ON_ERROR_STOP=1", "-d", uri or self.admin_uri, "-c", text],
                           capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.decode(errors='replace').strip()}")
        rows = []
        for line in r.stdout.decode().splitlines():
            if line == "":
                continue
            rows.append([None if v == "\\N" else v for v in line.split("\t")])
        return rows

    def value(self, text, uri=None):
        """value - the first column of the first row, or None."""
        rows = self.sql(text, uri)
        return rows[0][0] if rows and rows[0] else None

    def stop(self):
        if self.own:
            self.own.stop()
            self.own = None


def pg_cluster_or_skip(checks, settings=None):
    """pg_cluster_or_skip - a PgCluster, or exit 77 (skipped) saying why when PostgreSQL is
    not installed or this build of segspool has no PostgreSQL store."""
    try:
        cluster = PgCluster(settings if settings is not None else
                            {"synchronous_commit": "off"})
    except FileNotFoundError as e:
        print(f"skipped: {checks.name}: {e}", flush=True)
        sys.exit(77)
    probe = cluster.create_db("probe")
    r = subprocess.run([BIN, "--db", probe, "list"], capture_output=True, timeout=60,
                       env=dict(os.environ, SEGSPOOL_NO_DEFAULT_CONFIG="1"))
    if b"has no PostgreSQL store" in r.stderr:
        print(f"skipped: {checks.name}: this build has no PostgreSQL store", flush=True)
        sys.exit(77)
    return cluster


def sanitized():
    """sanitized - whether segspool was built with ASan/UBSan (SEGSPOOL_SANITIZE), which
    makes it several times slower: timing targets are printed then, not asserted."""
    with open(BIN, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__ubsan_handle" in data


def tcp_ports_of(pid, remote_port):
    """tcp_ports_of - the local ports of process pid's TCP connections to remote_port on
    loopback (from /proc): how a test finds a daemon's database backends
    (pg_stat_activity.client_port) whatever application_name it sets."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] in inodes and int(f[2].rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports

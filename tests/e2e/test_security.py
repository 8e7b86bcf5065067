"""e2e security - secrets, paths, transport and privileges:

- a random canary token (SEGMENT_TOKEN=canary-...) used for a full run with creates,
  4xx failures, 401s from a second workspace's token file, injected 503s and lost
  answers (retries), rejected files, at log level debug: no file under the spool (database,
  WAL, outputs, archive, rejected/*.error.json), no daemon log, no CLI output holds either
  token, nor does the running daemon's /proc/PID/cmdline;
- token files: 0644 and 0640 refused with a message naming chmod 600, a symlinked token
  file refused, 0600 accepted;
- outputs: a path through a symlink to a directory outside the output directory is
  rejected at intake, a symlink planted after intake fails the job, a symlink as the final
  name is replaced (its target untouched), "..", absolute paths rejected; nothing is
  written outside;
- plain http refused except to loopback (the daemon refuses to start, saying why);
  http://127.0.0.1:P and http://localhost:P work;
- TLS to a loopback server with a self-signed certificate (openssl; python ssl): the job
  fails with a TLS error in its attempts and the server never sees the token; with the
  certificate as http.ca_file it succeeds; a name the certificate does not cover still
  fails; a redirect to plain http is not followed;
- the daemon as the unprivileged user nobody, on a spool owned by nobody.

Needs root for the nobody part (skipped otherwise) and the openssl binary for the TLS part
(skipped otherwise). Runtime: about 15 s."""
import http.server
import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time

from harness import (BIN, Checks, Emulator, Spool, demote, listdir, rewrite_config, wait_for)

c = Checks("security")
JS = "IqDTy1TpoU"
TERMINAL = {"succeeded", "failed", "dead", "cancelled"}


def files_holding(root, needles):
    """every file under root (symlinks not followed) whose bytes contain a needle."""
    hits = []
    for dirpath, dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            for n in needles:
                if n in data:
                    hits.append(p)
                    break
    return hits


def all_terminal(s, env=None):
    r = s.cli("list", "--json", "--limit", "1000000", env=env)
    jobs = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    return jobs if jobs and all(j["state"] in TERMINAL for j in jobs) else None


# --- the canary token ---------------------------------------------------------------------

def canary_run():
    canary = "canary-" + secrets.token_hex(16)
    canary2 = "canary2-" + secrets.token_hex(16)
    needles = [canary.encode(), canary[7:23].encode(), canary2.encode(), canary2[8:24].encode()]
    emu = Emulator("--fail-rate", "0.2", "--reset-rate", "0.05", "--seed", "11", token=canary)
    s = Spool(emu.url, config={"log_level": "debug", "workspaces": {
        "default": {}, "other": {"token_file": "other.token"}}})
    try:
        tf = os.path.join(s.root, "other.token")
        fd = os.open(tf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (canary2 + "\n").encode())
        os.close(fd)
        env = dict(s.env, SEGMENT_TOKEN=canary)
        # the search finds a planted canary (so "none found" means something)
        probe = os.path.join(s.spool, "out", "probe")
        os.makedirs(os.path.dirname(probe), exist_ok=True)
        open(probe, "wb").write(b"x" + canary.encode() + b"y")
        c.eq([h for h in files_holding(s.root, needles) if h != tf], [probe],
             "the search finds a planted canary")
        os.unlink(probe)

        jobs = [{"op": "createSource", "key": f"canary-{i}", "params": {
            "slug": f"canary-src-{i % 8}", "enabled": True, "metadataId": JS}}
            for i in range(12)]  # slugs repeat: 409s
        jobs += [{"op": "getSource", "params": {"sourceId": "src_missing"}},  # 404
                 {"op": "listWarehouses", "paginate": "all"},
                 {"op": "getSourcesCatalog", "paginate": {"max_pages": 3, "count": 20}},
                 {"op": "getWarehouse", "workspace": "other",
                  "params": {"warehouseId": "wh_1"}},  # 401
                 {"op": "raw", "params": {"method": "GET", "path": "/nowhere"}}]  # 404
        s.drop_jobs("jobs.json", jobs)
        s.drop("bad.json", b'{"op": "createSource", "params": {"slug": 1}}')
        s.drop("worse.json", b'{"op": ')
        s.start(env=env)
        pid = s.daemon.pid
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        c.check(cmdline and not any(n in cmdline for n in needles),
                "the running daemon's /proc/PID/cmdline holds no token")
        done = wait_for(lambda: all_terminal(s), timeout=60, what="every job terminal")
        states = {}
        for j in done:
            states[j["state"]] = states.get(j["state"], 0) + 1
        st = emu.stats()
        print(f"canary run: {states}, emulator by_status {st['by_status']}, faults "
              f"{ {k: v for k, v in st['faults'].items() if v} }", flush=True)
        c.check(states.get("succeeded", 0) > 0 and states.get("failed", 0) > 0,
                f"the run had successes and failures: {states}")
        c.check(st["by_status"].get("401", 0) > 0, "the second workspace's token met 401")
        c.check(st["by_status"].get("409", 0) > 0 and st["by_status"].get("404", 0) > 0,
                "the run met 409 and 404")
        c.check(st["faults"].get("fail", 0) > 0, "the run met injected 503s (retries)")
        c.eq(len([n for n in listdir(os.path.join(s.spool, "rejected"))
                  if n.endswith(".error.json")]), 2, "two files rejected with reasons")
        # CLI outputs
        outs = [s.cli("list", "--json", env=env).stdout, s.cli("stats", "--json", env=env).stdout,
                s.cli("list", env=env).stdout]
        for j in done:
            outs.append(s.cli("show", str(j["id"]), "--json", env=env).stdout)
            outs.append(s.cli("show", str(j["id"]), env=env).stdout)
        c.check(not any(n in o for o in outs for n in needles),
                "no CLI output (list, show, stats) holds a token")
        c.check(any(b"\"attempts\"" in o for o in outs), "the show outputs were read")
        hits = files_holding(s.root, needles)
        c.check(os.path.exists(os.path.join(s.spool, "segspool.db-wal")),
                "the WAL is there while the daemon runs (and was searched)")
        c.eq([h for h in hits if not h.endswith("other.token")], [],
             "while running: no file under the spool, nor the daemon log, holds a token")
        c.eq(s.stop(), 0, "clean stop")
        hits = files_holding(s.root, needles)
        c.eq([h for h in hits if not h.endswith("other.token")], [],
             "after the stop: no file under the spool, nor the daemon log, holds a token")
        c.check(os.path.getsize(s.daemon_log) > 0 and
                "debug" in s.log_text(), "the searched daemon log is the debug-level one")
    finally:
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)


# --- token files -------------------------------------------------------------------------

def token_files():
    """a workspace whose token file is refused (readable by others, a symlink, two lines)
    holds its jobs waiting, burning no attempts and sending nothing, with the reason in the
    job and the log; a run that finds a good token file runs them all."""
    emu = Emulator()
    s = Spool(emu.url, config={"workspaces": {"default": {"token_file": "default.token"}}})
    try:
        env = dict(s.env)
        env.pop("SEGMENT_TOKEN", None)
        tf = os.path.join(s.root, "default.token")
        real = os.path.join(s.root, "real.token")
        for path in (tf, real):
            with open(path, "w") as f:
                f.write(emu_token() + "\n")
        n = 0
        cases = ((0o644, "link-no", "chmod 600"), (0o640, "link-no", "chmod 600"),
                 (0o600, "link", "symbolic link"), (0o600, "two-lines", "more than one line"))
        for mode, kind, why in cases:
            if os.path.islink(tf) or os.path.exists(tf):
                os.unlink(tf)
            if kind == "link":
                os.chmod(real, 0o600)
                os.symlink(real, tf)
            else:
                with open(tf, "w") as f:
                    f.write(emu_token() + ("\nsecond line\n" if kind == "two-lines" else "\n"))
                os.chmod(tf, mode)
            what = {"link": "a symlinked token file",
                    "two-lines": "a token file with two lines"}.get(kind, f"a {mode:04o} token file")
            s.drop_jobs(f"t{n}.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
            n += 1
            before = s.log_text()
            t0 = time.monotonic()
            rc = s.run_until_idle(timeout=60, env=env)
            c.eq(rc, 0, f"{what}: --until-idle ends although the job cannot run yet")
            c.check(time.monotonic() - t0 < 20, f"{what}: and it ends promptly")
            sh = json.loads(s.cli("show", str(n), "--json", env=env, check=True).stdout)
            log = s.log_text()[len(before):]
            c.eq(sh["state"], "waiting", f"{what}: the job waits for a usable token")
            c.eq(sh.get("attempts_counted", 0), 0, f"{what}: no attempt is burnt")
            reason = sh["transitions"][-1]["reason"] if sh.get("transitions") else ""
            c.check(why in reason and "SIGHUP" in reason,
                    f"{what}: the job's reason says why and what fixes it: {reason}")
            c.check(why in log, f"{what}: the log says why: {log[-400:]}")
            c.eq(emu.stats()["requests"], 0, f"{what}: nothing was sent")
        os.unlink(tf)
        with open(tf, "w") as f:
            f.write(emu_token() + "\n")
        os.chmod(tf, 0o600)
        s.drop_jobs(f"t{n}.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
        n += 1
        rc = s.run_until_idle(timeout=60, env=env)
        c.eq(rc, 0, "a 0600 token file: the run finishes")
        for i in range(1, n + 1):
            sh = json.loads(s.cli("show", str(i), "--json", env=env, check=True).stdout)
            c.eq(sh["state"], "succeeded", f"job {i} ran once a good token file was in place")
        c.eq(emu.stats()["requests"], n, "one request per job, all sent with the good token")
    finally:
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)


def emu_token():
    import harness
    return harness.TOKEN


# --- outputs that would leave the output directory ------------------------------------------

def output_escapes():
    emu = Emulator()
    s = Spool(emu.url)
    elsewhere = tempfile.mkdtemp(prefix="segspool-elsewhere-")
    try:
        out = os.path.join(s.spool, "out")
        os.makedirs(out, exist_ok=True)
        os.symlink(elsewhere, os.path.join(out, "link"))
        target = os.path.join(elsewhere, "target.json")
        open(target, "w").write("ORIGINAL")
        os.symlink(target, os.path.join(out, "final.json"))
        wh = {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}
        s.drop_jobs("via-link.json", [dict(wh, output="link/x.json")])
        s.drop_jobs("dotdot.json", [dict(wh, output="../x.json")])
        s.drop_jobs("absolute.json", [dict(wh, output=os.path.join(elsewhere, "abs.json"))])
        s.drop_jobs("final.json", [dict(wh, output="final.json")])
        not_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
        s.drop_jobs("later.json", [dict(wh, output="later/y.json", not_before=not_before)])
        s.start()
        wait_for(lambda: not listdir(os.path.join(s.spool, "incoming")), timeout=20,
                 what="intake")
        os.symlink(elsewhere, os.path.join(out, "later"))  # planted after intake
        jobs = wait_for(lambda: all_terminal(s), timeout=30, what="jobs terminal")
        c.eq(s.stop(), 0, "clean stop")
        rejected = listdir(os.path.join(s.spool, "rejected"))
        for name in ("via-link.json", "dotdot.json", "absolute.json"):
            c.check(name in rejected, f"{name}: rejected at intake")
        try:
            why = open(os.path.join(s.spool, "rejected", "via-link.json.error.json")).read()
        except OSError:
            why = ""
        c.check("symbolic link" in why, f"the reason names the symbolic link: {why[:300]}")
        by_file = {}
        for j in jobs:
            sh = s.show(j["id"])
            by_file[sh["source_file"]] = sh
        later = by_file.get("later.json")
        c.check(later and later["state"] == "failed" and
                "symbolic link" in json.dumps(later["error"]),
                f"a symlink planted after intake fails the job: "
                f"{later and (later['state'], later['error'])}")
        final = by_file.get("final.json")
        c.check(final is not None and final["state"] in ("succeeded", "failed"),
                "the job whose output name is a symlink ended")
        c.eq(open(target).read(), "ORIGINAL", "the symlink's target is untouched")
        if final and final["state"] == "succeeded":
            p = os.path.join(out, "final.json")
            c.check(not os.path.islink(p) and json.load(open(p)).get("warehouse"),
                    "the output replaced the symlink itself with a regular file")
        c.eq(listdir(elsewhere), ["target.json"], "nothing was written outside out/")
    finally:
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


# --- plain http only to loopback --------------------------------------------------------------

def plain_http():
    emu = Emulator()
    s = Spool(emu.url)
    try:
        for url in ("http://example.com", f"http://localhost.example.com:{emu.port}",
                    f"http://127.0.0.1.nip.io:{emu.port}", "http://user@example.com/",
                    f"ftp://127.0.0.1:{emu.port}/"):
            rewrite_config(s, {"api_base": url})
            before = s.log_text()
            p = subprocess.run([BIN, "--config", s.config_path, "run", "--until-idle"],
                               capture_output=True, env=s.env, timeout=30)
            msg = (p.stdout + p.stderr).decode(errors="replace") + s.log_text()[len(before):]
            c.eq(p.returncode, 1, f"api_base {url}: the daemon refuses to start")
            print(f"api_base {url}: {msg.strip()}", flush=True)
            c.check("https" in msg and ("loopback" in msg or url.startswith("ftp:")),
                    f"api_base {url}: the message says https (or loopback) only: {msg.strip()!r}")
        n = 0
        for url in (f"http://127.0.0.1:{emu.port}", f"http://localhost:{emu.port}"):
            rewrite_config(s, {"api_base": url})
            s.drop_jobs(f"ok{n}.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
            n += 1
            c.eq(s.run_until_idle(timeout=60), 0, f"api_base {url}: accepted")
            c.eq(s.show(n)["state"], "succeeded", f"api_base {url}: the job succeeds")
    finally:
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)


# --- TLS with a self-signed certificate ----------------------------------------------------

class Recorder(http.server.BaseHTTPRequestHandler):
    seen = None  # set per server class
    redirect_to = None

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/redirect") and self.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.redirect_to + "/warehouses/wh_1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"data": {"warehouse": {"id": "wh_1", "enabled": True}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.segment.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def serve(handler_attrs, ctx=None):
    handler = type("H", (Recorder,), dict(handler_attrs, seen=[]))
    srv = QuietServer(("127.0.0.1", 0), handler)
    if ctx:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, handler.seen


def tls():
    if not shutil.which("openssl"):
        c.skip("TLS with a self-signed certificate", "no openssl binary")
        return
    d = tempfile.mkdtemp(prefix="segspool-tls-")
    servers = []
    s = None
    try:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost"], capture_output=True, timeout=60)
        if r.returncode != 0:
            c.skip("TLS with a self-signed certificate",
                   f"openssl req failed: {r.stderr.decode(errors='replace')[:200]}")
            return
        plain, plain_seen = serve({})
        servers.append(plain)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv, seen = serve({"redirect_to": f"http://127.0.0.1:{plain.server_address[1]}"}, ctx)
        servers.append(srv)
        port = srv.server_address[1]
        s = Spool(f"https://localhost:{port}",
                  config={"retry": {"max_attempts": 2, "initial_ms": 20, "max_ms": 50}})
        wh = {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}
        s.drop_jobs("a.json", [wh])
        c.eq(s.run_until_idle(timeout=60), 0, "self-signed: the run finishes")
        sh = s.show(1)
        errs = " ".join(str(a["error"]) for a in sh["attempts"])
        c.check(sh["state"] in ("failed", "dead"), f"self-signed: the job fails ({sh['state']})")
        c.check(sh["attempts"] and any(w in errs for w in ("certificate", "SSL", "TLS")),
                f"self-signed: its attempts record a TLS error: {errs[:300]!r}")
        c.eq(seen, [], "self-signed: the server never received a request (nor the token)")
        # the certificate as ca_file
        rewrite_config(s, {"http": {"ca_file": cert}})
        s.drop_jobs("b.json", [wh])
        c.eq(s.run_until_idle(timeout=60), 0, "with ca_file: the run finishes")
        sh = s.show(2)
        c.eq(sh["state"], "succeeded", "with ca_file: the job succeeds")
        c.eq(seen[-1:], [("/warehouses/wh_1", "Bearer " + emu_token())],
             "with ca_file: the server got the request with the token")
        # a redirect to plain http is not followed
        s.drop_jobs("c.json", [{"op": "raw", "params": {"method": "GET", "path": "/redirect"}}])
        c.eq(s.run_until_idle(timeout=60), 0, "redirect: the run finishes")
        c.check(s.show(3)["state"] in ("failed", "dead"),
                f"redirect: a 307 is not taken as success ({s.show(3)['state']})")
        c.eq(plain_seen, [], "redirect: the plain-http listener got nothing (not followed)")
        # a name the certificate does not cover
        rewrite_config(s, {"api_base": f"https://127.0.0.1:{port}"})
        n_seen = len(seen)
        s.drop_jobs("d.json", [wh])
        c.eq(s.run_until_idle(timeout=60), 0, "wrong name: the run finishes")
        sh = s.show(4)
        errs = " ".join(str(a["error"]) for a in sh["attempts"])
        c.check(sh["state"] in ("failed", "dead") and
                any(w in errs for w in ("certificate", "SSL", "TLS", "host")),
                f"wrong name: the job fails with a TLS error ({sh['state']}: {errs[:200]!r})")
        c.eq(len(seen), n_seen, "wrong name: the server never received the request")
    finally:
        if s:
            s.cleanup()
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        shutil.rmtree(d, ignore_errors=True)


# --- as nobody ----------------------------------------------------------------------------

def as_nobody():
    if os.geteuid() != 0:
        c.skip("the daemon as nobody", "not root")
        return
    nobody = pwd.getpwnam("nobody")
    emu = Emulator()
    s = Spool(emu.url)
    try:
        s.drop_jobs("a.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}},
                               {"op": "createSource", "params": {
                                   "slug": "as-nobody", "enabled": True, "metadataId": JS}}])
        for dirpath, dirs, files in os.walk(s.root):
            os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
            for fn in files:
                os.lchown(os.path.join(dirpath, fn), nobody.pw_uid, nobody.pw_gid)
        with open(s.daemon_log, "ab") as log:
            p = subprocess.run([BIN, "--config", s.config_path, "run", "--until-idle"],
                               stdout=log, stderr=log, env=s.env, timeout=60,
                               preexec_fn=demote(nobody.pw_uid, nobody.pw_gid))
        c.eq(p.returncode, 0, f"as nobody: the run finishes: {s.log_text()[-300:]!r}")
        c.eq({j["state"] for j in s.jobs()}, {"succeeded"}, "as nobody: every job succeeded")
        owners = {os.stat(os.path.join(s.spool, n)).st_uid for n in
                  ("segspool.db", "archive/a.json")}
        for n in listdir(s.out_path("")):
            owners.add(os.stat(s.out_path(n)).st_uid)
        c.eq(owners, {nobody.pw_uid}, "as nobody: the store, archive and outputs are nobody's")
    finally:
        s.cleanup()
        emu.stop()
        shutil.rmtree(emu.dir, ignore_errors=True)


c.run_parts((canary_run, token_files, output_escapes, plain_http, tls, as_nobody))
c.finish()

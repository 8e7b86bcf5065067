"""e2e responses - what the daemon makes of odd answers from a loopback server:

- a server that echoes the Authorization header in 401, 400 and 503 JSON error bodies and in
  a 200 body: the job's error, its stored result, its output file, its attempts, the daemon
  log and `segspool show` hold "[redacted]" and never the token;
- a 301: the job fails saying redirects are not followed, and where it pointed;
- a 2xx nested deeper than the JSON depth limit, with an output file (parsed) and without
  (checked as text): the attempts say the body nests too deep, not that it is not JSON;
  a 2xx that is plainly not JSON still says so;
- a body past http.max_response_bytes (announced by Content-Length, or streamed without
  one): the attempt says it was larger than the limit; for a mutation the outcome is
  unknown (the request went out).

Runtime: a few seconds."""
import http.server
import json
import os
import threading

from harness import TOKEN, Checks, Spool

c = Checks("responses")
LIMIT = 65536
RETRY = {"max_attempts": 1, "initial_ms": 20, "max_ms": 40}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, headers=(), chunked=False):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 16384):
                part = body[i:i + 16384]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?")[0]
        auth = self.headers.get("Authorization")
        if path.startswith("/echo/"):
            status = int(path.split("/")[2])
            doc = {"data": {"seen": auth}} if status < 300 else \
                {"errors": [{"type": "echo", "message": f"bad header {auth}"}]}
            return self.send(status, json.dumps(doc).encode())
        if path == "/redirect":
            return self.send(301, b"moved", [("Location", "https://example.com/new/place")])
        if path == "/deep":
            body = b'{"data":' + b"[" * 1200 + b"]" * 1200 + b"}"
            return self.send(200, body)
        if path == "/notjson":
            return self.send(200, b"<html>hello</html>")
        if path == "/huge":
            return self.send(200, b'{"data":"' + b"x" * (LIMIT * 4) + b'"}')
        if path == "/huge-chunked":
            return self.send(200, b'{"data":"' + b"x" * (LIMIT * 4) + b'"}', chunked=True)
        return self.send(404, b'{"errors":[{"type":"not-found"}]}')

    do_GET = route
    do_POST = route


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def raw(path, method="GET", **kw):
    return dict({"op": "raw", "params": {"method": method, "path": path}, "retry": RETRY}, **kw)


def all_text(s):
    """all_text - every file under the spool and the daemon log, as one string."""
    parts = [s.log_text()]
    for root, _, files in os.walk(s.root):
        for f in files:
            try:
                parts.append(open(os.path.join(root, f), "rb").read().decode("latin-1"))
            except OSError:
                pass
    return "\n".join(parts)


srv = QuietServer(("127.0.0.1", 0), Handler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
s = Spool(f"http://127.0.0.1:{srv.server_address[1]}",
          config={"http": {"max_response_bytes": LIMIT}, "log_level": "debug"})
try:
    jobs = [raw("/echo/401"), raw("/echo/400"), raw("/echo/503"), raw("/echo/200"),
            raw("/echo/200", output=False), raw("/redirect"), raw("/deep"),
            raw("/deep", output=False), raw("/notjson"), raw("/huge"), raw("/huge-chunked"),
            raw("/huge-chunked", method="POST", on_unknown="fail")]
    s.drop_jobs("a.json", jobs)
    c.eq(s.run_until_idle(timeout=60), 0, "the run finishes")
    shows = {}
    for j in s.jobs():
        shows[j["id"]] = s.show(j["id"])
    by = [shows[i] for i in sorted(shows)]
    c.eq(len(by), len(jobs), "every job was ingested")
    text = {i: json.dumps(sh) for i, sh in enumerate(by)}

    def errors(i):
        return [a.get("error") for a in by[i]["attempts"] if isinstance(a, dict)]

    # redaction
    for i, what in enumerate(["401", "400", "503"]):
        c.check(by[i]["state"] in ("failed", "dead"), f"echo {what}: the job fails")
        c.check("Bearer [redacted]" in text[i] and TOKEN not in text[i],
                f"echo {what}: the error has [redacted], not the token: {text[i][:600]}")
    for i in (3, 4):
        c.eq(by[i]["state"], "succeeded", f"echo 200 (job {i}): the job succeeds")
        c.check("Bearer [redacted]" in text[i] and TOKEN not in text[i],
                f"echo 200 (job {i}): the result has [redacted], not the token: {text[i][:600]}")
    out = s.cli("show", str(sorted(shows)[0])).stdout.decode(errors="replace")
    c.check(TOKEN not in out and "[redacted]" in out, f"show (text): no token: {out[:400]}")
    c.check(TOKEN not in all_text(s), "no file under the spool nor the log holds the token")

    # a redirect
    c.check(by[5]["state"] in ("failed", "dead"), "redirect: the job fails")
    c.check("HTTP 301: redirects are not followed (Location: https://example.com/new/place)"
            in text[5], f"redirect: the error says so and where: {text[5][:600]}")
    c.check("not JSON" not in text[5], "redirect: not called a body that is not JSON")

    # nesting past the limit, parsed (output file) and checked as text (output: false)
    for i in (6, 7):
        c.eq(errors(i), ["response body nests deeper than 1000 levels (the limit)"],
             f"deep (job {i}): the attempt says it nests too deep")
    c.eq(errors(8), ["response body is not JSON"], "not JSON: still said so")

    # bodies past http.max_response_bytes
    for i in (9, 10):
        e = " ".join(str(x) for x in errors(i))
        c.check(f"larger than the limit of {LIMIT} bytes (http.max_response_bytes)" in e,
                f"huge (job {i}): the attempt names the limit: {e}")
    c.eq([a["outcome"] for a in by[11]["attempts"] if isinstance(a, dict)], ["unknown"],
         "huge POST: the outcome is unknown (the request went out)")
    c.eq(by[11]["state"], "failed", "huge POST: on_unknown=fail fails it")
finally:
    s.cleanup()
    srv.shutdown()
c.finish()

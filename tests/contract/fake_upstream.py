#!/usr/bin/env python3
"""fake_upstream - a stand-in for api.segmentapis.com behind Prism.

Answers every request with 200 and {"data":{}}, marks the response with
X-Fake-Upstream: 1 (so a test can tell a forwarded request from one Prism
answered itself) and remembers the last request it saw.

Run standalone: fake_upstream.py [PORT]  (prints "listening PORT" once ready;
PORT 0 picks a free one).  Or import it and call start_upstream().
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"data":{}}'


class Handler(BaseHTTPRequestHandler):
    """answers everything with {"data":{}} and records what it got."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.last_request = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": body.decode("utf-8", "replace"),
        }
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Fake-Upstream", "1")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, fmt, *args):
        """quiet: the contract test prints its own summary."""


def start_upstream(port=0):
    """start_upstream - serve on 127.0.0.1:port in a thread; returns (server, url)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.last_request = None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def stop_upstream(server):
    """stop_upstream - shut the server down and free its socket."""
    server.shutdown()
    server.server_close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.last_request = None
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""prism - start and stop a Prism validation proxy for the contract tests.

Prism (tests/contract/node_modules, installed with `npm ci`) sits between a
client and an upstream and checks every request and response against the
Segment Public API 32.0.5 spec in spec/.  Standard library only.
"""

import os
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "spec", "segment-public-api-openapi-32.0.5.yaml")
PRISM_BIN = os.path.join(HERE, "node_modules", ".bin", "prism")
START_TIMEOUT = 60.0


class PrismError(RuntimeError):
    """Prism did not come up; the message carries its output."""


def prism_installed():
    """prism_installed - whether npm ci has been run in tests/contract."""
    return os.access(PRISM_BIN, os.X_OK)


def free_port():
    """free_port - a loopback port nobody listens on right now (bind to 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_answers(port):
    """_port_answers - whether something accepts TCP connections on port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_log(log):
    """_read_log - everything Prism has written so far.

    pread leaves the offset Prism shares with us alone, so its later writes
    still land at the end of the file.
    """
    chunks, offset = [], 0
    while True:
        chunk = os.pread(log.fileno(), 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def start_prism(upstream_url, timeout=START_TIMEOUT, spec=SPEC):
    """start_prism - run `prism proxy SPEC upstream --errors` on a free port.

    Returns (proc, base_url) once the port accepts connections.  Prism's
    output goes to a temporary file (proc.prism_log) rather than a pipe, so
    a chatty Prism can never block on a full pipe; it is shown in the error
    when Prism exits early or does not answer within timeout seconds.
    spec defaults to the 32.0.5 Segment spec.
    """
    if not prism_installed():
        raise PrismError("cannot start prism: %s missing (run npm ci in %s)"
                         % (PRISM_BIN, HERE))
    port = free_port()
    log = tempfile.TemporaryFile()
    cmd = [PRISM_BIN, "proxy", spec, upstream_url, "--port", str(port),
           "--host", "127.0.0.1", "--errors"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, cwd=HERE,
                            start_new_session=True)
    proc.prism_log = log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = _read_log(log)
            log.close()
            raise PrismError("prism exited with status %d before listening:\n%s"
                             % (proc.returncode, out))
        if _port_answers(port):
            return proc, "http://127.0.0.1:%d" % port
        time.sleep(0.2)
    out = _read_log(log)
    stop_prism(proc)
    raise PrismError("prism did not answer on port %d within %g s:\n%s"
                     % (port, timeout, out))


def prism_output(proc):
    """prism_output - what Prism has logged so far (for failure reports)."""
    log = getattr(proc, "prism_log", None)
    if log is None or log.closed:
        return ""
    return _read_log(log)


def stop_prism(proc):
    """stop_prism - terminate Prism (and the node processes it started), then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    log = getattr(proc, "prism_log", None)
    if log is not None and not log.closed:
        log.close()

"""e2e notify - the service manager's notify protocol (Type=notify): the daemon sends
READY=1 to $NOTIFY_SOCKET once its store is open (not before), STOPPING=1 at SIGTERM,
WATCHDOG=1 every half of $WATCHDOG_USEC when that is meant for it, to a path or an
abstract ('@') socket; a socket that cannot be reached is one warning, not a failure.
Runtime: about 3 s."""
import os
import signal
import socket
import subprocess
import time

from harness import BIN, Checks, Spool, wait_for

c = Checks("notify")


class Listener:
    """Listener - a unix datagram socket, as systemd binds for $NOTIFY_SOCKET."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + addr[1:] if addr.startswith("@") else addr)
        self.sock.settimeout(0.05)
        self.addr = addr
        self.got = []  # (monotonic time, datagram text)

    def poll(self):
        try:
            while True:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
        except socket.timeout:
            pass
        return self.got

    def first(self, key, timeout=20):
        """first - the first datagram with the line key (e.g. "READY=1"), waiting for it."""
        def seen():
            return next((m for _, m in self.poll() if key in m.split("\n")), None)
        return wait_for(seen, timeout=timeout, what=f"{key} on {self.addr}")

    def count(self, key):
        return sum(1 for _, m in self.poll() if key in m.split("\n"))

    def close(self):
        self.sock.close()


def start(s, addr, extra=None):
    env = dict(s.env, NOTIFY_SOCKET=addr, **(extra or {}))
    return s.start(env=env, ready=False)


def ready_after_store(s):
    """READY=1 comes once the store exists, with a STATUS= line; STOPPING=1 at SIGTERM."""
    addr = os.path.join(s.root, "notify.sock")
    ls = Listener(addr)
    db = os.path.join(s.spool, "segspool.db")
    c.check(not os.path.exists(db), "no store before the daemon starts")
    p = start(s, addr)
    try:
        ready = ls.first("READY=1")
        c.check(os.path.exists(db), "the store exists when READY=1 arrives")
        c.check("running on spool" in s.log_text(), "READY=1 after the log says running")
        c.check(f"MAINPID={p.pid}" in ready.split("\n"), f"READY carries MAINPID ({ready!r})")
        c.check(any(l.startswith("STATUS=running on spool ") for l in ready.split("\n")),
                f"READY carries a STATUS line ({ready!r})")
        c.eq(ls.count("STOPPING=1"), 0, "no STOPPING=1 while running")
        p.send_signal(signal.SIGTERM)
        ls.first("STOPPING=1")
        c.eq(p.wait(timeout=20), 0, "exit status after SIGTERM")
        c.eq(ls.count("STOPPING=1"), 1, "STOPPING=1 once")
        c.eq(ls.count("WATCHDOG=1"), 0, "no WATCHDOG=1 without WATCHDOG_USEC")
    finally:
        s.stop()
        ls.close()


def abstract_and_watchdog(s):
    """an abstract socket; WATCHDOG_USEC=300000 pings every 150 ms, and until-idle
    stopping says STOPPING=1 too."""
    addr = f"@segspool-e2e-notify-{os.getpid()}"
    ls = Listener(addr)
    p = start(s, addr, {"WATCHDOG_USEC": "300000", "WATCHDOG_PID": str(os.getpid())})
    try:
        ls.first("READY=1")
        time.sleep(0.6)
        c.eq(ls.count("WATCHDOG=1"), 0, "no pings when WATCHDOG_PID is another process")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    finally:
        s.stop()
    ls.got.clear()
    # WATCHDOG_PID is unset: the pings are ours
    p = start(s, addr, {"WATCHDOG_USEC": "300000"})
    try:
        ls.first("READY=1")
        t0 = time.monotonic()
        time.sleep(1.0)
        pings = [t for t, m in ls.poll() if m == "WATCHDOG=1" and t >= t0]
        c.check(4 <= len(pings) <= 9, f"about 6 pings a second at 300 ms (got {len(pings)})")
        p.send_signal(signal.SIGTERM)
        ls.first("STOPPING=1")
        p.wait(timeout=20)
    finally:
        s.stop()
    ls.got.clear()
    p = subprocess.run([BIN, "--config", s.config_path, "run", "--until-idle"], timeout=60,
                       env=dict(s.env, NOTIFY_SOCKET=addr), capture_output=True)
    c.eq(p.returncode, 0, "run --until-idle")
    c.check(ls.count("READY=1") == 1 and ls.count("STOPPING=1") == 1,
            f"--until-idle: READY=1 then STOPPING=1 ({ls.poll()})")
    ls.close()


def unreachable(s):
    """a NOTIFY_SOCKET nobody listens on: one warning, the daemon runs on."""
    addr = os.path.join(s.root, "nobody.sock")
    p = subprocess.run([BIN, "--config", s.config_path, "run", "--until-idle"], timeout=60,
                       env=dict(s.env, NOTIFY_SOCKET=addr, WATCHDOG_USEC="100000"),
                       capture_output=True, text=True)
    c.eq(p.returncode, 0, "an unreachable NOTIFY_SOCKET does not stop the daemon")
    c.eq(p.stderr.count("cannot notify the service manager"), 1,
         f"one warning for it ({p.stderr!r})")
    c.check(addr in p.stderr, "the warning names the socket")


for part in (ready_after_store, abstract_and_watchdog, unreachable):
    s = Spool("http://127.0.0.1:9")
    try:
        c.run_parts([part], s)
    finally:
        s.cleanup()
c.finish()

"""e2e journal - the daemon under systemd's $JOURNAL_STREAM: its messages reach journald's
native socket (a stand-in bound by the test, named by $SEGSPOOL_JOURNAL_SOCKET) as one
datagram each, a job's with SEGSPOOL_JOB=, SEGSPOOL_OP=, SEGSPOOL_STATE=, and nothing is
written on the stream; with the socket gone the stream gets "<N>" lines without
timestamps; the token is in none of it."""
import os
import re
import socket
import struct
import threading

from harness import TOKEN, Checks, Emulator, Spool

c = Checks("journal")


def parse_entry(data):
    """parse_entry - a native-protocol datagram as {FIELD: value}; a value with a newline
    comes as NAME\\n, a 64-bit little-endian length, the bytes, \\n."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        eq = data.find(b"=", i, nl)
        if eq >= 0:
            fields[data[i:eq].decode()] = data[eq + 1:nl].decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            fields[data[i:nl].decode()] = data[nl + 9:nl + 9 + n].decode()
            assert data[nl + 9 + n:nl + 10 + n] == b"\n", "binary field not ended by \\n"
            i = nl + 10 + n
    return fields


class Journal(threading.Thread):
    """Journal - the stand-in journald: reads its socket as the daemon writes (a datagram
    socket's queue is short, and the daemon waits for room as with the real one)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stopping = False
        self.start()

    def run(self):
        while True:
            try:
                self.got.append(self.sock.recv(1 << 20))
            except socket.timeout:
                if self.stopping:
                    return

    def stop(self):
        self.stopping = True
        self.join()
        self.sock.close()


def journal_env(s, sock_path):
    """journal_env - the daemon's environment as systemd would set it, with the daemon's
    stderr (daemon.log) as the journal stream."""
    open(s.daemon_log, "ab").close()
    st = os.stat(s.daemon_log)
    return dict(s.env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
                SEGSPOOL_JOURNAL_SOCKET=sock_path)


emu = Emulator()
s = Spool(emu.url, config={"log_level": "debug"})
sock_path = os.path.join(s.root, "journal.sock")
journal = Journal(sock_path)
try:
    s.drop_jobs("jobs.json", [{"op": "listSources"},
                              {"op": "getSource", "params": {"sourceId": "no-such-source"}}])
    env = journal_env(s, sock_path)
    c.eq(s.run_until_idle(timeout=60, env=env), 0, "run --until-idle exit code")
    journal.stop()
    raw = journal.got
    entries = [parse_entry(d) for d in raw]
    c.check(len(entries) >= 4, f"datagrams received: {len(entries)}")
    c.check(all(e.get("SYSLOG_IDENTIFIER") == "segspool" for e in entries),
            "every entry says SYSLOG_IDENTIFIER=segspool")
    c.check(all(e.get("PRIORITY") in ("3", "4", "6", "7") for e in entries),
            "every entry has a PRIORITY")
    c.check(any(e["MESSAGE"].startswith("running on spool") and e["PRIORITY"] == "6" and
                "SEGSPOOL_JOB" not in e for e in entries),
            "the start is logged at info, about no job")
    by_id = {j["op"]: j["id"] for j in s.jobs()}
    ok = [e for e in entries if e.get("SEGSPOOL_JOB") == str(by_id.get("listSources"))]
    c.check(any(e.get("SEGSPOOL_STATE") == "succeeded" and e.get("SEGSPOOL_OP") == "listSources"
                and e["PRIORITY"] == "7" and "succeeded" in e["MESSAGE"] for e in ok),
            f"the succeeded job's entry carries its fields: {ok}")
    bad = [e for e in entries if e.get("SEGSPOOL_JOB") == str(by_id.get("getSource"))]
    c.check(any(e.get("SEGSPOOL_STATE") == "failed" and e.get("SEGSPOOL_OP") == "getSource" and
                e["PRIORITY"] == "4" and "404" in e["MESSAGE"] for e in bad),
            f"the failed job's entry carries its fields and the API's answer: {bad}")
    c.check(all(TOKEN.encode() not in d for d in raw), "the token is in no datagram")
    log = s.log_text()
    c.check(not re.search(r"^\d{4}-\d\d-\d\dT", log, re.M),
            f"no timestamped line on the journal stream: {log[:300]!r}")
    c.check(" info: " not in log and " warn: " not in log, "no message written twice")

    # the journal's socket gone: "<N>" lines on the stream, journald stamping them
    os.unlink(sock_path)
    s.drop_jobs("more.json", [{"op": "listSources"}])
    c.eq(s.run_until_idle(timeout=60, env=env), 0, "second run's exit code")
    log = s.log_text()
    c.check(re.search(r"^<6>running on spool ", log, re.M) is not None,
            f"the start logged as <6> without a timestamp: {log[:300]!r}")
    c.check(re.search(r"^<7>job \d+ \(listSources\) succeeded$", log, re.M) is not None,
            "the job's success logged as <7>")
    c.check(not re.search(r"^\d{4}-\d\d-\d\dT", log, re.M), "no timestamped line")
    c.check(TOKEN not in log, "the token is not on the stream")
finally:
    if journal.is_alive():
        journal.stop()
    s.cleanup()
    emu.stop()
c.finish()

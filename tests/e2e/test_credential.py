"""e2e credential - a workspace's token from a systemd credential ("token_credential":
NAME reads $CREDENTIALS_DIRECTORY/NAME, as LoadCredential=NAME:FILE provides it): without
the variable or without the file, the jobs wait with a reason that says what is missing
and where, sending nothing (and never falling back on $SEGMENT_TOKEN); with the file, even
0440 as systemd's ACL shows it, they run, and the token is in no log or store; a config
with both token_file and token_credential, or a name with '/', is refused at load.
Runtime: about 3 s."""
import json
import os
import subprocess

from harness import BIN, TOKEN, Checks, Emulator, Spool

c = Checks("credential")
JOB = {"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}


def reason_of(s, job_id, env):
    sh = json.loads(s.cli("show", str(job_id), "--json", env=env, check=True).stdout)
    return sh["state"], (sh["transitions"][-1]["reason"] if sh.get("transitions") else "")


def credential_runs():
    emu = Emulator()
    s = Spool(emu.url, config={"workspaces": {"default": {"token_credential": "segment-token"}}})
    creds = os.path.join(s.root, "creds")
    try:
        # a wrong $SEGMENT_TOKEN: the credential is the one source, no quiet fallback
        env = dict(s.env, SEGMENT_TOKEN="wrong-env-token")
        env.pop("CREDENTIALS_DIRECTORY", None)
        s.drop_jobs("a.json", [JOB])
        c.eq(s.run_until_idle(timeout=60, env=env), 0, "no CREDENTIALS_DIRECTORY: run ends")
        state, why = reason_of(s, 1, env)
        c.eq(state, "waiting", "no CREDENTIALS_DIRECTORY: the job waits")
        c.check("CREDENTIALS_DIRECTORY is not set" in why and "segment-token" in why and
                "LoadCredential=segment-token" in why, f"the reason says what is missing: {why}")
        c.check("CREDENTIALS_DIRECTORY is not set" in s.log_text(), "and the log says it")

        os.mkdir(creds, 0o700)
        env["CREDENTIALS_DIRECTORY"] = creds
        c.eq(s.run_until_idle(timeout=60, env=env), 0, "no credential file: run ends")
        state, why = reason_of(s, 1, env)
        path = os.path.join(creds, "segment-token")
        c.eq(state, "waiting", "no credential file: the job waits")
        c.check(f"credential segment-token ({path})" in why and "No such file" in why,
                f"the reason names the credential and its path: {why}")
        c.eq(emu.stats()["requests"], 0, "nothing was sent without the credential")

        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o440)
        s.drop_jobs("b.json", [JOB])
        c.eq(s.run_until_idle(timeout=60, env=env), 0, "with the credential: run ends")
        for i in (1, 2):
            c.eq(reason_of(s, i, env)[0], "succeeded", f"job {i} ran with the credential")
        c.eq(emu.stats()["requests"], 2, "two requests, both with the credential's token")
        s.stop()
        leaks = []
        for top, _, files in os.walk(s.root):
            for n in files:
                p = os.path.join(top, n)
                if p != path and TOKEN.encode() in open(p, "rb").read():
                    leaks.append(p)
        c.eq(leaks, [], "the token is in no file but the credential")
    finally:
        s.cleanup()
        emu.stop()


def refused_configs():
    for ws, want in (({"token_file": "t", "token_credential": "t"},
                      "both token_file and token_credential"),
                     ({"token_credential": "../etc/token"}, "/workspaces/default/token_credential"),
                     ({"token_credential": ""}, "token_credential")):
        s = Spool("http://127.0.0.1:9", config={"workspaces": {"default": ws}})
        try:
            p = subprocess.run([BIN, "--config", s.config_path, "run", "--until-idle"],
                               env=s.env, capture_output=True, text=True, timeout=60)
            c.check(p.returncode != 0, f"{ws}: refused at load (exit {p.returncode})")
            c.check(want in p.stderr and s.config_path in p.stderr,
                    f"{ws}: the error says what and where: {p.stderr.strip()}")
        finally:
            s.cleanup()


c.run_parts((credential_runs, refused_configs))
c.finish()

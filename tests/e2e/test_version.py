"""e2e version - the one version, CMake's project(VERSION): `segspool --version` and
`segspool-emu --version` print "segspool VERSION", and every request the daemon sends
says "User-Agent: segspool/VERSION".
Runtime: about 1 s."""
import os
import re
import subprocess

from harness import BIN, EMU, Checks, ScriptedServer, Spool

c = Checks("version")
src = os.environ.get("SEGSPOOL_SRC", ".")
with open(os.path.join(src, "CMakeLists.txt")) as f:
    version = re.search(r"project\(segspool VERSION ([0-9.]+)", f.read()).group(1)

for name, binary in (("segspool", BIN), ("segspool-emu", EMU)):
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    c.eq(p.returncode, 0, f"{name} --version exits 0")
    c.eq(p.stdout, f"segspool {version}\n", f"{name} --version")
    c.eq(p.stderr, "", f"{name} --version writes nothing to stderr")

srv = ScriptedServer([{"path": "/warehouses/wh_1", "response": {
    "body": "{\"data\":{\"warehouse\":{\"id\":\"wh_1\",\"enabled\":true}}}"}}])
s = Spool(srv.url, config={"endpoint_limits": False})
try:
    s.drop_jobs("get.json", [{"op": "getWarehouse", "params": {"warehouseId": "wh_1"}}])
    c.eq(s.run_until_idle(timeout=60), 0, "run --until-idle")
    agents = [ScriptedServer.header(q, "User-Agent") for q in srv.requests()]
    c.check(agents and all(a == f"segspool/{version}" for a in agents),
            f"every request says User-Agent: segspool/{version} (got {agents})")
finally:
    s.stop()
    srv.stop()
c.finish()

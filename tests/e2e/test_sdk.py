"""e2e sdk - the official TypeScript SDK against the emulator: every one of the 43
operations, every response parsed into the SDK's models (brought up to 73.2.0 by
tests/sdk/models-73.2.0-delta.json); see tests/sdk/sdk_check.mjs.

The emulator routes and validates with segspool's own operation table, so a wrong entry
there would pass on both sides; the SDK is a client segspool did not write.

Exit 77 (skipped) only when node or npm is not installed. With npm present, the SDK must
be installed (`npm ci` in tests/sdk, which tools/test.sh runs): otherwise the test fails.
"""
import os
import shutil
import subprocess
import sys

from harness import Checks, Emulator, TOKEN

SRC = os.environ.get("SEGSPOOL_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SDK_DIR = os.path.join(SRC, "tests", "sdk")
SDK_PKG = os.path.join(SDK_DIR, "node_modules", "@segment", "public-api-sdk-typescript")


def main():
    missing = [tool for tool in ("node", "npm") if not shutil.which(tool)]
    if missing:
        print("skipped: %s not installed (the SDK check needs node and npm)"
              % " and ".join(missing))
        sys.exit(77)
    c = Checks("sdk")
    if not c.check(os.path.isdir(SDK_PKG),
                   f"the SDK is installed in {SDK_DIR} (run: cd tests/sdk && npm ci)"):
        c.finish()
    e = Emulator("--seed", "3")
    try:
        r = subprocess.run(
            ["node", os.path.join(SDK_DIR, "sdk_check.mjs"), "--base", e.url, "--token", TOKEN,
             "--ops", os.path.join(SRC, "data", "operations.json"),
             "--delta", os.path.join(SDK_DIR, "models-73.2.0-delta.json")],
            cwd=SDK_DIR, capture_output=True, text=True, timeout=120)
        sys.stderr.write(r.stderr)
        last = r.stdout.strip().splitlines()[-1:] or [""]
        print(f"sdk_check: {last[0]}")
        c.eq(r.returncode, 0, "sdk_check.mjs: every operation called, every response fits")
        c.check(last[0].endswith(" 0 failed") and not last[0].startswith("0 passed"),
                f"sdk_check.mjs ran its checks ({last[0]!r})")
    finally:
        e.stop()
        shutil.rmtree(e.dir, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()

"""e2e build - the build's own rules, on a scratch tree of symlinks to this one, configured
(not built) by cmake:

- the tree as it is configures;
- a module whose source file is missing stops the configuration, naming the file (it
  was skipped before, and the binaries quietly lost it);
- a unit test without a module stops it too, naming the test;
- install destinations follow GNUInstallDirs (CMAKE_INSTALL_BINDIR is honoured).

Runtime: about 10 s."""
import os
import shutil
import subprocess
import tempfile

from harness import Checks

c = Checks("build")
SRC = os.environ.get("SEGSPOOL_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CMAKE = shutil.which("cmake")
SKIP_TOP = {".git", "build", "build-asan", "build-fuzz", "node_modules"}


def mirror(src, dst, leave_out=(), expand=()):
    """mirror - dst/ with a symlink to each entry of src/ except leave_out (paths
    relative to SRC); directories named in expand are mirrored entry by entry."""
    os.mkdir(dst)
    for name in sorted(os.listdir(src)):
        rel = os.path.relpath(os.path.join(src, name), SRC)
        if rel in leave_out or (src == SRC and (name in SKIP_TOP or name.startswith("build"))):
            continue
        if rel in expand:
            mirror(os.path.join(src, name), os.path.join(dst, name), leave_out, expand)
        else:
            os.symlink(os.path.join(src, name), os.path.join(dst, name))


def configure(name, leave_out=(), extra_files=None, args=()):
    """configure - cmake on a scratch tree; (exit code, output, build dir)."""
    root = os.path.join(tmp, name)
    expand = {os.path.dirname(p) for p in list(leave_out) + list(extra_files or {})}
    expand |= {os.path.dirname(p) for p in expand if os.path.dirname(p)}
    mirror(SRC, root, set(leave_out), expand)
    for rel, text in (extra_files or {}).items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
    build = os.path.join(root, "_build")
    p = subprocess.run([CMAKE, "-S", root, "-B", build, *args], capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr, build


if not CMAKE:
    print("skipped: cmake is not installed")
    raise SystemExit(77)
tmp = tempfile.mkdtemp(prefix="segspool-build-")
try:
    rc, out, build = configure("whole", args=["-DCMAKE_INSTALL_BINDIR=libexec/segspool"])
    c.eq(rc, 0, f"the tree configures ({out[-600:]})")
    with open(os.path.join(build, "cmake_install.cmake")) as f:
        install = f.read()
    c.check("libexec/segspool" in install and "/bin\"" not in install,
            "the binaries install to CMAKE_INSTALL_BINDIR (GNUInstallDirs)")

    rc, out, _ = configure("no-source", leave_out=["src/lib/paginate.c"])
    c.check(rc != 0, "a module's missing source stops the configuration")
    c.check("module paginate: src/lib/paginate.c is missing" in out,
            f"and names the file ({out[-600:]})")

    rc, out, _ = configure("no-module",
                           extra_files={"tests/unit/test_nosuch.c": "int main(void) {}\n"})
    c.check(rc != 0, "a unit test without a module stops the configuration")
    c.check("unit test test_nosuch: there is no module seg_nosuch" in out,
            f"and names the test ({out[-600:]})")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
c.finish()

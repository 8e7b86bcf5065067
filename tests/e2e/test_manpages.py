"""e2e manpages - the man pages cannot drift from the code: (a) each page lints clean
(`mandoc -T lint`, style messages included, or `groff -ww` when mandoc is missing); (b)
every config field of src/lib/config.c's field arrays is an item of its section of
segspool.json(5), with the range its get_number call enforces and the default
config_init sets; every command of src/cli/main.c's table is an item of segspool(1)'s
COMMANDS; every option of segspool-emu's usage text and settings table is an item of
segspool-emu(1); no page documents a field, command or option the code lacks; and
`cmake --install` puts every page of man/ into its section, gzipped.
Parses the C source with regular expressions. Exit 77 (skipped) only when neither
linter exists, after the checks of (b) have passed.
Runtime: well under 1 s."""
import os
import re
import shutil
import subprocess
import sys

from harness import Checks

c = Checks("manpages")
SRC = os.environ.get("SEGSPOOL_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
MAN = os.path.join(SRC, "man")
PAGES = ["segspool.1", "segspool-emu.1", "segspool.json.5"]
OWN_XR = {"segspool 1", "segspool-emu 1", "segspool.json 5"}

# documented ahead of their code: allowed to be missing from the code (not the other way
# round). None now; a page written before its feature lands lists it here until then.
PENDING_FIELDS = set()
PENDING_COMMANDS = set()


def read(*parts):
    with open(os.path.join(SRC, *parts), encoding="utf-8") as f:
        return f.read()


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


# --- the C side ----------------------------------------------------------------------

def c_defines():
    """c_defines - #define NAME VALUE of the public headers (for RETRY_MAX_ATTEMPTS...)."""
    out = {}
    for name in sorted(os.listdir(os.path.join(SRC, "include"))):
        if name.endswith(".h"):
            for m in re.finditer(r"(?m)^#define\s+([A-Z_][A-Z0-9_]*)\s+(.+)$",
                                 strip_comments(read("include", name))):
                out[m.group(1)] = m.group(2).strip()
    return out


DEFINES = c_defines()


def c_eval(expr, depth=0):
    """c_eval - a C constant expression of numbers, macros, casts and + - * / ()."""
    e = re.sub(r"\((?:double|int|long|int64_t|size_t|unsigned)\)", "", expr)
    e = re.sub(r"\b([A-Z_][A-Z0-9_]*)\b",
               lambda m: "(%r)" % c_eval(DEFINES[m.group(1)], depth + 1), e)
    e = re.sub(r"(?<=[0-9])(?:[uU]?[lL]{1,2}|[uU])\b", "", e)
    if depth > 10 or not re.fullmatch(r"[0-9eE.+\-*/() ]+", e):
        raise ValueError(f"cannot evaluate {expr!r}")
    return eval(e, {"__builtins__": {}})  # only digits and operators reach here


def config_sections(text):
    """config_sections - {section: (start, end)} of config.c: load_X's body is section X
    of segspool.json(5), load_root's (and top_fields) the "Top level"."""
    starts = [(m.start(), m.group(1)) for m in
              re.finditer(r"(?m)^static int load_(\w+)\(", text)]
    spans = {}
    for i, (pos, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        spans["Top level" if name == "root" else name] = (pos, end)
    return spans


def section_at(spans, pos):
    for name, (a, b) in spans.items():
        if a <= pos < b:
            return name
    return None


def config_fields(text):
    """config_fields - {(section, field)} from every `...fields[] = {...}` array."""
    spans = config_sections(text)
    out = set()
    for m in re.finditer(r"(\w*)fields\[\]\s*=\s*\{(.*?)\};", text, flags=re.S):
        sec = "Top level" if m.group(1) == "top_" else section_at(spans, m.start())
        c.check(sec is not None, f"config.c: cannot tell which section {m.group(0)[:40]!r} is")
        for name in re.findall(r'"([^"]+)"', m.group(2)):
            out.add((sec, name))
    return out


def config_ranges(text):
    """config_ranges - {(section, field): (lo, hi)} from the get_number calls."""
    spans = config_sections(text)
    out = {}
    for m in re.finditer(r'get_number\(\s*\w+,\s*"(\w+)",\s*([^,]+),\s*([^,]+),', text):
        out[(section_at(spans, m.start()), m.group(1))] = (c_eval(m.group(2)),
                                                           c_eval(m.group(3)))
    return out


def config_init_values(text):
    """config_init_values - {member: C expression} of config_init's assignments."""
    m = re.search(r"void config_init\(struct config \*cfg\)\s*\{(.*?)\n\}", text, flags=re.S)
    return dict(re.findall(r"cfg->([\w.]+)\s*=\s*([^;]+);", m.group(1))) if m else {}


def duration(ms):
    for unit, n in (("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000),
                    ("s", 1000)):
        if ms % n == 0:
            return f"{ms // n}{unit}"
    return f"{ms}ms"


def number(v):
    return str(int(v)) if float(v) == int(v) else repr(v)


# the documented default of a field, from config_init's member: (member, format)
DEFAULTS = {
    ("Top level", "spool"): ("spool_dir", lambda e: re.fullmatch(r'xstrdup\("(.*)"\)', e)[1]),
    ("Top level", "rate"): ("rate_per_sec", lambda e: number(c_eval(e)) + "/s"),
    ("Top level", "burst"): ("burst", None),
    ("Top level", "endpoint_limits"): ("endpoint_limits",
                                        lambda e: "true" if c_eval(e) else "false"),
    ("Top level", "grace_ms"): ("grace_ms", None),
    ("Top level", "archive"): ("keep_archive", lambda e: "keep" if c_eval(e) else "delete"),
    ("Top level", "rescan_ms"): ("rescan_ms", None),
    ("Top level", "claim_batch"): ("claim_batch", None),
    ("Top level", "log_level"): ("log_level", lambda e: e.replace("LOG_", "").lower()),
    ("Top level", "max_server_wait"): ("max_server_wait_ms", lambda e: duration(c_eval(e))),
    ("Top level", "max_pages"): ("max_pages", None),
    ("http", "max_in_flight"): ("max_in_flight", None),
    ("http", "connect_timeout_ms"): ("connect_timeout_ms", None),
    ("http", "timeout_ms"): ("timeout_ms", None),
    ("http", "max_response_bytes"): ("max_response_bytes", None),
    ("retry", "max_attempts"): ("retry.max_attempts", None),
    ("retry", "initial_ms"): ("retry.initial_ms", None),
    ("retry", "max_ms"): ("retry.max_ms", None),
    ("retry", "max_age"): ("retry.max_age_ms", lambda e: duration(c_eval(e))),
}


def command_names(text):
    m = re.search(r"static const struct cmd commands\[\]\s*=\s*\{(.*?)\n\};", text, flags=re.S)
    return re.findall(r'\{\s*"([a-z][a-z-]*)",\s*\w+,', m.group(1)) if m else []


def emu_options():
    """emu_options - what is_option accepts: its own[] names and the settings table's
    (with '-' for '_'), and what the usage text lists."""
    main_c = read("src", "emu", "emu_main.c")
    own = re.search(r"own\[\]\s*=\s*\{(.*?)\};", main_c, flags=re.S)
    opts = set(re.findall(r'"([a-z][a-z-]*)"', own.group(1))) if own else set()
    usage = re.search(r"usage_text\[\]\s*=(.*?)\";\n", main_c, flags=re.S)
    listed = set(re.findall(r'"\s+--([a-z][a-z-]*)', usage.group(1))) if usage else set()
    table = re.search(r"settings_table\[\]\s*=\s*\{(.*?)\};", read("src", "emu", "emu_limits.c"),
                      flags=re.S)
    if table:
        opts |= {n.replace("_", "-") for n in re.findall(r"SETTING\((\w+),", table.group(1))}
    c.check(listed <= opts, f"segspool-emu's usage text lists only options it accepts "
            f"({sorted(listed - opts)})")
    return opts | listed


# --- the page side ------------------------------------------------------------------

def page_sections(page):
    """page_sections - {title: [item lines and the text up to the next item]} for each
    .Sh and .Ss of a page; an item is an `.It` line with what follows it."""
    out = {}
    cur = None
    for line in read("man", page).splitlines():
        m = re.match(r'\.S[hs]\s+"?([^"]*)"?\s*$', line)
        if m:
            cur = out.setdefault(m.group(1).strip(), [])
            continue
        if cur is None:
            continue
        if line.startswith(".It "):
            cur.append(line + "\n")
        elif cur and not line.startswith((".El", ".Bl")):
            cur[-1] += line + "\n"
    return out


def items(section, macro):
    """items - {name: text} for `.It MACRO NAME ...` items of a section."""
    out = {}
    for it in section:
        m = re.match(r"\.It " + macro + r" (-?[\w.-]+)", it)
        if m:
            out[m.group(1).lstrip("-")] = it
    return out


def flat(text):
    """flat - an item's source as one line, roughly as it reads: macro names dropped."""
    words = []
    for line in text.splitlines():
        if line.startswith("."):
            line = re.sub(r"\b(It|Cm|Pq|Li|Ar|Fl|Ns|Pa|Dv|Ev|Sx|Xr|Ql|Pf|Dq|No)\b", "", line[1:])
        words.append(line)
    return re.sub(r"\s+", " ", " ".join(words))


# --- (b) the names, ranges and defaults ---------------------------------------------------

config_c = strip_comments(read("src", "lib", "config.c"))
fields = config_fields(config_c)
c.check(len(fields) >= 25, f"found the config field arrays ({len(fields)} fields)")
json5 = page_sections("segspool.json.5")
documented = set()
for sec, text in json5.items():
    documented |= {(sec, n) for n in items(text, "Cm")}
for sec, name in sorted(fields):
    c.check((sec, name) in documented,
            f"config field {name} ({sec}) is not an item of section {sec!r} of segspool.json.5")
for sec, name in sorted(documented - fields - PENDING_FIELDS):
    if sec in {s for s, _ in fields}:
        c.check(False, f"segspool.json.5 documents {name} ({sec}), which config.c does not accept")
for pend in sorted(PENDING_FIELDS & fields):
    print(f"note: {pend[1]} is in config.c now: drop it from PENDING_FIELDS", flush=True)

ranges = config_ranges(config_c)
c.check(len(ranges) >= 12, f"found the get_number calls ({len(ranges)})")
for (sec, name), (lo, hi) in sorted(ranges.items()):
    text = items(json5.get(sec, []), "Cm").get(name, "")
    want = f"From {number(lo)} to {number(hi)}"
    c.check(want in flat(text), f"segspool.json.5 {sec}/{name} says {want!r}")

init = config_init_values(config_c)
for (sec, name), (member, fmt) in sorted(DEFAULTS.items()):
    if not c.check(member in init, f"config_init sets cfg->{member} (the default of {name})"):
        continue
    value = fmt(init[member]) if fmt else number(c_eval(init[member]))
    text = flat(items(json5.get(sec, []), "Cm").get(name, ""))
    c.check(re.search(r"Default: " + re.escape(value) + r"(?![\w/])", text),
            f"segspool.json.5 {sec}/{name} says 'Default: {value}' (got {text[-80:]!r})")

commands = command_names(strip_comments(read("src", "cli", "main.c")))
c.check(len(commands) >= 10, f"found the command table ({commands})")
page_cmds = items(page_sections("segspool.1").get("COMMANDS", []), "Cm")
for name in commands:
    c.check(name in page_cmds, f"command {name} is not an item of COMMANDS in segspool.1")
for name in sorted(set(page_cmds) - set(commands) - PENDING_COMMANDS):
    c.check(False, f"segspool.1 documents a command {name} that main.c does not have")

opts = emu_options()
c.check(len(opts) >= 20, f"found the emulator's options ({len(opts)})")
emu_items = items(page_sections("segspool-emu.1").get("DESCRIPTION", []), "Fl")
for name in sorted(opts):
    c.check(name in emu_items, f"segspool-emu option --{name} is not an item of segspool-emu.1")
for name in sorted(set(emu_items) - opts):
    c.check(False, f"segspool-emu.1 documents an option --{name} that segspool-emu lacks")

# each page is installed, gzipped, into the man directory of its section: `cmake --install`
# of this build into a scratch prefix, and what lands there compared with man/
BUILD = os.path.dirname(os.path.abspath(os.environ.get("SEGSPOOL_BIN", "build/segspool")))
CMAKE = shutil.which("cmake")
if CMAKE and os.path.exists(os.path.join(BUILD, "cmake_install.cmake")):
    import gzip
    import tempfile
    prefix = tempfile.mkdtemp(prefix="segspool-man-")
    try:
        r = subprocess.run([CMAKE, "--install", BUILD, "--prefix", prefix], capture_output=True,
                           text=True, timeout=300)
        c.eq(r.returncode, 0, f"cmake --install into a scratch prefix ({r.stderr[-300:]})")
        for page in sorted(os.listdir(MAN)):
            section = page.rsplit(".", 1)[1]
            got = os.path.join(prefix, "share", "man", f"man{section}", page + ".gz")
            try:
                same = gzip.open(got).read() == open(os.path.join(MAN, page), "rb").read()
            except OSError:
                same = False
            c.check(same, f"cmake --install puts man/{page} gzipped into man{section}")
            c.check(not os.path.exists(got[:-3]), f"and not also uncompressed ({page})")
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
else:
    c.skip("the install of the man pages", "no cmake or no build tree beside SEGSPOOL_BIN")
c.eq(sorted(os.listdir(MAN)), sorted(PAGES), "the pages linted are the pages of man/")


# --- (a) lint --------------------------------------------------------------------------

def own_xr(line):
    """own_xr - a message about a reference to one of these pages, which are not
    installed where the lint runs (mandoc looks only in its compiled-in manpath)."""
    m = re.search(r"referenced manual not found: Xr (\S+ \d)", line)
    if m:
        return m.group(1) in OWN_XR
    m = re.search(r"outdated mandoc.db lacks (\S+)\((\d)\) entry", line)
    return bool(m) and f"{m.group(1)} {m.group(2)}" in OWN_XR


linted = None
if shutil.which("mandoc"):
    linted = "mandoc"
    for page in PAGES:
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "style", os.path.join(MAN, page)],
                           capture_output=True, text=True, timeout=60)
        msgs = [l for l in (r.stdout + r.stderr).splitlines() if l.strip() and not own_xr(l)]
        c.check(not msgs and r.returncode in (0, 1),
                f"mandoc -T lint {page} (exit {r.returncode}): " + "; ".join(msgs))
elif shutil.which("groff"):
    linted = "groff"
    for page in PAGES:
        r = subprocess.run(["groff", "-ww", "-z", "-mandoc", os.path.join(MAN, page)],
                           capture_output=True, text=True, timeout=60)
        c.check(r.returncode == 0 and not r.stderr.strip(),
                f"groff -ww {page} (exit {r.returncode}): {r.stderr.strip()}")
print(f"lint: {linted or 'none'}", flush=True)
if linted is None and not c.failed:
    print(f"{c.passed} passed, 0 failed")
    print("skipped: neither mandoc nor groff is installed, the pages were not linted")
    sys.exit(77)
c.finish()

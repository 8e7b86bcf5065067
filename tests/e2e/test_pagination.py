"""e2e pagination - a 50-page export survives kill -9 in the middle: after a restart the
job resumes at the first page it had not recorded, the output holds every item once and
in the API's order, pages 1..50 are each recorded once, and no recorded page is fetched
again. No output file exists until the export is complete.
"""
import json
import os
import signal
import time
import urllib.parse

from harness import Checks, Emulator, Spool, emu_cleanup, listdir, wait_for

c = Checks("pagination")
PAGES, COUNT = 50, 100
KILL_AFTER = 20

emu = Emulator("--catalog-size", str(PAGES * COUNT), "--delay-ms", "40", "--seed", "21")
s = Spool(emu.url, config={"endpoint_limits": False})
try:
    want_ids = [x["id"] for x in emu.state()["sourcesCatalog"]]
    c.eq(len(want_ids), PAGES * COUNT, "the emulator's catalog has 5000 entries")
    s.drop_jobs("export.json", [{"op": "getSourcesCatalog", "key": "catalog-export",
                                 "paginate": {"max_pages": 1000, "count": COUNT}}])
    s.start()
    jid = wait_for(lambda: s.jobs() if os.path.exists(os.path.join(s.spool, "segspool.db"))
                   else None, timeout=20, what="job ingested")[0]["id"]
    wait_for(lambda: s.show(jid)["pages_done"] >= KILL_AFTER, timeout=60, step=0.01,
             what=f"{KILL_AFTER} pages recorded")
    s.daemon.send_signal(signal.SIGKILL)
    s.daemon.wait()
    time.sleep(0.3)  # the request in flight at the kill reaches the emulator's counters
    mid = s.show(jid)
    k = mid["pages_done"]
    before = emu.stats()["by_operation"].get("getSourcesCatalog", 0)
    print(f"killed with {k} pages recorded; the emulator had served {before} pages",
          flush=True)
    c.check(KILL_AFTER <= k < PAGES, f"killed in the middle: {k} pages recorded")
    c.eq(mid["state"], "running", "after kill -9 the store still says running")
    c.check(before in (k, k + 1), f"at the kill, pages served ({before}) = recorded ({k}) "
            "+ at most the one in flight")
    c.eq([n for n in listdir(s.out_path("")) if not n.startswith(".")], [],
         "no output file before the export is complete")
    emu.admin("/__emu/reset", {})

    c.eq(s.run_until_idle(timeout=120), 0, "the restarted daemon runs until idle, exit 0")
    c.check("recovered 1 job(s) left running" in s.log_text(),
            "the restart says it queued the running job again")
    sh = s.show(jid)
    c.eq(sh["state"], "succeeded", "the export succeeded")
    after = emu.stats()["by_operation"].get("getSourcesCatalog", 0)
    c.eq(after, PAGES - k, f"the resumed job fetched only the {PAGES - k} pages not recorded")
    c.check(before + after <= PAGES + 1, f"at most one page fetched twice in all "
            f"({before} + {after})")
    pages = sh["pages"]
    c.eq([p["page_no"] for p in pages], list(range(1, PAGES + 1)), "pages 1..50, each once")
    c.eq([p["nitems"] for p in pages], [COUNT] * PAGES, "100 items on every page")
    chain = all(pages[i]["cursor"] == pages[i - 1]["next_cursor"] for i in range(1, PAGES))
    c.check(chain and pages[0]["cursor"] is None and not pages[-1]["next_cursor"],
            "each page was fetched with the cursor its predecessor returned")
    c.eq((sh["pages_done"], sh["items_done"]), (PAGES, PAGES * COUNT), "pages_done, items_done")
    c.eq(sh["result"].get("items") if sh["result"] else None, PAGES * COUNT,
         "the result counts 5000 items")
    # the first request after the restart carried page k+1's cursor
    atts = sorted(sh["attempts"], key=lambda a: a["attempt"])
    cursors = []
    for a in atts:
        target = (a["request"] or "GET ?").split(" ", 1)[1]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        cursors.append(query.get("pagination[cursor]", [None])[0])
    # the attempt open in the store at the kill (page k+1's, if it was committed by then;
    # whether its request had reached the emulator is a race of its own) is closed as
    # interrupted at the restart, and no other
    open_at_kill = [a for a in mid["attempts"] if not a.get("outcome")]
    cut = [i for i, a in enumerate(atts) if a["outcome"] == "interrupted"]
    c.check(len(open_at_kill) <= 1, f"at most one attempt open at the kill: {open_at_kill}")
    c.eq(len(cut), len(open_at_kill), "the request in flight at the kill is recorded as "
         "interrupted")
    # the attempts before the kill are those that were in the store at the kill
    n_before = len(mid["attempts"])
    c.check(n_before < len(atts) and cursors[n_before] == pages[k - 1]["next_cursor"],
            f"the first request after the restart asked for page {k + 1}: "
            f"{cursors[n_before:n_before + 1]} vs {pages[k - 1]['next_cursor']}")
    ok_cursors = [cur for cur, a in zip(cursors, atts) if a["outcome"] == "ok"]
    c.eq(len(ok_cursors), PAGES, "one ok attempt per page")
    c.eq(len(set(ok_cursors)), PAGES, "no page fetched successfully twice")

    out = s.out_path(sh["output"])
    lines = open(out).read().splitlines()
    got_ids = [json.loads(l)["id"] for l in lines]
    c.eq(len(got_ids), PAGES * COUNT, "the output has 5000 lines")
    c.eq(len(set(got_ids)), len(got_ids), "every item exactly once")
    c.check(got_ids == want_ids, "the items are in the API's order")
    c.eq([n for n in listdir(s.out_path("")) if n != sh["output"]], [],
         "nothing else (no .part) left in out/")
finally:
    s.cleanup()
    emu_cleanup(emu)
c.finish()

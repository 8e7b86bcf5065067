#!/usr/bin/env python3
"""write_job - drops job files into a segspool spool as the daemon expects (see README.md
beside this file): each file is written whole in SPOOL/tmp/, fsynced, renamed into
SPOOL/incoming/ under a name no other writer uses, and the directory fsynced so the
rename survives a crash. It does not validate the jobs: the daemon does, and rejects a
bad file whole into SPOOL/rejected/ with its reasons.

As a program:

    write_job.py [-n NAME] SPOOL [FILE|-]...

As a module (Python 3.6 or later, standard library only):

    from write_job import write_jobs, write_job_file
    write_jobs("/var/spool/segspool", [{"op": "listSources"}], name="nightly.json")
    write_job_file("/var/spool/segspool", b'{"op": "listSources"}\\n', name="one.json")

Both return the path the file was given in incoming/.
"""
import errno
import itertools
import json
import os
import re
import sys
import time

__all__ = ["write_job_file", "write_jobs", "SpoolError"]

NAME_MAX = 200  # the daemon ignores longer names
STEM_MAX = 120
_counter = itertools.count(1)


class SpoolError(Exception):
    """SpoolError - the file could not be put into the spool; nothing was left behind."""


def _extension(name):
    for ext in (".jsonl", ".json"):
        if name.endswith(ext):
            return ext
    raise ValueError(f"{name}: the name must end in .json or .jsonl (the daemon ignores others)")


def _unique_name(name):
    """_unique_name - time stamp, pid, counter, random, then name's base kept to safe
    characters: unique among writers, in order within one."""
    ext = _extension(name)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(name)[: -len(ext)])[:STEM_MAX]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = "%s-%07d-%06d-%s-%s%s" % (stamp, os.getpid(), next(_counter),
                                      os.urandom(4).hex(), stem, ext)
    assert len(final.encode()) <= NAME_MAX
    return final


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_job_file(spool, data, name="jobs.json", mode=0o640):
    """write_job_file - data (bytes, or str as UTF-8) into spool's incoming/ under a
    unique name built from name, whose ending (.json or .jsonl) says the format. mode:
    of the file (the daemon's user must be able to read it). Returns the final path."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    incoming = os.path.join(spool, "incoming")
    tmpdir = os.path.join(spool, "tmp")
    if not os.path.isdir(incoming):
        raise SpoolError(f"{incoming} is not a directory (is {spool} a spool? "
                         "segspool run creates it)")
    try:
        os.mkdir(tmpdir, 0o700)  # the daemon makes it at its start; a first writer too
    except FileExistsError:
        pass
    final = _unique_name(name)
    tmp = os.path.join(tmpdir, final)
    dest = os.path.join(incoming, final)
    # O_EXCL: this file is ours, not one written over; O_NOFOLLOW: not a symlink's target
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        # rename replaces a file of that name not yet ingested; the name is unique, but
        # make sure
        if os.path.lexists(dest):
            raise SpoolError(f"{dest} exists already")
        try:
            os.rename(tmp, dest)
        except OSError as e:
            if e.errno == errno.EXDEV:
                raise SpoolError(f"{tmpdir} and {incoming} are not on one filesystem: a "
                                 "rename between them cannot be atomic") from None
            raise
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(incoming)
    return dest


def write_jobs(spool, jobs, name="jobs.json", mode=0o640):
    """write_jobs - a list of job objects as one file: a JSON array, or JSON Lines when
    name ends in .jsonl. Returns the final path."""
    if name.endswith(".jsonl"):
        text = "".join(json.dumps(j, ensure_ascii=False) + "\n" for j in jobs)
    else:
        text = json.dumps(list(jobs), ensure_ascii=False) + "\n"
    return write_job_file(spool, text, name=name, mode=mode)


def main(argv):
    import argparse
    p = argparse.ArgumentParser(prog="write_job.py",
                                description="drop job files into a segspool spool")
    p.add_argument("-n", dest="name", help="the name (.json or .jsonl) to build the file's "
                   "name from; also names standard input (default stdin.json)")
    p.add_argument("spool")
    p.add_argument("files", nargs="*", default=["-"], metavar="FILE|-")
    a = p.parse_args(argv)
    for f in a.files:
        name = a.name or ("stdin.json" if f == "-" else os.path.basename(f))
        try:
            _extension(name)
        except ValueError as e:
            print(f"write_job.py: {e}", file=sys.stderr)
            return 2
        try:
            if f == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(f, "rb") as fh:
                    data = fh.read()
            print(write_job_file(a.spool, data, name=name), flush=True)
        except (OSError, SpoolError) as e:
            print(f"write_job.py: {f}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

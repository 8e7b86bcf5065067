/* spool.h - the spool directory protocol (Maildir-style; nq-style *at() calls on
 * directory fds).
 *
 *   SPOOL/tmp/        writers create files here
 *   SPOOL/incoming/   finished files are renamed in (rename is atomic)
 *   SPOOL/rejected/   bad files, each with NAME.error.json beside it
 *   SPOOL/archive/    accepted files (or unlinked, by configuration)
 *   SPOOL/control/    retry/cancel requests from the CLI to a running daemon
 *   SPOOL/out/        default output directory
 *   SPOOL/.lock       flock'd by the one daemon (or, briefly, a CLI command changing
 *                     the store itself); its line names the holder
 */
#ifndef SEGSPOOL_SPOOL_H
#define SEGSPOOL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct lock_owner;

struct strbuf;

struct spool {
	char *root;
	int root_fd, tmp_fd, incoming_fd, rejected_fd, archive_fd, control_fd, out_fd;
	int lock_fd;  /* -1 unless spool_lock succeeded */
	int watch_fd; /* inotify, -1 unless spool_watch_start succeeded */
	int watch_wd; /* its watch on incoming/ */
};

/* spool_open - opens (creating, mode 0700, when create is set) the spool directories. */
int spool_open(const char *root, int create, struct spool *sp);
void spool_close(struct spool *sp);

/* spool_lock - flock(LOCK_EX|LOCK_NB) on SPOOL/.lock as the daemon: 0 taken, 1 held by
 * another process, -1 error. */
int spool_lock(struct spool *sp);
/* spool_lock_as - the same for role: "daemon", or "cli:COMMAND" for a CLI command that
 * changes the store itself (util.h's lock_owner line goes into SPOOL/.lock). */
int spool_lock_as(struct spool *sp, const char *role);
/* spool_lock_wait - spool_lock_as, waiting up to max_wait_ms (logging "waiting for
 * segspool retry (pid N) to finish") while a CLI command holds the lock. 0 taken; 1
 * held by a daemon, or by a CLI command past the wait, with *holder set (pid 0 when
 * the file names nobody alive); -1 error. */
int spool_lock_wait(struct spool *sp, const char *role, int64_t max_wait_ms,
                    struct lock_owner *holder);
/* spool_lock_holder - who SPOOL/.lock names: 0 with *out set, -1 when nobody. */
int spool_lock_holder(struct spool *sp, struct lock_owner *out);
/* spool_lock_owner - the pid the lock holder wrote into SPOOL/.lock, or 0 if unknown:
 * for "another segspool daemon is running on SPOOL (pid N)". */
int spool_lock_owner(struct spool *sp);

/* spool_name_wanted - a name the daemon ingests: not a dotfile, ends in .json or .jsonl. */
int spool_name_wanted(const char *name);

/* spool_submit - writes data into tmp/ (O_EXCL), fsyncs, renames into incoming/ and
 * fsyncs incoming/. The name is made unique from hint's base name, time and pid; it is
 * appended to final_name. */
int spool_submit(struct spool *sp, const char *hint, const void *data, size_t len,
                 struct strbuf *final_name);

typedef int (*spool_name_fn)(const char *name, void *arg);
/* spool_scan - calls fn for every wanted name in incoming/, in name order. */
int spool_scan(struct spool *sp, spool_name_fn fn, void *arg);

/* spool_read - a file of incoming/: regular (not a symlink, not a directory), at most max
 * bytes; *st (when not NULL) gets the fstat of the file read, whose identity (device,
 * inode, ctime, size) tells this very file from a later one of the same name and
 * content. Returns 0, or -1 with the reason in why. */
struct stat;
int spool_read(struct spool *sp, const char *name, size_t max, struct strbuf *out,
               struct strbuf *why, struct stat *st);

/* spool_archive - moves an ingested file to archive/ (keep) or unlinks it; fsyncs. */
int spool_archive(struct spool *sp, const char *name, int keep);
/* spool_reject - writes rejected/NAME.error.json (atomically) and then moves the file (or
 * directory, or symlink itself) into rejected/; fsyncs both directories. */
int spool_reject(struct spool *sp, const char *name, const char *error_json);

/* spool_watch_start - inotify on incoming/ (IN_MOVED_TO, IN_CLOSE_WRITE); the fd is for
 * an ev_io. */
int spool_watch_start(struct spool *sp);
/* spool_watch_drain - reads pending events; calls fn per wanted name; sets *overflow
 * when a rescan is needed: 1 when the kernel queue overflowed (or fn stopped the drain),
 * SPOOL_WATCH_MOVED when incoming/ itself was moved or removed (the rescan's
 * spool_refresh reopens it and says so). */
#define SPOOL_WATCH_MOVED 2
int spool_watch_drain(struct spool *sp, spool_name_fn fn, void *arg, int *overflow);

/* spool_refresh - for a daemon's rescan: each open directory fd (root, tmp/, incoming/,
 * ..., and the output directory: out_dir, or the spool's out/ when out_dir is NULL, ""
 * or SPOOL/out) is compared with what its path names now (device and inode). A
 * subdirectory removed or replaced while we ran (rm -rf, mkdir) is created again if
 * missing and reopened, and incoming/'s inotify watch moved to it; each is logged as a
 * warning. Returns 0 (nothing changed), 1 (something was reopened: the caller forgets
 * names it knew in incoming/ and rescans), or -1 when a directory cannot be reopened or
 * the spool root itself is gone or replaced (the lock is on the old one: the caller
 * stops). */
int spool_refresh(struct spool *sp, const char *out_dir);
/* spool_out_is_own - whether out_dir (the config's output directory; NULL or "" for the
 * default) is the spool's own out/, which spool_open opened, or a directory of its own. */
int spool_out_is_own(const struct spool *sp, const char *out_dir);
/* spool_refresh_out - spool_refresh for the output directory alone (two system calls
 * when nothing changed): before each output is named and opened, so an output directory
 * replaced between rescans takes the next output. 0, 1 reopened, -1 error. */
int spool_refresh_out(struct spool *sp, const char *out_dir);

/* control files: "{"action":"retry"|"cancel","ids":[..]}" or "{"action":"retry","state":"dead"}" */
int spool_control_submit(struct spool *sp, const char *json);
/* spool_control_scan - calls fn(name) for each control file; the caller reads it with
 * spool_control_read and removes it with spool_control_done after acting on it. */
int spool_control_scan(struct spool *sp, spool_name_fn fn, void *arg);
int spool_control_read(struct spool *sp, const char *name, struct strbuf *out);
int spool_control_done(struct spool *sp, const char *name);

#endif

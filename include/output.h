/* output.h - output files that appear whole or not at all: written to a hidden .part in
 * the same directory, fsynced, renamed, and the directory fsynced. Paths are relative
 * to the output directory and never leave it: each component is opened with O_NOFOLLOW,
 * so a symlink on the way is refused rather than followed. */
#ifndef SEGSPOOL_OUTPUT_H
#define SEGSPOOL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;
struct output_file;

/* OUTPUT_PATH_MAX - the longest output path, in bytes (well within PATH_MAX). */
#define OUTPUT_PATH_MAX 1024
/* OUTPUT_NAME_MAX - the longest file name: NAME_MAX less the ".NAME.part" decoration of
 * the temporary file it is written as first. */
#define OUTPUT_NAME_MAX 249

/* output_path_check - NULL when relpath is an output path output_open can create, else
 * why not (a static string, "it ..."): relative, at most OUTPUT_PATH_MAX bytes, no empty,
 * "." or ".." component, no control character or backslash, the last component not
 * hidden, each directory name at most NAME_MAX bytes and the file name short enough to
 * stay within NAME_MAX as the ".NAME.part" it is written as first. The one rule: job
 * validation and output_open both apply it. Pure. */
const char *output_path_check(const char *relpath);

/* output_default_name - appends the name of a job's output when the job named none:
 * "<op_id>-<id>.json" (jsonl: ".jsonl") for n 1 or less, else "<op_id>-<id>-<n>.json";
 * the caller tries n = 1, 2, ... while a name is taken. Pure. */
void output_default_name(struct strbuf *out, const char *op_id, int64_t id, int jsonl, int n);
/* output_default_name_op - when path has the form output_default_name gives ("OP-12.json",
 * "OP-3-2.jsonl": digits after the first '-', at the top of the output directory), the
 * length of its OP prefix (whether OP is an operation is the caller's to check); else 0.
 * Pure. */
size_t output_default_name_op(const char *path);

/* output_open - creates missing parent directories (0755) and the .part file. Returns 0,
 * or -1 with the reason appended to err. */
int output_open(int out_dir_fd, const char *relpath, struct output_file **out, struct strbuf *err);
int output_append(struct output_file *of, const void *data, size_t len);
/* output_commit - fsync, rename over the final name, fsync the directory; frees of. */
int output_commit(struct output_file *of, struct strbuf *err);
/* output_abort - removes the .part; frees of. */
void output_abort(struct output_file *of);

/* output_write - the whole file at once (open, append, commit). */
int output_write(int out_dir_fd, const char *relpath, const void *data, size_t len,
                 struct strbuf *err);

/* Batches: many outputs made durable together (two syncfs calls for the batch). A staged
 * output is complete on disk as a hidden .part; output_batch_commit renames them all. */
struct output_batch;
struct output_batch *output_batch_new(void);
size_t output_batch_count(const struct output_batch *b);
/* output_stage - closes of and hands it to the batch, with the caller's tag (e.g. a job
 * id, non-zero); -1 (of aborted) if a write failed. */
int output_stage(struct output_batch *b, struct output_file *of, int64_t tag, struct strbuf *err);
/* output_keep_existing - of is put in place only if its name is still free when the
 * batch commits (a default name chosen earlier: a file that appeared since is never
 * replaced); otherwise it fails, reported by output_batch_commit. */
void output_keep_existing(struct output_file *of);
/* output_batch_claimant - the tag of a staged output whose path is relpath, or a
 * directory on relpath's way, or below relpath (two such files cannot both be put in
 * place); 0 when none. */
int64_t output_batch_claimant(const struct output_batch *b, const char *relpath);
/* output_failed_fn - one staged output that could not be put in place, and why. */
typedef void (*output_failed_fn)(int64_t tag, const char *why, void *arg);
/* output_batch_commit - puts every staged output in place; one that cannot be is removed
 * and reported to failed (the others still land). Returns how many failed. */
int output_batch_commit(struct output_batch *b, output_failed_fn failed, void *arg);
void output_batch_free(struct output_batch *b);

/* output_sweep_parts - removes hidden .part files (a crash's leftovers) anywhere in the
 * output tree; only the daemon holding the spool lock may call it. Returns how many. */
int output_sweep_parts(int out_dir_fd);

/* output_check_dirs - the directories on relpath's way that exist are real directories,
 * not symlinks (what a job is checked against at ingest). 0 or -1 with reason in err. */
int output_check_dirs(int out_dir_fd, const char *relpath, struct strbuf *err);

#endif

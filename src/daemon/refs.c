/* refs.c - jobs that wait for jobs: at ingest, the file's "after" keys and references
 * checked (in the file or in the store) and recorded as the store's dependencies; at
 * claim, each {"$ref"} replaced by the value at its pointer in the stored result of the
 * job it names, the values kept for the attempt. */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "job.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

struct known_arg {
	struct store *st;
	int failed;
};

/* known_in_store - job_list_check_refs's question: is a job with this key recorded? */
static int known_in_store(const char *key, void *arg)
{
	struct known_arg *k = arg;
	int rc = store_key_recorded(k->st, key);
	if (rc < 0)
		k->failed = 1;
	return rc > 0;
}

/* stored_op - job_list_check_stored_refs's question: the operation of the stored job. */
static const struct op_def *stored_op(const char *key, void *arg)
{
	struct known_arg *k = arg;
	char *op_id = NULL;
	int rc = store_key_op(k->st, key, &op_id);
	const struct op_def *op = rc > 0 ? catalog_find(op_id) : NULL;
	if (rc < 0)
		k->failed = 1;
	free(op_id);
	return op;
}

/* refs_check_file - see daemon_int.h. */
int refs_check_file(struct daemon *d, struct job_list *list)
{
	struct known_arg k = {d->st, 0};
	int any = 0;
	for (size_t i = 0; i < list->njobs && !any; i++)
		any = list->jobs[i].nafter != 0;
	if (any && job_list_check_refs(list, known_in_store, &k) == 0 && !k.failed)
		job_list_check_stored_refs(list, stored_op, &k);
	return k.failed ? -1 : 0;
}

/* refs_record - see daemon_int.h. */
int refs_record(struct daemon *d, const struct job_list *list, const int64_t *ids, int64_t now)
{
	int64_t *deps = NULL;
	size_t alloc = 0;
	int rc = 0;
	for (size_t i = 0; i < list->njobs && rc == 0; i++) {
		const struct job *j = &list->jobs[i];
		size_t n = 0;
		if (!j->nafter || !ids[i])
			continue; /* waits for nothing, or already recorded (its key was) */
		if (j->nafter > alloc) {
			alloc = j->nafter;
			deps = xrealloc(deps, alloc * sizeof(*deps));
		}
		for (size_t m = 0; m < j->nafter && rc == 0; m++) {
			int found = store_job_id_by_key(d->st, j->after[m], &deps[n]);
			if (found < 0)
				rc = -1;
			else if (found)
				n++;
			else
				rc = error("job %zu waits for key \"%s\", which no job has", i,
				           j->after[m]);
		}
		if (rc == 0)
			rc = store_deps_add(d->st, ids[i], deps, n, now);
	}
	free(deps);
	return rc;
}

/* ref_fail - the job ends failed: a reference could not be put in. */
static void ref_fail(struct run *r, const struct job_ref *ref, const char *why)
{
	struct strbuf msg = STRBUF_INIT;
	sb_addf(&msg, "reference %s#%s in params%s: %s", ref->key, ref->pointer, ref->param_pointer,
	        why);
	char *ej = error_json("ReferenceError", msg.buf, 0);
	end_job(r, JS_FAILED, ej, msg.buf);
	free(ej);
	sb_release(&msg);
}

/* result_of - the stored result of the job keyed key, parsed (NULL with why said). */
static cJSON *result_of(struct run *r, const char *key, struct strbuf *why)
{
	enum job_state state = JS_QUEUED;
	char *text = NULL;
	int64_t id = 0;
	int rc = store_key_result(r->d->st, key, &id, &state, &text);
	cJSON *v = NULL;
	if (rc < 0)
		sb_addf(why, "cannot read the result: %s", store_errmsg(r->d->st));
	else if (rc > 0)
		sb_adds(why, "no job has this key");
	else if (state != JS_SUCCEEDED || !text)
		sb_addf(why, "job %lld is %s, without a result", (long long)id,
		        job_state_name(state));
	else if (!(v = cJSON_Parse(text)))
		sb_addf(why, "the result of job %lld cannot be read", (long long)id);
	free(text);
	return v;
}

/* refs_resolve - see daemon_int.h. */
int refs_resolve(struct run *r)
{
	struct strbuf why = STRBUF_INIT;
	cJSON *resolved = cJSON_CreateObject(), *result = NULL;
	const char *result_key = NULL;
	int rc = 0;
	if (!resolved)
		die("out of memory");
	/* ref_fail ends the job, which frees the run: nothing of r is read after it */
	for (size_t i = 0; i < r->job.nrefs; i++) {
		const struct job_ref *ref = &r->job.refs[i];
		if (!result_key || strcmp(result_key, ref->key)) {
			cJSON_Delete(result);
			result_key = ref->key;
			result = result_of(r, ref->key, &why);
		}
		const cJSON *v = result ? job_pointer_get(result, ref->pointer, &why) : NULL;
		if (!v || job_ref_put(&r->job, ref, v) < 0) {
			ref_fail(r, ref, v ? "its place in params is not a reference" : why.buf);
			rc = -1;
			break;
		} else {
			cJSON *copy = cJSON_Duplicate(v, 1);
			if (!copy)
				die("out of memory");
			cJSON_AddItemToObject(resolved, ref->param_pointer, copy);
		}
	}
	if (rc == 0 && job_params_problem(&r->job, &why) < 0) {
		struct strbuf msg = STRBUF_INIT;
		sb_addf(&msg, "a referenced value does not fit its parameter: %s", why.buf);
		char *ej = error_json("ReferenceError", msg.buf, 0);
		end_job(r, JS_FAILED, ej, msg.buf);
		free(ej);
		sb_release(&msg);
		rc = -1;
	}
	if (rc == 0) {
		free(r->resolved);
		r->resolved = cJSON_PrintUnformatted(resolved);
	}
	cJSON_Delete(result);
	cJSON_Delete(resolved);
	sb_release(&why);
	return rc;
}

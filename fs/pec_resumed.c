/* pec_resumed.c - RUN/.pec/resumed: a trainer that restarts from a sealed version writes
 * {"version": "<name>"} there, and the run's plt_spent grows by the PLT of a restart from that
 * version (the paper's accumulated PLT; the plan's dynamic-K weighs it). Restarts are kept in one 'P'
 * record per run: {"format": 1, "plt_spent": x, "restarts": [{"version", "plt", "unix_ns"}, ...]}.
 * A restart from a version whose token counts are not all known adds nothing (its "plt" is null).
 * Reading the file returns the record. A rejected declaration changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "compose.h"

#define RESTARTS_MAX 100000  /* restarts kept per run: far beyond any real run, bounds the record */

/* The run's restart record as JSON (a new empty one when there is none). */
static int restarts_load(struct fs_ctx *ctx, uint64_t run_ino, json_t **out)
{
	char *text;
	size_t len;
	json_error_t jerr;
	int rc = meta_get_restarts(ctx->meta, run_ino, &text, &len);

	*out = NULL;
	if (rc == -ENOENT) {
		*out = json_pack("{s:i, s:f, s:[]}", "format", 1, "plt_spent", 0.0, "restarts");
		return *out ? 0 : -ENOMEM;
	}
	if (rc < 0)
		return rc;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!o || !json_is_number(json_object_get(o, "plt_spent")) ||
	    !json_is_array(json_object_get(o, "restarts"))) {
		pecfs_log_error("restart record of run %llu unreadable: %s", (unsigned long long)run_ino,
				o ? "missing members" : jerr.text);
		json_decref(o);
		return -EIO;
	}
	*out = o;
	return 0;
}

int pec_resumed_spent(struct fs_ctx *ctx, uint64_t run_ino, double *out)
{
	json_t *o;
	int rc = restarts_load(ctx, run_ino, &o);

	*out = 0.0;
	if (rc < 0)
		return rc;
	*out = json_number_value(json_object_get(o, "plt_spent"));
	json_decref(o);
	return 0;
}

int pecgen_resumed(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len)
{
	json_t *o;
	int rc = restarts_load(ctx, run_ino, &o);

	if (rc < 0)
		return rc;
	char *text = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
	json_decref(o);
	return text ? pecgen_with_newline(text, out, len) : -ENOMEM;
}

/* The version named name in the run, which must be sealed (or incomplete: sealed with a unit
 * missing, still restorable). */
static int find_sealed(struct fs_ctx *ctx, uint64_t run_ino, const char *name, uint64_t *vino)
{
	struct fs_version *vs = NULL;
	size_t n = 0;
	int rc = fs_versions_sorted(ctx, run_ino, &vs, &n);

	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(vs[i].name, name) != 0)
			continue;
		if (vs[i].v.state == META_VERSION_SEALED || vs[i].v.state == META_VERSION_INCOMPLETE) {
			*vino = vs[i].v.ino;
			rc = 0;
		} else {
			rc = -EINVAL;
		}
		break;
	}
	free(vs);
	return rc;
}

/* The declared version name from the written text: exactly {"version": "<name>"}. */
static int parse_declaration(const char *json, size_t len, const char **name, json_t **doc)
{
	json_error_t jerr;
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!o || !json_is_object(o) || json_object_size(o) != 1 ||
	    !json_is_string(json_object_get(o, "version")) ||
	    json_string_length(json_object_get(o, "version")) == 0 ||
	    json_string_length(json_object_get(o, "version")) > META_NAME_MAX) {
		json_decref(o);
		return -EINVAL;
	}
	*name = json_string_value(json_object_get(o, "version"));
	*doc = o;
	return 0;
}

int pec_resumed_submit(struct fs_ctx *ctx, uint64_t run_ino, const char *json, size_t len)
{
	struct pec_composition *c = NULL;
	struct meta_batch *b = NULL;
	json_t *decl = NULL, *rec = NULL, *entry = NULL;
	const char *name;
	char *text = NULL;
	uint64_t vino = 0;
	int rc = parse_declaration(json, len, &name, &decl);

	if (rc < 0) {
		pecfs_log_warn("restart declaration for run %llu rejected: want {\"version\": \"<name>\"}",
			       (unsigned long long)run_ino);
		return rc;
	}
	if ((rc = find_sealed(ctx, run_ino, name, &vino)) < 0) {
		pecfs_log_warn("restart declaration for run %llu rejected: version %s %s", (unsigned long long)run_ino,
			       name, rc == -ENOENT ? "does not exist" : "is not sealed");
		goto out;
	}
	if ((rc = fs_compose_load(ctx, vino, &c)) < 0)
		goto out;
	bool known = c && c->tokens_known && c->top_k > 0;
	double plt = known ? c->plt : 0.0;

	pthread_mutex_lock(&ctx->ns_lock);
	rc = restarts_load(ctx, run_ino, &rec);
	json_t *list = rec ? json_object_get(rec, "restarts") : NULL;
	if (rc == 0 && json_array_size(list) >= RESTARTS_MAX)
		rc = -ENOSPC;
	if (rc == 0) {
		entry = json_pack("{s:s, s:o, s:I}", "version", name, "plt", known ? json_real(plt) : json_null(),
				  "unix_ns", (json_int_t)fs_now_ns());
		double spent = json_number_value(json_object_get(rec, "plt_spent")) + plt;
		if (!entry || json_array_append_new(list, entry) < 0 ||
		    json_object_set_new(rec, "plt_spent", json_real(spent)) < 0)
			rc = -ENOMEM;
		entry = NULL;
	}
	if (rc == 0 && !(text = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(17))))
		rc = -ENOMEM;
	if (rc == 0 && !(b = meta_batch_new()))
		rc = -ENOMEM;
	if (rc == 0) {
		meta_batch_put_restarts(b, run_ino, text, strlen(text));
		rc = meta_batch_commit(ctx->meta, b, true);
	}
	pthread_mutex_unlock(&ctx->ns_lock);
	if (rc == 0)
		pecfs_log_info("run %llu resumed from %s: PLT %s%.6f", (unsigned long long)run_ino, name,
			       known ? "" : "unknown, counted as ", plt);
out:
	meta_batch_free(b);
	free(text);
	json_decref(rec);
	json_decref(decl);
	pec_composition_free(c);
	return rc;
}

/* pecgen.c - content of the .pec virtual files: /.pec/stats (JSON), RUN/.pec/versions (JSON) and the
 * RUN/.pec/latest link target (/.pec/metrics is metrics.c).
 *
 * Figures come from the store, the data module and the version records. logical_bytes is the
 * metadata layer's running count of the inode records' sizes (files being written count with the
 * size last written back; meta_logical_bytes), so no read scans anything. dedup_ratio is logical_bytes / stored_bytes over the whole data
 * folder (1.0 when nothing is stored): what the namespace holds against what the disk holds.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "tier_status.h"


int pecgen_gather(struct fs_ctx *ctx, struct pecgen_figures *f)
{
	memset(f, 0, sizeof(*f));
	fs_versions_count(ctx, &f->runs, &f->versions, &f->sealed_versions);
	f->logical_bytes = meta_logical_bytes(ctx->meta);
	store_get_stats(ctx->st, &f->ss);
	data_get_stats(ctx->dc, &f->ds);
	pthread_mutex_lock(&ctx->table_lock);
	f->inodes_loaded = ctx->ninodes;
	pthread_mutex_unlock(&ctx->table_lock);
	f->dedup_ratio = f->ss.stored_bytes ? (double)f->logical_bytes / (double)f->ss.stored_bytes : 1.0;
	return 0;
}

static int dump(json_t *root, char **out, size_t *len)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	/* A trailing newline, so `cat` leaves the prompt on its own line. */
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*out = t;
	*len = n + 1;
	return 0;
}

int pecgen_stats_json(struct fs_ctx *ctx, char **out, size_t *len)
{
	struct pecgen_figures f;
	int rc = pecgen_gather(ctx, &f);
	if (rc < 0)
		return rc;
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "data_dir", json_string(store_data_dir(ctx->st)));
	json_object_set_new(o, "chunk_size", json_integer(ctx->chunk_size));
	json_object_set_new(o, "runs", json_integer((json_int_t)f.runs));
	json_object_set_new(o, "versions", json_integer((json_int_t)f.versions));
	json_object_set_new(o, "sealed_versions", json_integer((json_int_t)f.sealed_versions));
	json_object_set_new(o, "logical_bytes", json_integer((json_int_t)f.logical_bytes));
	json_object_set_new(o, "bytes_written", json_integer((json_int_t)f.ds.bytes_written));
	json_object_set_new(o, "bytes_linked", json_integer((json_int_t)f.ds.bytes_linked));
	json_object_set_new(o, "chunks_linked", json_integer((json_int_t)f.ds.chunks_linked));
	json_object_set_new(o, "bytes_read", json_integer((json_int_t)f.ds.bytes_read));
	json_object_set_new(o, "stored_bytes", json_integer((json_int_t)f.ss.stored_bytes));
	json_object_set_new(o, "chunks", json_integer((json_int_t)f.ss.chunks));
	json_object_set_new(o, "dedup_ratio", json_real(f.dedup_ratio));
	json_object_set_new(o, "dedup_hits", json_integer((json_int_t)f.ss.dedup_hits));
	json_object_set_new(o, "corrupt_reads", json_integer((json_int_t)f.ss.corrupt_reads));
	json_object_set_new(o, "write_errors", json_integer((json_int_t)f.ds.write_errors));
	json_object_set_new(o, "free_disk_bytes", json_integer((json_int_t)f.ss.free_disk_bytes));
	json_object_set_new(o, "write_buffers_in_use", json_integer(f.ds.buffers_in_use));
	json_object_set_new(o, "inodes_loaded", json_integer((json_int_t)f.inodes_loaded));
	uint64_t gc_runs, gc_freed;
	fs_autogc_figures(ctx, &gc_runs, &gc_freed);
	json_object_set_new(o, "garbage_bytes", json_integer((json_int_t)store_garbage_bytes(ctx->st)));
	json_object_set_new(o, "gc_background_runs", json_integer((json_int_t)gc_runs));
	json_object_set_new(o, "gc_background_freed_bytes", json_integer((json_int_t)gc_freed));
	tier_status_stats_json(ctx->tier, o);
	return dump(o, out, len);
}

static json_t *json_u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

int pecgen_versions_json(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len)
{
	struct meta_inode run;
	struct fs_version *vs;
	size_t n;
	int rc = meta_get_inode(ctx->meta, run_ino, &run);
	if (rc < 0)
		return rc;
	rc = fs_versions_sorted(ctx, run_ino, &vs, &n);
	if (rc < 0)
		return rc;
	long latest = fs_versions_latest(vs, n);
	json_t *o = json_object(), *arr = json_array();
	json_object_set_new(o, "run", json_string(run.name));
	json_object_set_new(o, "latest", latest >= 0 ? json_string(vs[latest].name) : json_null());
	for (size_t i = 0; i < n; i++) {
		struct meta_version *v = &vs[i].v;
		/* Sealed versions show the figures counted at seal; open ones their tally's, kept by
		 * every commit (stored bytes cover what is already stored, not what is still buffered). */
		if (v->state == META_VERSION_OPEN)
			fs_version_live_counts(ctx, v->ino, v);
		json_t *e = json_object();
		char when[32];
		json_object_set_new(e, "name", json_string(vs[i].name));
		json_object_set_new(e, "order", json_u64(i + 1));
		json_object_set_new(e, "state", json_string(fs_version_state_name(v->state)));
		json_object_set_new(e, "step", v->step >= 0 ? json_integer(v->step) : json_null());
		json_object_set_new(e, "files", json_u64(v->files));
		json_object_set_new(e, "logical_bytes", json_u64(v->logical_bytes));
		json_object_set_new(e, "stored_bytes", json_u64(v->stored_bytes));
		tier_status_version_json(ctx->tier, v, e);
		if (v->sealed_ns) {
			time_t t = (time_t)(v->sealed_ns / 1000000000);
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			json_object_set_new(e, "sealed_at", json_string(when));
		} else {
			json_object_set_new(e, "sealed_at", json_null());
		}
		json_array_append_new(arr, e);
	}
	json_object_set_new(o, "versions", arr);
	free(vs);
	return dump(o, out, len);
}

int pecgen_latest(struct fs_ctx *ctx, uint64_t run_ino, char *buf, size_t size)
{
	struct fs_version *vs;
	size_t n;
	int rc = fs_versions_sorted(ctx, run_ino, &vs, &n);
	if (rc < 0)
		return rc;
	long latest = fs_versions_latest(vs, n);
	if (latest < 0)
		rc = -ENOENT;
	else if ((size_t)snprintf(buf, size, "../%s", vs[latest].name) >= size)
		rc = -ERANGE;
	free(vs);
	return rc < 0 ? rc : (int)strlen(buf);
}

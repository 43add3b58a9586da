/* pecgen.c - content of the .pec virtual files: /.pec/stats (JSON), /.pec/metrics (Prometheus text
 * format), RUN/.pec/versions (JSON) and the RUN/.pec/latest link target.
 *
 * Figures come from the store, the data module and the version records. logical_bytes is computed by
 * a scan of the inode records (files being written count with the size last written back), one pass
 * over the inodes per read. dedup_ratio is logical_bytes / stored_bytes over the whole data
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

struct figures {
	uint64_t runs, versions, sealed_versions, logical_bytes;
	struct store_stats ss;
	struct data_stats ds;
	double dedup_ratio;
};

static int sum_sizes(const struct meta_inode *mi, void *arg)
{
	if (S_ISREG(mi->mode) && mi->nlink > 0)
		*(uint64_t *)arg += mi->size;
	return 0;
}

static int gather(struct fs_ctx *ctx, struct figures *f)
{
	memset(f, 0, sizeof(*f));
	fs_versions_count(ctx, &f->runs, &f->versions, &f->sealed_versions);
	int rc = meta_foreach_inode(ctx->meta, sum_sizes, &f->logical_bytes);
	if (rc < 0)
		return rc;
	store_get_stats(ctx->st, &f->ss);
	data_get_stats(ctx->dc, &f->ds);
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
	struct figures f;
	int rc = gather(ctx, &f);
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
	tier_status_stats_json(ctx->tier, o);
	return dump(o, out, len);
}

struct metric {
	const char *name, *type, *help;
	double value;
};

int pecgen_metrics(struct fs_ctx *ctx, char **out, size_t *len)
{
	struct figures f;
	int rc = gather(ctx, &f);
	if (rc < 0)
		return rc;
	const struct metric m[] = {
		{ "pecfs_chunk_size_bytes", "gauge", "Chunk size of the data folder.", ctx->chunk_size },
		{ "pecfs_runs", "gauge", "Run directories.", (double)f.runs },
		{ "pecfs_versions", "gauge", "Version directories.", (double)f.versions },
		{ "pecfs_sealed_versions", "gauge", "Sealed (or damaged) versions.", (double)f.sealed_versions },
		{ "pecfs_logical_bytes", "gauge", "Sum of the sizes of all files.", (double)f.logical_bytes },
		{ "pecfs_written_bytes_total", "counter", "Bytes accepted by writes since mount.",
		  (double)f.ds.bytes_written },
		{ "pecfs_linked_bytes_total", "counter", "Bytes declared by reference writes since mount.",
		  (double)f.ds.bytes_linked },
		{ "pecfs_linked_chunks_total", "counter", "Chunks linked by reference writes since mount.",
		  (double)f.ds.chunks_linked },
		{ "pecfs_read_bytes_total", "counter", "Bytes returned by reads since mount.", (double)f.ds.bytes_read },
		{ "pecfs_stored_bytes", "gauge", "Payload bytes of the stored chunks.", (double)f.ss.stored_bytes },
		{ "pecfs_chunks", "gauge", "Stored chunks.", (double)f.ss.chunks },
		{ "pecfs_dedup_ratio", "gauge", "Logical bytes per stored byte.", f.dedup_ratio },
		{ "pecfs_dedup_hits_total", "counter", "Chunk puts that found the chunk already stored.",
		  (double)f.ss.dedup_hits },
		{ "pecfs_corrupt_reads_total", "counter", "Reads refused because a chunk failed its checksum.",
		  (double)f.ss.corrupt_reads },
		{ "pecfs_write_errors_total", "counter", "Failed background chunk stores.", (double)f.ds.write_errors },
		{ "pecfs_free_disk_bytes", "gauge", "Free space on the data disk.", (double)f.ss.free_disk_bytes },
		{ "pecfs_write_buffers_in_use", "gauge", "Chunk write buffers in use.", (double)f.ds.buffers_in_use },
		{ "pecfs_write_buffers", "gauge", "Chunk write buffers in the pool.", (double)f.ds.buffers_total },
	};
	size_t cap = 8192, used = 0;
	char *s = malloc(cap);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		int n = snprintf(s + used, cap - used, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", m[i].name,
				 m[i].help, m[i].name, m[i].type, m[i].name, m[i].value);
		if (n < 0 || (size_t)n >= cap - used) {
			free(s);
			return -ENOMEM;
		}
		used += (size_t)n;
	}
	*out = s;
	*len = used;
	return 0;
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
		/* Sealed versions show the figures counted at seal; open ones are counted now (stored
		 * bytes cover what is already stored, not what is still buffered). */
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

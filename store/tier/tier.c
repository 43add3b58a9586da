/* tier.c - attaching the S3 tier to a store: tier_open and tier_close (the client, the read-ahead
 * workers and the uploader thread), the store_remote callbacks that route reads of absent chunks
 * here, the hook told of committed versions, and the status figures.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_impl.h"

/* What tier_open allocated; the threads are stopped (or never started). */
static void tier_free(struct tier *t)
{
	s3_client_free(t->client);
	tier_lru_free(t->lru);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->commit_lock);
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->fetched);
	free(t->vfail);
	free(t->short_counts);
	tier_node_pub_free(&t->pub);
	free(t);
}

/* The store_remote callbacks: the store reads through these once the tier is attached. */
static int remote_read_held(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	return tier_prefetch_read(ctx, d, off, dst, len);
}

static int remote_read_through(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	return tier_read_through(ctx, d, off, dst, len);
}

static void remote_touch(void *ctx, const struct digest *d)
{
	tier_prefetch_note_read(ctx, d);  /* a prefetched chunk's first read is a hit */
	tier_cache_touch(ctx, d);
}

int tier_open(struct store *st, const struct tier_options *opt, struct tier **out, char *err, size_t errsz)
{
	struct meta_super sb;
	struct tier *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->st = st;
	t->meta = store_meta(st);
	t->threads = opt->upload_threads ? opt->upload_threads : 8;
	t->nodes = opt->nodes ? opt->nodes : 1;
	t->bandwidth = opt->upload_bandwidth;
	t->pack_size = opt->pack_size;
	t->cache_size = opt->cache_size;
	t->cache_min_free = opt->cache_min_free;
	t->log = opt->log;
	t->log_ctx = opt->log_ctx;
	if (opt->persist)
		t->persist = *opt->persist;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->commit_lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	pthread_cond_init(&t->fetched, NULL);
	if (t->cache_size || t->cache_min_free > 0) {
		rc = tier_lru_new(&t->lru);
		if (rc < 0)
			goto out_err;
	}
	/* Connections: the upload workers, the uploader's own requests, demand reads and read-ahead. */
	rc = tier_client_new(opt, t->threads + 2 + (opt->prefetch < 32 ? (opt->prefetch + 1) / 2 : 16), tier_s3_log, t,
			     &t->client, t->bucket, t->prefix, err, errsz);
	if (rc < 0)
		goto out_err;
	snprintf(t->uri, sizeof(t->uri), "%s", opt->uri);
	if (opt->node_id && opt->node_id[0]) {
		if (strlen(opt->node_id) >= sizeof(t->node_id) || strpbrk(opt->node_id, "/\\ ") != NULL ||
		    !tier_manifest_name_ok(opt->node_id)) {
			snprintf(err, errsz, "node-id: '%.80s' must be under 64 characters without '/' or spaces, "
				 "and not '.', '..' or '.pec'", opt->node_id);
			rc = -EINVAL;
			goto out_err;
		}
		snprintf(t->node_id, sizeof(t->node_id), "%s", opt->node_id);
	} else {
		rc = meta_get_super(t->meta, &sb);
		if (rc < 0) {
			snprintf(err, errsz, "cannot read the data folder's node id: %s", strerror(-rc));
			goto out_err;
		}
		for (int i = 0; i < 16; i++)
			snprintf(t->node_id + 2 * i, 3, "%02x", sb.node_id[i]);
	}
	snprintf(t->status.uri, sizeof(t->status.uri), "%s", t->uri);
	snprintf(t->status.node_id, sizeof(t->status.node_id), "%s", t->node_id);
	t->rate_t_ns = tier_now_ns();
	rc = tier_prefetch_start(t, opt->prefetch);
	if (rc < 0) {
		snprintf(err, errsz, "cannot start the read-ahead threads: %s", strerror(-rc));
		goto out_err;
	}
	t->remote = (struct store_remote){ .read_held = remote_read_held, .read_through = remote_read_through,
					   .touch = remote_touch, .ctx = t };
	if (store_attach_remote(st, &t->remote) < 0) {
		tier_prefetch_stop(t);
		snprintf(err, errsz, "the store already has an S3 tier");
		rc = -EEXIST;
		goto out_err;
	}
	rc = -pthread_create(&t->uploader, NULL, tier_upload_main, t);
	if (rc < 0) {
		store_detach_remote(st);
		tier_prefetch_stop(t);
		snprintf(err, errsz, "cannot start the uploader: %s", strerror(-rc));
		goto out_err;
	}
	*out = t;
	return 0;

out_err:
	tier_free(t);
	return rc;
}

void tier_close(struct tier *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stopping, true);
	pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->uploader, NULL);
	tier_prefetch_stop(t);
	if (t->persist.free)
		t->persist.free(t->persist.ctx);  /* the only user of the hook was the uploader */
	store_detach_remote(t->st);
	tier_free(t);
}

void tier_set_commit_hook(struct tier *t, void (*fn)(void *arg, uint64_t run_ino, uint64_t version_ino),
			  void *arg)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->commit_lock);  /* waits for a call in progress */
	t->commit_fn = fn;
	t->commit_arg = arg;
	pthread_mutex_unlock(&t->commit_lock);
}

void tier_note_committed(struct tier *t, uint64_t run_ino, uint64_t version_ino)
{
	pthread_mutex_lock(&t->commit_lock);
	if (t->commit_fn)
		t->commit_fn(t->commit_arg, run_ino, version_ino);
	pthread_mutex_unlock(&t->commit_lock);
}

int tier_get_status(struct tier *t, struct tier_status *out)
{
	int64_t now;

	if (!t)
		return -ENODEV;
	pthread_mutex_lock(&t->lock);
	now = tier_now_ns();
	/* The rate over the time since the previous look (at least a second, at most a minute). */
	if (now - t->rate_t_ns >= 1000000000) {
		double dt = (double)(now - t->rate_t_ns) / 1e9;
		t->status.rate_bytes_per_s = (double)(t->status.bytes_uploaded - t->rate_bytes) / dt;
		t->rate_bytes = t->status.bytes_uploaded;
		t->rate_t_ns = now;
	}
	*out = t->status;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int tier_get_request_metrics(struct tier *t, struct s3_client_stats *stats, struct s3_client_metrics *m)
{
	if (!t)
		return -ENODEV;
	s3_client_get_stats(t->client, stats);
	memset(m, 0, sizeof(*m));
	s3_client_add_metrics(t->client, m);
	return 0;
}

int tier_version_status(struct tier *t, uint64_t run_ino, uint64_t version_ino, uint64_t *uploaded_bytes,
			bool *uploaded)
{
	struct meta_upload r;

	if (!t)
		return -ENODEV;
	*uploaded = false;
	*uploaded_bytes = 0;
	if (meta_get_upload(t->meta, run_ino, version_ino, &r) == 0) {
		*uploaded = r.committed_ns != 0;  /* 0: our part is up, COMMIT waits for other nodes */
		*uploaded_bytes = r.uploaded_bytes;
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	if (t->cur_run == run_ino && t->cur_ino == version_ino)
		*uploaded_bytes = t->cur_bytes;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

unsigned tier_version_error(struct tier *t, uint64_t run_ino, uint64_t version_ino, char *error, size_t errsz)
{
	unsigned attempts = 0;

	if (errsz)
		error[0] = '\0';
	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nvfail; i++)
		if (t->vfail[i].run == run_ino && t->vfail[i].ino == version_ino) {
			attempts = t->vfail[i].attempts;
			snprintf(error, errsz, "%s", t->vfail[i].error);
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return attempts;
}

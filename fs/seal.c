/* seal.c - sealing a version: flush every file, compose it (compose.c: inherited expert files and
 * the manifest go into the seal's synced batch), count, record, sync, then apply the run's retention
 * (retain.c). Also the seal triggers that are not `pecfs seal`: the framework's tracker file and the
 * first file created in a newer version (renaming into place is rename.c). `pecfs seal` and the
 * tracker first have the kernel write back pages stored through shared mappings. Every trigger hands
 * the seal's error back to the operation that fired it, which fails with it: the application learns
 * that the version it thinks complete is not durable (README, "Versions").
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "version_name.h"
#include "compose.h"
#include "tier_manifest.h"

int fs_version_seal_locked(struct fs_ctx *ctx, uint64_t vino, const char *why)
{
	struct fs_version fv;
	struct fs_inode **files = NULL;
	size_t n = 0;
	struct meta_batch *b = NULL;
	struct fs_compose comp;
	struct timespec t0, t1;
	int rc;

	if (fs_version_get(ctx, vino, &fv) < 0)
		return -EINVAL;
	if (fv.v.state != META_VERSION_OPEN)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	fs_version_seal_gate_close(ctx, vino);
	rc = fs_inode_loaded_files(ctx, vino, &files, &n);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rc = data_flush(files[i]->df);
		if (rc < 0) {
			pecfs_log_error("seal of version %s: cannot store inode %llu: %s", fv.name,
			       (unsigned long long)files[i]->ino, strerror(-rc));
			goto out;
		}
	}
	b = meta_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out;
	}
	/* Only records that changed: a batch of inode records commits alone (store/meta.c), and the
	 * files of a version are mostly closed, their records written, by the time it is sealed. */
	for (size_t i = 0; i < n; i++)
		if (fs_inode_dirty(files[i]))
			fs_inode_persist_locked(ctx, files[i], b);
	rc = meta_batch_commit(ctx->meta, b, false);
	if (rc < 0)
		goto out;
	rc = fs_compose_seal(ctx, &fv, b, &comp);
	if (rc < 0)
		goto out;
	rc = fs_version_count(ctx, vino, &comp, &fv.v);
	if (rc < 0) {
		fs_compose_done(ctx, &comp, false);
		goto out;
	}
	char job[TIER_JOB_MAX + 1];
	pec_runcfg_job(ctx, fv.v.run_ino, job);
	if (job[0])  /* which job sealed it: the S3 commit barrier counts the parts of one job */
		meta_batch_put_xattr(b, vino, TIER_JOB_XATTR, job, strlen(job));
	uint64_t seq = ctx->sb.next_seq++;
	fv.v.state = comp.state;
	fv.v.seal_seq = seq;
	fv.v.sealed_ns = fs_now_ns();
	meta_batch_put_version(b, &fv.v);
	meta_batch_put_super(b, &ctx->sb);
	rc = meta_batch_commit(ctx->meta, b, true);
	fs_compose_done(ctx, &comp, rc == 0);
	if (rc < 0) {
		ctx->sb.next_seq--;
		goto out;
	}
	fs_version_update(ctx, &fv.v);
	meta_tally_untrack(ctx->meta, vino);  /* its figures are fixed now */
	pecfs_log_info("sealed %s (%s): %s, %llu files, %llu bytes, %llu stored", fv.name, why,
		       fs_version_state_name(fv.v.state), (unsigned long long)fv.v.files,
		       (unsigned long long)fv.v.logical_bytes, (unsigned long long)fv.v.stored_bytes);
out:
	fs_version_seal_gate_open(ctx, vino);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fs_metrics_seal(ctx, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, rc == 0);
	if (rc == 0) {
		fs_retain_run(ctx, fv.v.run_ino);
		if (ctx->tier)
			tier_note_sealed(ctx->tier);
	}
	if (rc < 0) {
		/* Records persisted above but not sealed: mark them dirty so they are written again. */
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&files[i]->lock);
			files[i]->meta_dirty = true;
			pthread_mutex_unlock(&files[i]->lock);
		}
		pecfs_log_error("seal of version %s failed: %s", fv.name, strerror(-rc));
	}
	for (size_t i = 0; i < n; i++)
		fs_inode_put(ctx, files[i]);
	free(files);
	meta_batch_free(b);
	return rc;
}

/* Bytes stored through a shared mapping sit in the kernel's page cache until it writes the pages back
 * (msync, fsync, close, munmap, or its own writeback some seconds later), so a seal would miss them.
 * Before a seal, ask the kernel to invalidate the cache of every file of the version that is open
 * for writing (only those can be mapped shared and writable): it first writes each dirty page back
 * as a FUSE write, which other request threads serve, and returns once they are done. So it must
 * run without ns_lock and outside the version's write gate, which those writes take (a truncate
 * that holds the kernel's writes back waits for ns_lock too). A store that races with the seal may
 * still land after it: that write is refused (EROFS), which msync, fsync or close report. */
void fs_version_write_back_mapped(struct fs_ctx *ctx, uint64_t vino)
{
	struct fs_inode **files = NULL;
	size_t n = 0, keep = 0;

	pthread_mutex_lock(&ctx->ns_lock);  /* fs_inode_loaded_files reads version_ino and nlink */
	int rc = fs_inode_loaded_files(ctx, vino, &files, &n);
	pthread_mutex_unlock(&ctx->ns_lock);
	if (rc < 0)
		return;  /* the seal itself will meet the same shortage */
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&files[i]->lock);
		bool writers = files[i]->write_count > 0;
		pthread_mutex_unlock(&files[i]->lock);
		if (writers)
			files[keep++] = files[i];
		else
			fs_inode_put(ctx, files[i]);
	}
	for (size_t i = 0; i < keep; i++) {
		/* Its result is not needed: -ENOENT means the kernel holds no pages of the file, and a
		 * write-back the daemon fails is reported to the application by msync or fsync. */
		fuse_lowlevel_notify_inval_inode(ctx->se, files[i]->ino, 0, 0);
		fs_inode_put(ctx, files[i]);
	}
	free(files);
}

int fs_version_seal(struct fs_ctx *ctx, uint64_t vino, const char *why)
{
	fs_version_write_back_mapped(ctx, vino);
	pthread_mutex_lock(&ctx->ns_lock);
	int rc = fs_version_seal_locked(ctx, vino, why);
	pthread_mutex_unlock(&ctx->ns_lock);
	return rc;
}

static bool tracker_names(const struct fs_version *v, const char *tracker, const char *content, size_t len)
{
	return v->v.state == META_VERSION_OPEN && version_name_tracker_names(tracker, content, len, v->name);
}

int fs_version_seal_by_tracker(struct fs_ctx *ctx, uint64_t run_ino, const char *tracker,
			       const char *content, size_t len)
{
	struct fs_version *vs;
	size_t n;
	int rc = 0;

	/* First what the named versions' mapped files hold (fs_version_write_back_mapped), without ns_lock. */
	pthread_mutex_lock(&ctx->ns_lock);
	int lrc = fs_versions_sorted(ctx, run_ino, &vs, &n);
	pthread_mutex_unlock(&ctx->ns_lock);
	if (lrc < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (tracker_names(&vs[i], tracker, content, len))
			fs_version_write_back_mapped(ctx, vs[i].v.ino);
	free(vs);

	pthread_mutex_lock(&ctx->ns_lock);
	if (fs_versions_sorted(ctx, run_ino, &vs, &n) < 0) {
		pthread_mutex_unlock(&ctx->ns_lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!tracker_names(&vs[i], tracker, content, len))
			continue;
		char why[META_NAME_MAX + 16];
		snprintf(why, sizeof(why), "named by %s", tracker);
		int src = fs_version_seal_locked(ctx, vs[i].v.ino, why);
		if (src < 0 && rc == 0)
			rc = src;  /* the others named are still sealed if they can be */
	}
	free(vs);
	pthread_mutex_unlock(&ctx->ns_lock);
	return rc;
}

int fs_version_seal_older_locked(struct fs_ctx *ctx, uint64_t vino)
{
	struct fs_version self, *vs = NULL;
	size_t n = 0;
	int rc = 0;

	if (!fs_version_note_create(ctx, vino, &self))
		return 0;
	if (fs_versions_sorted(ctx, self.v.run_ino, &vs, &n) < 0)
		rc = -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (vs[i].v.state == META_VERSION_OPEN && vs[i].v.create_seq < self.v.create_seq &&
		    vs[i].open_handles == 0) {
			int src = fs_version_seal_locked(ctx, vs[i].v.ino, "a newer version was started");
			if (src < 0 && rc == 0)
				rc = src;
		}
	}
	free(vs);
	if (rc < 0)
		fs_version_unnote_create(ctx, vino);  /* not done: the next create in vino tries again */
	return rc;
}

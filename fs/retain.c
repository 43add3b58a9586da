/* retain.c - retention: after every seal, the run's keep setting (user.pec.keep, 0 = keep all) and
 * its pins (user.pec.pin on a version directory, `pecfs pin`) decide which versions stay
 * (pec_retain_select); the others are removed exactly as `rm -r` would remove them. That is safe
 * because every composition holds its own chunk references; `pecfs gc` then reclaims the chunks no
 * file references any more. With the S3 tier attached, a sealed version the tier has not committed
 * yet is held: its local copy is the only one, so neither retention nor (through its references) gc
 * may take it. Retention runs again when the tier commits a version (fs_retain_on_commit), which
 * retires what was held. The kernel is not told (a notification from inside a request that holds the
 * run directory's lock would deadlock): cached entries of a retired version expire with the
 * attribute timeout, and readdir is never cached.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pec_retain.h"
#include "compose.h"

bool fs_retain_pinned(struct fs_ctx *ctx, uint64_t vino)
{
	return meta_get_xattr(ctx->meta, vino, PEC_XATTR_PIN, NULL, 0) >= 0;
}

/* Empties directory dir, depth first. */
static int retain_rmtree(struct fs_ctx *ctx, struct fs_inode *dir)
{
	struct xc_dirents l;
	int rc = xc_list_dir(ctx, dir->ino, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		bool is_dir = S_ISDIR(l.e[i].mode);
		if (is_dir) {
			struct fs_inode *child;
			rc = fs_inode_get(ctx, l.e[i].ino, &child);
			if (rc < 0)
				break;
			rc = retain_rmtree(ctx, child);
			fs_inode_put(ctx, child);
		}
		if (rc == 0)
			rc = fs_ns_remove_locked(ctx, dir, l.e[i].name, is_dir);
	}
	xc_dirents_free(&l);
	return rc;
}

/* True while version v's only copy is local: the tier uploads sealed (and incomplete) versions, and
 * one is safe to retire once its COMMIT is in the bucket. Damaged versions are never uploaded, so
 * they are never held. Without a tier nothing is held. */
static bool retain_held(struct fs_ctx *ctx, const struct meta_version *v)
{
	uint64_t bytes;
	bool committed = false;

	if (!ctx->tier || (v->state != META_VERSION_SEALED && v->state != META_VERSION_INCOMPLETE))
		return false;
	return tier_version_status(ctx->tier, v->run_ino, v->ino, &bytes, &committed) < 0 || !committed;
}

static enum pec_vstate vstate_of(uint32_t state)
{
	switch (state) {
	case META_VERSION_OPEN: return PEC_VSTATE_OPEN;
	case META_VERSION_DAMAGED: return PEC_VSTATE_DAMAGED;
	default: return PEC_VSTATE_SEALED;
	}
}

void fs_retain_run(struct fs_ctx *ctx, uint64_t run_ino)
{
	struct pec_runcfg cfg;
	struct fs_version *vs = NULL;
	struct pec_retain_version *rv = NULL;
	struct fs_inode *run = NULL;
	bool *keep = NULL;
	size_t n = 0;
	if (pec_runcfg_load(ctx, run_ino, &cfg) < 0)
		return;
	uint32_t n_keep = cfg.keep;
	pec_runcfg_free(&cfg);
	if (n_keep == 0 || fs_versions_sorted(ctx, run_ino, &vs, &n) < 0)
		return;
	rv = calloc(n + 1, sizeof(*rv));
	keep = calloc(n + 1, sizeof(*keep));
	if (!rv || !keep || fs_inode_get(ctx, run_ino, &run) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rv[i].state = vstate_of(vs[i].v.state);
		rv[i].complete = vs[i].v.state == META_VERSION_SEALED;
		rv[i].pinned = fs_retain_pinned(ctx, vs[i].v.ino);
		rv[i].held = retain_held(ctx, &vs[i].v);
	}
	if (pec_retain_select(rv, n, n_keep, keep) == 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct fs_inode *vdir;
		if (keep[i]) {
			if (rv[i].held)
				pecfs_log_debug("retention: version %s stays until the S3 tier has committed it",
						vs[i].name);
			continue;
		}
		int rc = fs_inode_get(ctx, vs[i].v.ino, &vdir);
		if (rc == 0) {
			rc = retain_rmtree(ctx, vdir);
			fs_inode_put(ctx, vdir);
		}
		if (rc == 0)
			rc = fs_ns_remove_locked(ctx, run, vs[i].name, true);
		if (rc < 0)
			pecfs_log_error("retention: cannot remove version %s: %s", vs[i].name, strerror(-rc));
		else
			pecfs_log_info("retention: version %s retired (keep %u)", vs[i].name, n_keep);
	}
out:
	if (run)
		fs_inode_put(ctx, run);
	free(keep);
	free(rv);
	free(vs);
}

void fs_retain_on_commit(void *arg, uint64_t run_ino, uint64_t version_ino)
{
	struct fs_ctx *ctx = arg;

	(void)version_ino;
	pthread_mutex_lock(&ctx->ns_lock);
	fs_retain_run(ctx, run_ino);
	pthread_mutex_unlock(&ctx->ns_lock);
}

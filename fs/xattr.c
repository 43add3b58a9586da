/* xattr.c - extended attributes. user.* names are stored in the metadata database; user.pec.* are
 * read-only facts generated on request (files: digest, chunks, version, state, tier; version
 * directories: state, step, order) or stored by the fs (inherited files: source, staleness). Setting
 * user.pec.seal on a version directory seals it (this is how `pecfs seal` works); user.pec.pin pins
 * one (`pecfs pin`, allowed on sealed versions too); the PEC settings of a run (pec_runcfg.c) are
 * user.pec.* names on the run directory, validated when set. Other namespaces (security.*,
 * trusted.*, system.*) are not supported.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "compose.h"

#define XATTR_PREFIX_USER "user."
#define XATTR_PREFIX_PEC "user.pec."
#define XATTR_SEAL "user.pec.seal"
#define XATTR_VALUE_MAX 65536
#define XATTR_LIST_MAX 65536

static bool is_user(const char *name)
{
	return strncmp(name, XATTR_PREFIX_USER, strlen(XATTR_PREFIX_USER)) == 0;
}

static bool is_pec(const char *name)
{
	return strncmp(name, XATTR_PREFIX_PEC, strlen(XATTR_PREFIX_PEC)) == 0;
}

static const char *const file_facts[] = { "digest", "chunks", "version", "state", "tier" };
static const char *const version_facts[] = { "state", "step", "order" };

static int count_extent(const struct meta_extent *e, void *arg)
{
	(void)e;
	(*(uint64_t *)arg)++;
	return 0;
}

/* 1-based position of version vino in its run's order, or 0. */
static long version_order(struct fs_ctx *ctx, const struct fs_version *fv)
{
	struct fs_version *vs;
	size_t n;
	long order = 0;
	if (fs_versions_sorted(ctx, fv->v.run_ino, &vs, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (vs[i].v.ino == fv->v.ino)
			order = (long)i + 1;
	free(vs);
	return order;
}

/* Generates fact `fact` of ind into buf (NUL-terminated). -ENODATA if it does not apply. */
static int pec_fact(struct fs_ctx *ctx, struct fs_inode *ind, const char *fact, char *buf, size_t size)
{
	struct meta_inode mi;
	struct fs_version fv;
	fs_inode_snapshot(ind, &mi);
	bool have_version = mi.version_ino && fs_version_get(ctx, mi.version_ino, &fv) == 0;

	if (S_ISREG(mi.mode)) {
		if (strcmp(fact, "tier") == 0)
			return snprintf(buf, size, "local");
		if (strcmp(fact, "digest") == 0 || strcmp(fact, "chunks") == 0) {
			/* Facts about stored content: store what is buffered first. */
			pthread_mutex_lock(&ind->lock);
			struct data_file *df = ind->df;
			pthread_mutex_unlock(&ind->lock);
			if (df && data_file_dirty(df)) {
				int rc = data_flush(df);
				if (rc < 0)
					return rc;
			}
			if (strcmp(fact, "digest") == 0) {
				if (size < DIGEST_HEX_LEN + 1)
					return -ERANGE;
				int rc = data_content_id(ctx->dc, mi.ino, buf);
				return rc < 0 ? rc : DIGEST_HEX_LEN;
			}
			uint64_t n = 0;
			int rc = meta_get_extents(ctx->meta, mi.ino, 0, UINT64_MAX, count_extent, &n);
			return rc < 0 ? rc : snprintf(buf, size, "%" PRIu64, n);
		}
		if (!have_version)
			return -ENODATA;
		if (strcmp(fact, "version") == 0)
			return snprintf(buf, size, "%s", fv.name);
		if (strcmp(fact, "state") == 0)
			return snprintf(buf, size, "%s", fs_version_state_name(fv.v.state));
		return -ENODATA;
	}
	if (!fs_mi_is_version(&mi) || !have_version)
		return -ENODATA;
	if (strcmp(fact, "state") == 0)
		return snprintf(buf, size, "%s", fs_version_state_name(fv.v.state));
	if (strcmp(fact, "step") == 0)
		return fv.v.step < 0 ? -ENODATA : snprintf(buf, size, "%" PRId64, fv.v.step);
	if (strcmp(fact, "order") == 0)
		return snprintf(buf, size, "%ld", version_order(ctx, &fv));
	return -ENODATA;
}

static int set_locked(struct fs_ctx *ctx, struct fs_inode *ind, const char *name, const char *value,
		      size_t size, int flags)
{
	int rc = fs_version_check_writable(ctx, ind->mi.version_ino);
	if (rc < 0)
		return rc;
	int cur = meta_get_xattr(ctx->meta, ind->ino, name, NULL, 0);
	if (cur < 0 && cur != -ENODATA)
		return cur;
	if ((flags & XATTR_CREATE) && cur >= 0)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && cur < 0)
		return -ENODATA;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	if (value)
		meta_batch_put_xattr(b, ind->ino, name, value, size);
	else
		meta_batch_del_xattr(b, ind->ino, name);
	pthread_mutex_lock(&ind->lock);
	ind->mi.ctime_ns = fs_now_ns();
	ind->meta_dirty = true;
	pthread_mutex_unlock(&ind->lock);
	fs_inode_persist_locked(ctx, ind, b);
	rc = meta_batch_commit(ctx->meta, b, false);
	meta_batch_free(b);
	return rc;
}

/* The user.pec.* names a user may set or remove (value NULL): a pin on a version, a run's setting. */
static int pec_set_locked(struct fs_ctx *ctx, struct fs_inode *ind, const char *name, const char *value,
			  size_t size, int flags)
{
	if (pec_runcfg_is_key(name)) {
		if (!fs_mi_is_run(&ind->mi))
			return -EINVAL;
		int rc = value ? pec_runcfg_validate(name, value, size) : 0;
		return rc < 0 ? rc : set_locked(ctx, ind, name, value, size, value ? flags : XATTR_REPLACE);
	}
	if (strcmp(name, PEC_XATTR_PIN) != 0)
		return -EPERM;
	if (!fs_mi_is_version(&ind->mi))
		return -EINVAL;
	/* A pin is not content: it may change on a sealed version, so set_locked's rule is skipped. */
	bool pinned = meta_get_xattr(ctx->meta, ind->ino, name, NULL, 0) >= 0;
	if (!value && !pinned)
		return -ENODATA;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	if (value)
		meta_batch_put_xattr(b, ind->ino, name, "1", 1);
	else
		meta_batch_del_xattr(b, ind->ino, name);
	int rc = meta_batch_commit(ctx->meta, b, true);
	meta_batch_free(b);
	return rc;
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	int rc;

	if (strlen(name) > XATTR_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	if (size > XATTR_VALUE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	if (!is_user(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if ((rc = fs_inode_get(ctx, ino, &ind)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (strcmp(name, XATTR_SEAL) == 0) {
		if (!fs_mi_is_version(&ind->mi)) {
			rc = -EINVAL;
		} else {
			rc = fs_version_seal(ctx, ind->ino, "on request");
		}
	} else if (is_pec(name)) {
		pthread_mutex_lock(&ctx->ns_lock);
		rc = pec_set_locked(ctx, ind, name, value, size, flags);
		pthread_mutex_unlock(&ctx->ns_lock);
	} else {
		pthread_mutex_lock(&ctx->ns_lock);
		rc = set_locked(ctx, ind, name, value, size, flags);
		pthread_mutex_unlock(&ctx->ns_lock);
	}
	fs_inode_put(ctx, ind);
	fuse_reply_err(req, -rc);
}

static void reply_value(fuse_req_t req, const char *val, int len, size_t size)
{
	if (len < 0)
		fuse_reply_err(req, -len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)len);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	char fact[256];
	int rc;

	/* Fast answer for what the kernel asks on every write (security.capability) and the like. */
	if (!is_user(name) || pec_is_virtual(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if ((rc = fs_inode_get(ctx, ino, &ind)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (is_pec(name))
		rc = pec_fact(ctx, ind, name + strlen(XATTR_PREFIX_PEC), fact, sizeof(fact));
	if (is_pec(name) && rc != -ENODATA) {
		if (rc >= (int)sizeof(fact))
			rc = -ERANGE;
		reply_value(req, fact, rc, size);
	} else {
		/* Stored user.* values, and the user.pec.* ones the fs stores (source, pin, settings). */
		char *val = malloc(XATTR_VALUE_MAX);
		if (!val) {
			rc = -ENOMEM;
		} else {
			rc = meta_get_xattr(ctx->meta, ino, name, val, XATTR_VALUE_MAX);
			if (rc > XATTR_VALUE_MAX)
				rc = -E2BIG;
		}
		reply_value(req, val, rc, size);
		free(val);
	}
	fs_inode_put(ctx, ind);
}

struct list_buf {
	char *buf;
	size_t len;
	int err;
};

static int list_add(const char *name, void *arg)
{
	struct list_buf *lb = arg;
	size_t n = strlen(name) + 1;
	if (lb->len + n > XATTR_LIST_MAX) {
		lb->err = -E2BIG;
		return 1;
	}
	memcpy(lb->buf + lb->len, name, n);
	lb->len += n;
	return 0;
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	struct list_buf lb = { 0 };
	char probe[256], full[64];
	int rc;

	if (pec_is_virtual(ino)) {
		reply_value(req, "", 0, size);
		return;
	}
	if ((rc = fs_inode_get(ctx, ino, &ind)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	lb.buf = malloc(XATTR_LIST_MAX);
	if (!lb.buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = meta_list_xattrs(ctx->meta, ino, list_add, &lb);
	if (rc < 0 || (rc = lb.err) < 0)
		goto out;
	bool reg = S_ISREG(ind->mi.mode);
	const char *const *facts = reg ? file_facts : version_facts;
	size_t nfacts = reg ? sizeof(file_facts) / sizeof(*file_facts) : sizeof(version_facts) / sizeof(*version_facts);
	for (size_t i = 0; i < nfacts && (reg || fs_mi_is_version(&ind->mi)); i++) {
		/* Listed only where they apply; digest and chunks always apply to files, and computing
		 * them here would store buffered bytes on every listing. */
		bool always = reg && (strcmp(facts[i], "digest") == 0 || strcmp(facts[i], "chunks") == 0);
		if (!always && pec_fact(ctx, ind, facts[i], probe, sizeof(probe)) < 0)
			continue;
		snprintf(full, sizeof(full), "%s%s", XATTR_PREFIX_PEC, facts[i]);
		list_add(full, &lb);
	}
	rc = lb.err;
out:
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_value(req, lb.buf, (int)lb.len, size);
	free(lb.buf);
	fs_inode_put(ctx, ind);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	int rc;
	if (!is_user(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if ((rc = fs_inode_get(ctx, ino, &ind)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&ctx->ns_lock);
	if (is_pec(name))
		rc = pec_set_locked(ctx, ind, name, NULL, 0, XATTR_REPLACE);
	else
		rc = set_locked(ctx, ind, name, NULL, 0, XATTR_REPLACE);
	pthread_mutex_unlock(&ctx->ns_lock);
	fs_inode_put(ctx, ind);
	fuse_reply_err(req, -rc);
}

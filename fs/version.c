/* version.c - checkpoint versions: the in-memory mirror of the version records, their order and the
 * EROFS rule for sealed versions (sealing itself is seal.c).
 *
 * Order: versions of a run sort by (step, create_seq). A name without a step sorts as step -1, that
 * is before every stepped version, in creation order: such names ("final", "best") carry no position
 * in training, and putting them first keeps a stepped run's "latest" on its highest step.
 * latest = the last SEALED (not DAMAGED, not INCOMPLETE) version in that order.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "version_name.h"
#include "compose.h"

static struct fs_version *ver_find(struct fs_ctx *ctx, uint64_t vino)
{
	for (struct fs_version *fv = ctx->versions; fv; fv = fv->next)
		if (fv->v.ino == vino)
			return fv;
	return NULL;
}

void fs_version_insert(struct fs_ctx *ctx, const struct meta_version *v, const char *name)
{
	struct fs_version *fv = calloc(1, sizeof(*fv));
	if (!fv) {
		pecfs_log_error("out of memory recording version %s", name);
		return;
	}
	fv->v = *v;
	snprintf(fv->name, sizeof(fv->name), "%s", name);
	pthread_mutex_lock(&ctx->ver_lock);
	fv->next = ctx->versions;
	ctx->versions = fv;
	pthread_mutex_unlock(&ctx->ver_lock);
}

struct load_arg {
	struct fs_ctx *ctx;
	uint64_t *runs;
	size_t n, cap;
};

static int load_run_cb(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct load_arg *la = arg;
	(void)name;
	if (!S_ISDIR(mode))
		return 0;
	if (la->n == la->cap) {
		size_t ncap = la->cap ? la->cap * 2 : 16;
		uint64_t *nr = realloc(la->runs, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		la->runs = nr;
		la->cap = ncap;
	}
	la->runs[la->n++] = ino;
	return 0;
}

static int load_version_cb(const struct meta_version *v, void *arg)
{
	struct fs_ctx *ctx = arg;
	struct meta_inode mi;
	if (meta_get_inode(ctx->meta, v->ino, &mi) < 0) {
		pecfs_log_warn("version record of missing directory %llu ignored", (unsigned long long)v->ino);
		return 0;
	}
	fs_version_insert(ctx, v, mi.name);
	if (v->state == META_VERSION_OPEN)
		fs_version_seed_tally(ctx, v->ino);  /* on failure its figures are walked for */
	return 0;
}

int fs_versions_load(struct fs_ctx *ctx)
{
	struct load_arg la = { .ctx = ctx };
	int rc = meta_list_dir(ctx->meta, META_ROOT_INO, NULL, load_run_cb, &la);
	for (size_t i = 0; rc == 0 && i < la.n; i++)
		rc = meta_list_versions(ctx->meta, la.runs[i], load_version_cb, ctx);
	free(la.runs);
	return rc;
}

void fs_versions_free(struct fs_ctx *ctx)
{
	while (ctx->versions) {
		struct fs_version *fv = ctx->versions;
		ctx->versions = fv->next;
		free(fv);
	}
}

int fs_version_state(struct fs_ctx *ctx, uint64_t vino)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	int st = fv ? (int)fv->v.state : -ENOENT;
	pthread_mutex_unlock(&ctx->ver_lock);
	return st;
}

/* The one rule: a version that is not open (sealed, damaged, incomplete) takes no change. */
static bool ver_refuses_changes(uint32_t state)
{
	return state != META_VERSION_OPEN;
}

int fs_version_check_writable(struct fs_ctx *ctx, uint64_t vino)
{
	if (vino == 0)
		return 0;
	int st = fs_version_state(ctx, vino);
	return st >= 0 && ver_refuses_changes((uint32_t)st) ? -EROFS : 0;
}

int fs_version_write_begin(struct fs_ctx *ctx, uint64_t vino, uint64_t *gate)
{
	struct fs_version *fv;
	int rc = 0;

	*gate = 0;
	if (vino == 0)
		return 0;
	pthread_mutex_lock(&ctx->ver_lock);
	while ((fv = ver_find(ctx, vino)) && fv->sealing)
		pthread_cond_wait(&ctx->ver_cond, &ctx->ver_lock);
	if (fv && ver_refuses_changes(fv->v.state)) {
		rc = -EROFS;
	} else if (fv) {
		fv->writers++;
		*gate = vino;
	}
	pthread_mutex_unlock(&ctx->ver_lock);
	return rc;
}

void fs_version_write_end(struct fs_ctx *ctx, uint64_t gate)
{
	if (gate == 0)
		return;
	pthread_mutex_lock(&ctx->ver_lock);
	/* Gone when its directory was removed meanwhile (rm -r while a file of it is written): nothing
	 * can wait on the gate of a version that is no longer in the table. */
	struct fs_version *fv = ver_find(ctx, gate);
	if (fv && fv->writers > 0 && --fv->writers == 0 && fv->sealing)
		pthread_cond_broadcast(&ctx->ver_cond);
	pthread_mutex_unlock(&ctx->ver_lock);
}

void fs_version_seal_gate_close(struct fs_ctx *ctx, uint64_t vino)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv) {
		assert(!fv->sealing);  /* seals run under ns_lock, one at a time */
		fv->sealing = true;
		while (fv->writers > 0)
			pthread_cond_wait(&ctx->ver_cond, &ctx->ver_lock);  /* fv stays: removal takes ns_lock */
	}
	pthread_mutex_unlock(&ctx->ver_lock);
}

void fs_version_seal_gate_open(struct fs_ctx *ctx, uint64_t vino)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv && fv->sealing) {
		fv->sealing = false;
		pthread_cond_broadcast(&ctx->ver_cond);
	}
	pthread_mutex_unlock(&ctx->ver_lock);
}

int fs_version_get(struct fs_ctx *ctx, uint64_t vino, struct fs_version *out)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv)
		*out = *fv;
	pthread_mutex_unlock(&ctx->ver_lock);
	return fv ? 0 : -ENOENT;
}

void fs_version_new_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t run_ino, uint64_t vino,
			   const char *name, struct meta_version *out)
{
	memset(out, 0, sizeof(*out));
	out->run_ino = run_ino;
	out->ino = vino;
	out->state = META_VERSION_OPEN;
	out->step = version_name_step(name);
	out->create_seq = ctx->sb.next_seq++;
	meta_batch_put_version(b, out);
	meta_batch_put_super(b, &ctx->sb);
}

void fs_version_forget(struct fs_ctx *ctx, uint64_t vino)
{
	pthread_mutex_lock(&ctx->ver_lock);
	for (struct fs_version **pp = &ctx->versions; *pp; pp = &(*pp)->next) {
		if ((*pp)->v.ino == vino) {
			struct fs_version *fv = *pp;
			*pp = fv->next;
			free(fv);
			break;
		}
	}
	pthread_mutex_unlock(&ctx->ver_lock);
	meta_tally_untrack(ctx->meta, vino);
}

void fs_version_move_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t vino, uint64_t new_run,
			    const char *name)
{
	struct fs_version fv;
	if (fs_version_get(ctx, vino, &fv) < 0)
		return;
	if (fv.v.run_ino != new_run)
		meta_batch_del_version(b, fv.v.run_ino, vino);
	fv.v.run_ino = new_run;
	fv.v.step = version_name_step(name);
	meta_batch_put_version(b, &fv.v);
}

void fs_version_moved(struct fs_ctx *ctx, uint64_t vino, uint64_t new_run, const char *name)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv) {
		fv->v.run_ino = new_run;
		fv->v.step = version_name_step(name);
		snprintf(fv->name, sizeof(fv->name), "%s", name);
	}
	pthread_mutex_unlock(&ctx->ver_lock);
}

bool fs_version_damage_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t vino)
{
	struct fs_version fv;
	if (vino == 0 || fs_version_get(ctx, vino, &fv) < 0 ||
	    (fv.v.state != META_VERSION_SEALED && fv.v.state != META_VERSION_INCOMPLETE))
		return false;
	fv.v.state = META_VERSION_DAMAGED;
	meta_batch_put_version(b, &fv.v);
	return true;
}

void fs_version_set_state(struct fs_ctx *ctx, uint64_t vino, uint32_t state)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv)
		fv->v.state = state;
	pthread_mutex_unlock(&ctx->ver_lock);
}

void fs_version_update(struct fs_ctx *ctx, const struct meta_version *v)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, v->ino);
	if (fv)
		fv->v = *v;
	pthread_mutex_unlock(&ctx->ver_lock);
}

bool fs_version_note_create(struct fs_ctx *ctx, uint64_t vino, struct fs_version *out)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	bool first = fv && !fv->created_in;
	if (first) {
		fv->created_in = true;
		*out = *fv;
	}
	pthread_mutex_unlock(&ctx->ver_lock);
	return first;
}

void fs_version_unnote_create(struct fs_ctx *ctx, uint64_t vino)
{
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv)
		fv->created_in = false;
	pthread_mutex_unlock(&ctx->ver_lock);
}

void fs_version_handles(struct fs_ctx *ctx, uint64_t vino, int delta)
{
	if (vino == 0)
		return;
	pthread_mutex_lock(&ctx->ver_lock);
	struct fs_version *fv = ver_find(ctx, vino);
	if (fv) {
		assert(delta > 0 || fv->open_handles > 0);
		fv->open_handles += delta;
		if (fv->open_handles == 0)
			pthread_cond_broadcast(&ctx->ver_cond);  /* fs_version_wait_older_idle */
	}
	pthread_mutex_unlock(&ctx->ver_lock);
}

/* An open version of run_ino created before create_seq that has open handles. Caller holds ver_lock. */
static bool ver_older_busy(struct fs_ctx *ctx, uint64_t run_ino, uint64_t create_seq)
{
	for (struct fs_version *fv = ctx->versions; fv; fv = fv->next)
		if (fv->v.run_ino == run_ino && fv->v.state == META_VERSION_OPEN &&
		    fv->v.create_seq < create_seq && fv->open_handles > 0)
			return true;
	return false;
}

void fs_version_wait_older_idle(struct fs_ctx *ctx, uint64_t vino, int timeout_s)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	pthread_mutex_lock(&ctx->ver_lock);
	for (;;) {
		struct fs_version *fv = ver_find(ctx, vino);
		if (!fv || fv->created_in || !ver_older_busy(ctx, fv->v.run_ino, fv->v.create_seq))
			break;
		if (pthread_cond_timedwait(&ctx->ver_cond, &ctx->ver_lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&ctx->ver_lock);
}

/* Versions of a run, copied (ver_lock must not be held while sealing). */
static int ver_select(struct fs_ctx *ctx, uint64_t run_ino, struct fs_version **out, size_t *n)
{
	size_t cnt = 0, i = 0;
	pthread_mutex_lock(&ctx->ver_lock);
	for (struct fs_version *fv = ctx->versions; fv; fv = fv->next)
		cnt += fv->v.run_ino == run_ino;
	struct fs_version *arr = calloc(cnt ? cnt : 1, sizeof(*arr));
	if (arr)
		for (struct fs_version *fv = ctx->versions; fv; fv = fv->next)
			if (fv->v.run_ino == run_ino)
				arr[i++] = *fv;
	pthread_mutex_unlock(&ctx->ver_lock);
	if (!arr)
		return -ENOMEM;
	*out = arr;
	*n = cnt;
	return 0;
}

static int ver_cmp(const void *a, const void *b)
{
	const struct fs_version *x = a, *y = b;
	if (x->v.step != y->v.step)
		return x->v.step < y->v.step ? -1 : 1;
	if (x->v.create_seq != y->v.create_seq)
		return x->v.create_seq < y->v.create_seq ? -1 : 1;
	return 0;
}

int fs_versions_sorted(struct fs_ctx *ctx, uint64_t run_ino, struct fs_version **out, size_t *n)
{
	int rc = ver_select(ctx, run_ino, out, n);
	if (rc == 0)
		qsort(*out, *n, sizeof(**out), ver_cmp);
	return rc;
}

long fs_versions_latest(const struct fs_version *vs, size_t n)
{
	for (size_t i = n; i > 0; i--)
		if (vs[i - 1].v.state == META_VERSION_SEALED)
			return (long)(i - 1);
	return -1;
}

const char *fs_version_state_name(uint32_t state)
{
	switch (state) {
	case META_VERSION_OPEN: return "open";
	case META_VERSION_SEALED: return "sealed";
	case META_VERSION_DAMAGED: return "damaged";
	case META_VERSION_INCOMPLETE: return "incomplete";
	default: return "unknown";
	}
}

void fs_versions_count(struct fs_ctx *ctx, uint64_t *runs, uint64_t *versions, uint64_t *sealed)
{
	*versions = *sealed = 0;
	pthread_mutex_lock(&ctx->ver_lock);
	for (struct fs_version *fv = ctx->versions; fv; fv = fv->next) {
		(*versions)++;
		*sealed += fv->v.state != META_VERSION_OPEN;
	}
	pthread_mutex_unlock(&ctx->ver_lock);
	struct load_arg la = { .ctx = ctx };
	*runs = meta_list_dir(ctx->meta, META_ROOT_INO, NULL, load_run_cb, &la) == 0 ? la.n : 0;
	free(la.runs);
}

/* autogc.c - collects unreferenced chunks in the background, so that a workload that rewrites data in
 * place (fsx, numpy memmap writers, a trainer overwriting a scratch file) does not fill the disk with
 * chunks nothing names any more until someone runs `pecfs gc`.
 *
 * A thread looks at the store's garbage (stored bytes no extent references, kept by the chunk index,
 * so the look costs a mutex) once a second and collects it when it exceeds gc-garbage, or when the
 * data disk has less than twice reserve-free left and there is any. The collection is store_gc
 * without its walk of every chunk file for strays (that stays with `pecfs gc`), and is safe while
 * files are written (store/FORMAT.md, "Garbage collection"). gc-garbage 0 turns it off.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "ctx.h"

#define AUTOGC_PERIOD_S 1

static bool autogc_due(struct fs_ctx *ctx, uint64_t garbage)
{
	struct statvfs sv;

	if (garbage == 0)
		return false;
	if (garbage >= ctx->cfg->gc_garbage_bytes)
		return true;
	return statvfs(store_data_dir(ctx->st), &sv) == 0 &&
	       (uint64_t)sv.f_bavail * sv.f_frsize < 2 * ctx->cfg->reserve_free_bytes;
}

static void *autogc_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_autogc *g = &ctx->autogc;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += AUTOGC_PERIOD_S;
		pthread_cond_timedwait(&g->wake, &g->lock, &until);
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->lock);
		uint64_t garbage = store_garbage_bytes(ctx->st);
		if (autogc_due(ctx, garbage)) {
			struct store_gc_report r;
			int rc = store_gc_garbage(ctx->st, &r);
			if (rc < 0) {
				pecfs_log_warn("background collection failed: %s", strerror(-rc));
			} else {
				pecfs_log_debug("background collection: %llu chunks, %llu bytes freed",
						(unsigned long long)r.chunks_removed, (unsigned long long)r.bytes_removed);
				pthread_mutex_lock(&g->lock);
				g->runs++;
				g->bytes_freed += r.bytes_removed;
				pthread_mutex_unlock(&g->lock);
			}
		}
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int fs_autogc_start(struct fs_ctx *ctx)
{
	struct fs_autogc *g = &ctx->autogc;
	pthread_condattr_t ca;

	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	g->inited = true;
	g->stop = false;
	g->started = false;
	if (ctx->cfg->gc_garbage_bytes == 0)
		return 0;
	int rc = -pthread_create(&g->thread, NULL, autogc_main, ctx);
	if (rc < 0)
		pecfs_log_error("cannot start the background collection: %s", strerror(-rc));
	g->started = rc == 0;
	return rc;
}

void fs_autogc_stop(struct fs_ctx *ctx)
{
	struct fs_autogc *g = &ctx->autogc;

	if (!g->inited)
		return;  /* the mount failed before it started */
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	if (g->started)
		pthread_join(g->thread, NULL);
	g->started = false;
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	g->inited = false;
}

void fs_autogc_figures(struct fs_ctx *ctx, uint64_t *runs, uint64_t *bytes_freed)
{
	struct fs_autogc *g = &ctx->autogc;

	pthread_mutex_lock(&g->lock);
	*runs = g->runs;
	*bytes_freed = g->bytes_freed;
	pthread_mutex_unlock(&g->lock);
}

/* pec_tokens_io.c - RUN/.pec/tokens: the token counts a trainer reports between two versions. Each
 * report written (one open-write-close) is parsed strictly (pec_tokens_parse) and added to the run's
 * pending report, kept as one 'T' record; the seal that composes the next version consumes it and
 * deletes the record in its own batch. A rejected report changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"

int pec_tokens_pending(struct fs_ctx *ctx, uint64_t run_ino, struct pec_tokens **out)
{
	char *json, err[200];
	size_t len;
	*out = NULL;
	int rc = meta_get_tokens(ctx->meta, run_ino, &json, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = pec_tokens_parse(json, len, out, err, sizeof(err));
	free(json);
	if (rc < 0) {
		/* Only reports that parsed are stored: this is damage, not input. Forget it. */
		pecfs_log_error("pending token report of run %llu unreadable (%s): ignored", (unsigned long long)run_ino,
				err);
		*out = NULL;
		return 0;
	}
	return 0;
}

int pec_tokens_submit(struct fs_ctx *ctx, uint64_t run_ino, const char *json, size_t len)
{
	struct pec_tokens *t = NULL, *pending = NULL, *sum = NULL;
	struct meta_batch *b = NULL;
	char *text = NULL, err[200];
	int rc = pec_tokens_parse(json, len, &t, err, sizeof(err));
	if (rc < 0) {
		if (rc == -EINVAL)
			pecfs_log_warn("token report for run %llu rejected: %s", (unsigned long long)run_ino, err);
		return rc;
	}
	pthread_mutex_lock(&ctx->ns_lock);
	rc = pec_tokens_pending(ctx, run_ino, &pending);
	if (rc == 0)
		rc = pec_tokens_sum(pending, t, &sum);
	if (rc == -ERANGE) {
		pecfs_log_warn("token report for run %llu rejected: counts overflow", (unsigned long long)run_ino);
		rc = -EINVAL;
	} else if (rc == -EINVAL) {
		pecfs_log_warn("token report for run %llu rejected: top_k differs from the reports before",
			       (unsigned long long)run_ino);
	}
	if (rc == 0)
		rc = pec_tokens_to_json(sum, &text);
	if (rc == 0 && !(b = meta_batch_new()))
		rc = -ENOMEM;
	if (rc == 0) {
		meta_batch_put_tokens(b, run_ino, text, strlen(text));
		rc = meta_batch_commit(ctx->meta, b, false);
	}
	pthread_mutex_unlock(&ctx->ns_lock);
	meta_batch_free(b);
	free(text);
	pec_tokens_free(sum);
	pec_tokens_free(pending);
	pec_tokens_free(t);
	return rc;
}

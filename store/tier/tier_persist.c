/* tier_persist.c - the uploader's side of persist selection: it hands each walked manifest to the
 * hook of tier_options.persist (fs/tier_persist.c decides which expert units a version uploads).
 * The hook lives above the store on purpose: deciding needs the PEC policy library and the run's
 * settings, while the store only moves bytes and keeps the order of FORMAT.md section 5. Whatever
 * the hook does, the uploader still checks every chunk the manifest names before the manifest goes
 * up, so a rewritten manifest is as safe as a walked one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tier_impl.h"

int tier_persist_apply(struct tier *t, const struct meta_version *v, struct tier_manifest *m, char *msg,
		       size_t msgsz)
{
	struct tier_persist_call call = { .client = t->client, .prefix = t->prefix, .node_id = t->node_id,
					  .meta = t->meta, .version = v };
	char why[300] = "";
	int rc;

	if (!t->persist.fn)
		return 0;
	rc = t->persist.fn(t->persist.ctx, &call, m, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (rc > 0)
		rc = -EIO;  /* a hook must return 0 or -errno; anything else is a failure, not a success */
	snprintf(msg, msgsz, "%.100s/%.100s: persist selection: %.180s", m->run, m->version,
		 why[0] ? why : strerror(-rc));
	tier_manifest_free(m);
	return rc;
}

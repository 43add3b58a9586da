/* tier_status.c - the S3 tier's figures as JSON for the .pec files (see tier_status.h). */
#include "tier_status.h"

#include <string.h>


void tier_status_version_json(struct tier *t, const struct meta_version *v, json_t *e)
{
	uint64_t bytes = 0;
	bool uploaded = false;
	unsigned attempts = 0;
	char error[400] = "";

	if (v->state != META_VERSION_OPEN) {
		tier_version_status(t, v->run_ino, v->ino, &bytes, &uploaded);
		attempts = tier_version_error(t, v->run_ino, v->ino, error, sizeof(error));
	}
	json_object_set_new(e, "uploaded_bytes", json_integer((json_int_t)bytes));
	json_object_set_new(e, "uploaded", json_boolean(uploaded));
	/* Why the last upload attempts failed (they are retried), or null. */
	json_object_set_new(e, "upload_error", attempts ? json_string(error) : json_null());
	json_object_set_new(e, "upload_failed_attempts", json_integer(attempts));
	if (uploaded && v->state == META_VERSION_SEALED)
		json_object_set_new(e, "state", json_string("uploaded"));
}

void tier_status_stats_json(struct tier *t, json_t *o)
{
	static const char *const states[] = { "idle", "uploading", "retrying" };
	struct tier_status s;
	json_t *o_s3;

	if (tier_get_status(t, &s) < 0)
		return;
	o_s3 = json_object();
	if (!o_s3)
		return;
	json_object_set_new(o_s3, "uri", json_string(s.uri));
	json_object_set_new(o_s3, "node_id", json_string(s.node_id));
	json_object_set_new(o_s3, "state", json_string(states[s.state]));
	json_object_set_new(o_s3, "error", s.error[0] ? json_string(s.error) : json_null());
	json_object_set_new(o_s3, "versions_pending", json_integer((json_int_t)s.versions_pending));
	json_object_set_new(o_s3, "bytes_pending", json_integer((json_int_t)s.bytes_pending));
	json_object_set_new(o_s3, "versions_awaiting_nodes", json_integer((json_int_t)s.versions_awaiting_nodes));
	json_object_set_new(o_s3, "versions_uploaded", json_integer((json_int_t)s.versions_uploaded));
	json_object_set_new(o_s3, "bytes_uploaded", json_integer((json_int_t)s.bytes_uploaded));
	json_object_set_new(o_s3, "chunks_uploaded", json_integer((json_int_t)s.chunks_uploaded));
	json_object_set_new(o_s3, "packs_uploaded", json_integer((json_int_t)s.packs_uploaded));
	json_object_set_new(o_s3, "chunks_skipped", json_integer((json_int_t)s.chunks_skipped));
	json_object_set_new(o_s3, "rate_bytes_per_s", json_real(s.rate_bytes_per_s));
	json_object_set_new(o_s3, "failures", json_integer((json_int_t)s.failures));
	json_object_set_new(o_s3, "versions_failing", json_integer((json_int_t)s.versions_failing));
	json_object_set_new(o_s3, "fetched_chunks", json_integer((json_int_t)s.fetched_chunks));
	json_object_set_new(o_s3, "fetched_bytes", json_integer((json_int_t)s.fetched_bytes));
	json_object_set_new(o_s3, "fetch_corrupt", json_integer((json_int_t)s.fetch_corrupt));
	json_object_set_new(o_s3, "prefetched_chunks", json_integer((json_int_t)s.prefetched_chunks));
	json_object_set_new(o_s3, "prefetch_hits", json_integer((json_int_t)s.prefetch_hits));
	json_object_set_new(o_s3, "evicted_chunks", json_integer((json_int_t)s.evicted_chunks));
	json_object_set_new(o_s3, "evicted_bytes", json_integer((json_int_t)s.evicted_bytes));
	json_object_set_new(o_s3, "local_chunk_bytes", json_integer((json_int_t)s.local_bytes));
	json_object_set_new(o, "s3", o_s3);
}

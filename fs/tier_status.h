/* tier_status.h - the S3 tier's figures in the .pec files: per-version upload state in
 * RUN/.pec/versions and the uploader's progress in /.pec/stats. Nothing is added without a tier.
 */
#ifndef PECFS_TIER_STATUS_H
#define PECFS_TIER_STATUS_H

#include <jansson.h>

#include "tier.h"

/* Sets "uploaded_bytes", "uploaded", "upload_error" and "upload_failed_attempts" of version entry e
 * (0, false, null, 0 without a tier), and turns "state" "sealed" into "uploaded" once the version is
 * committed in S3. */
void tier_status_version_json(struct tier *t, const struct meta_version *v, json_t *e);

/* Adds an "s3" object (uri, node_id, state, error, pending and uploaded counts, rate) to o. */
void tier_status_stats_json(struct tier *t, json_t *o);

#endif

/* tier_upload.c - the uploader: finds sealed versions without an upload record, oldest seal first,
 * and uploads each in the order the bucket's readers rely on: every chunk its files reference
 * (in parallel, skipping chunks already marked or found in the bucket), then this node's manifest,
 * then COMMIT created only if absent, then the synced upload record. A failure at any step leaves
 * no COMMIT behind and the version pending; it is retried with backoff (1 s doubling to 30 s).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "tier_impl.h"

#define TIER_SCAN_MS 1000
#define TIER_BACKOFF_MAX_MS 30000

struct pending {
	struct meta_version best;
	bool found;
	uint64_t versions, bytes;
	struct tier *t;
	uint64_t run;
};

static int pending_version(const struct meta_version *v, void *arg)
{
	struct pending *p = arg;
	struct tier_upload_record r;

	if (v->state != META_VERSION_SEALED && v->state != META_VERSION_INCOMPLETE)
		return 0;
	if (tier_record_get(p->t->meta, v->run_ino, v->ino, &r) == 0)
		return 0;
	p->versions++;
	p->bytes += v->stored_bytes;
	if (!p->found || v->seal_seq < p->best.seal_seq) {
		p->best = *v;
		p->found = true;
	}
	return 0;
}

static int pending_run(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	(void)name;
	if (!S_ISDIR(mode))
		return 0;
	return meta_list_versions(((struct pending *)arg)->t->meta, ino, pending_version, arg);
}

/* ---- one version's chunks, by upload_threads workers ---- */

struct chunk_job {
	struct tier *t;
	struct digest *d;
	uint64_t *len;
	size_t n;
	atomic_size_t next;
	pthread_mutex_t lock;
	int rc;                 /* first failure */
	char msg[400];
};

struct chunk_ref {
	struct digest d;
	uint64_t len;
};

static int chunk_ref_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static void job_fail(struct chunk_job *j, int rc, const char *what, const struct s3_result *res)
{
	pthread_mutex_lock(&j->lock);
	if (j->rc == 0) {
		j->rc = rc;
		snprintf(j->msg, sizeof(j->msg), "%.60s: %.330s", what,
			 res && res->message[0] ? res->message : strerror(-rc));
	}
	pthread_mutex_unlock(&j->lock);
}

static void job_credit(struct tier *t, uint64_t len, bool sent)
{
	pthread_mutex_lock(&t->lock);
	t->cur_bytes += len;
	if (sent) {
		t->status.bytes_uploaded += len;
		t->status.chunks_uploaded++;
	} else {
		t->status.chunks_skipped++;
	}
	if (t->status.bytes_pending >= len)
		t->status.bytes_pending -= len;
	pthread_mutex_unlock(&t->lock);
}

static int upload_chunk(struct chunk_job *j, const struct digest *d, uint64_t len, uint8_t **buf)
{
	struct tier *t = j->t;
	char key[TIER_PREFIX_MAX + 160];
	struct s3_result res = { 0 };
	uint64_t size = 0;
	int rc;

	if (tier_chunk_is_remote(t->meta, d)) {
		job_credit(t, len, false);
		return 0;
	}
	rc = tier_chunk_key(t->prefix, d, key, sizeof(key));
	if (rc < 0)
		return rc;
	/* Another node (or an upload cut short here) may have stored it already. */
	rc = s3_head(t->client, key, &size, NULL, &res);
	if (rc == 0 && size == len + TIER_CHUNK_HDR)
		goto done_skipped;
	if (rc < 0 && rc != -ENOENT) {
		job_fail(j, rc, "checking a chunk in the bucket", &res);
		return rc;
	}
	if (!*buf) {
		*buf = malloc(CHUNK_MAX_SIZE + TIER_CHUNK_HDR);
		if (!*buf)
			return -ENOMEM;
	}
	tier_chunk_header(d, len, *buf);
	rc = store_chunk_read(t->st, d, 0, *buf + TIER_CHUNK_HDR, (size_t)len);
	if (rc < 0) {
		job_fail(j, rc, "reading a local chunk", NULL);
		return rc;
	}
	tier_throttle(t, len + TIER_CHUNK_HDR);
	memset(&res, 0, sizeof(res));
	rc = s3_put(t->client, key, *buf, (size_t)len + TIER_CHUNK_HDR, NULL, 0, &res);
	if (rc < 0) {
		job_fail(j, rc, "uploading a chunk", &res);
		return rc;
	}
	tier_chunk_mark_remote(t->meta, d);
	job_credit(t, len, true);
	return 0;

done_skipped:
	tier_chunk_mark_remote(t->meta, d);
	job_credit(t, len, false);
	return 0;
}

static void *chunk_worker(void *arg)
{
	struct chunk_job *j = arg;
	uint8_t *buf = NULL;

	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->n || atomic_load(&j->t->stopping))
			break;
		pthread_mutex_lock(&j->lock);
		int failed = j->rc;
		pthread_mutex_unlock(&j->lock);
		if (failed)
			break;
		int rc = upload_chunk(j, &j->d[i], j->len[i], &buf);
		if (rc == -ENOMEM)
			job_fail(j, rc, "uploading a chunk", NULL);
	}
	free(buf);
	return NULL;
}

/* The distinct chunks of a manifest, sorted. */
static int manifest_chunks(const struct s3_manifest *m, struct chunk_ref **out, size_t *n)
{
	size_t total = 0, k = 0;
	struct chunk_ref *r;

	for (size_t i = 0; i < m->n; i++)
		total += m->entries[i].next;
	r = malloc((total ? total : 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		for (size_t x = 0; x < m->entries[i].next; x++) {
			r[k].d = m->entries[i].ext[x].digest;
			r[k++].len = m->entries[i].ext[x].chunk_len;
		}
	qsort(r, k, sizeof(*r), chunk_ref_cmp);
	*n = 0;
	for (size_t i = 0; i < k; i++)
		if (*n == 0 || memcmp(&r[*n - 1].d, &r[i].d, DIGEST_LEN) != 0)
			r[(*n)++] = r[i];
	*out = r;
	return 0;
}

static int upload_chunks(struct tier *t, const struct chunk_ref *refs, size_t n, uint64_t *bytes, char *msg,
			 size_t msgsz)
{
	struct chunk_job j = { .t = t, .n = n };
	pthread_t th[64];
	size_t nth = t->threads < 64 ? t->threads : 64, started = 0;

	j.d = malloc((n ? n : 1) * sizeof(*j.d));
	j.len = malloc((n ? n : 1) * sizeof(*j.len));
	if (!j.d || !j.len) {
		free(j.d);
		free(j.len);
		return -ENOMEM;
	}
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		j.d[i] = refs[i].d;
		j.len[i] = refs[i].len;
		*bytes += refs[i].len;
	}
	atomic_init(&j.next, 0);
	pthread_mutex_init(&j.lock, NULL);
	if (nth > n)
		nth = n;
	for (size_t i = 0; i < nth; i++)
		if (pthread_create(&th[started], NULL, chunk_worker, &j) == 0)
			started++;
	if (started == 0 && n > 0)
		chunk_worker(&j);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (j.rc == 0 && atomic_load(&t->stopping))
		j.rc = -ECANCELED;
	if (j.rc)
		snprintf(msg, msgsz, "%s", j.msg);
	pthread_mutex_destroy(&j.lock);
	free(j.d);
	free(j.len);
	return j.rc;
}

static int put_manifest_and_commit(struct tier *t, const struct s3_manifest *m, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], *text = NULL, *commit = NULL;
	struct s3_result res = { 0 };
	size_t len;
	int rc;

	rc = s3_manifest_encode(m, &text, &len);
	if (rc < 0)
		return rc;
	rc = tier_key(t, key, sizeof(key), "runs/%s/%s/%s.manifest", m->run, m->version, t->node_id);
	if (rc == 0)
		rc = s3_put(t->client, key, text, len, NULL, 0, &res);
	if (rc < 0) {
		snprintf(msg, msgsz, "uploading the manifest: %.300s", res.message[0] ? res.message : strerror(-rc));
		goto out;
	}
	/* COMMIT names the version's facts so that a reader can pick "latest" from COMMITs alone. */
	json_t *cj = json_pack("{s:i,s:s,s:s,s:o,s:I,s:s}", "format", 1, "run", m->run, "version", m->version,
			       "step", m->step >= 0 ? json_integer(m->step) : json_null(), "sealed_ns",
			       (json_int_t)m->sealed_ns, "node", t->node_id);
	commit = cj ? json_dumps(cj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(cj);
	if (!commit) {
		rc = -ENOMEM;
		goto out;
	}
	rc = tier_key(t, key, sizeof(key), "runs/%s/%s/COMMIT", m->run, m->version);
	memset(&res, 0, sizeof(res));
	if (rc == 0)
		rc = s3_put(t->client, key, commit, strlen(commit), NULL, S3_PUT_IF_ABSENT, &res);
	if (rc == -EEXIST)
		rc = 0;  /* another node's part, or an earlier attempt of ours, committed it first */
	if (rc < 0)
		snprintf(msg, msgsz, "creating COMMIT: %.300s", res.message[0] ? res.message : strerror(-rc));
out:
	free(commit);
	free(text);
	return rc;
}

static int upload_version(struct tier *t, const struct meta_version *v, char *msg, size_t msgsz)
{
	struct tier_upload_record rec = { 0 };
	struct s3_manifest m;
	struct chunk_ref *refs = NULL;
	size_t n = 0;
	int rc;

	rc = tier_walk_version(t, v, &m);
	if (rc < 0) {
		snprintf(msg, msgsz, "reading version metadata: %s", strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&t->lock);
	t->cur_run = v->run_ino;
	t->cur_ino = v->ino;
	t->cur_bytes = 0;
	t->status.state = t->status.state == TIER_RETRYING ? TIER_RETRYING : TIER_UPLOADING;
	pthread_mutex_unlock(&t->lock);
	rc = manifest_chunks(&m, &refs, &n);
	if (rc == 0)
		rc = upload_chunks(t, refs, n, &rec.uploaded_bytes, msg, msgsz);
	if (rc == 0)
		rc = put_manifest_and_commit(t, &m, msg, msgsz);
	if (rc == 0) {
		rec.chunks = n;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		rec.committed_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		rc = tier_record_put(t->meta, v->run_ino, v->ino, &rec);
		if (rc < 0)
			snprintf(msg, msgsz, "recording the upload: %s", strerror(-rc));
		else
			tier_logf(t, S3_LOG_INFO, "S3 tier: %s/%s uploaded (%zu chunks, %llu bytes)", m.run, m.version,
				  n, (unsigned long long)rec.uploaded_bytes);
	} else if (rc != -ECANCELED) {
		char where[600];
		snprintf(where, sizeof(where), "%.100s/%.100s: %.380s", m.run, m.version, msg);
		snprintf(msg, msgsz, "%.390s", where);
	}
	pthread_mutex_lock(&t->lock);
	t->cur_run = t->cur_ino = 0;
	t->cur_bytes = 0;
	pthread_mutex_unlock(&t->lock);
	free(refs);
	s3_manifest_free(&m);
	return rc;
}

/* Sleeps ms on the wake condition; returns early when the tier is closed. */
static void tier_wait(struct tier *t, unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&t->lock);
	while (!atomic_load(&t->stopping))
		if (pthread_cond_timedwait(&t->wake, &t->lock, &until) != 0)
			break;
	pthread_mutex_unlock(&t->lock);
}

void *tier_upload_main(void *arg)
{
	struct tier *t = arg;
	unsigned backoff = 1000;
	char msg[400], last[400] = "";

	while (!atomic_load(&t->stopping)) {
		struct pending p = { .t = t };
		int rc = meta_list_dir(t->meta, META_ROOT_INO, NULL, pending_run, &p);

		pthread_mutex_lock(&t->lock);
		t->status.versions_pending = p.versions;
		t->status.bytes_pending = p.bytes;
		if (!p.found && t->status.state == TIER_UPLOADING)
			t->status.state = TIER_IDLE;
		pthread_mutex_unlock(&t->lock);
		if (rc < 0 || !p.found) {
			tier_cache_evict(t);
			tier_wait(t, TIER_SCAN_MS);
			continue;
		}
		msg[0] = '\0';
		rc = upload_version(t, &p.best, msg, sizeof(msg));
		if (rc == 0 || rc == -ECANCELED) {
			pthread_mutex_lock(&t->lock);
			if (rc == 0)
				t->status.versions_uploaded++;
			if (t->status.state == TIER_RETRYING) {
				t->status.state = TIER_UPLOADING;
				t->status.error[0] = '\0';
				tier_logf(t, S3_LOG_INFO, "S3 tier: uploads to %s resumed", t->uri);
			}
			pthread_mutex_unlock(&t->lock);
			backoff = 1000;
			last[0] = '\0';
			tier_cache_evict(t);
			continue;
		}
		pthread_mutex_lock(&t->lock);
		t->status.failures++;
		t->status.state = TIER_RETRYING;
		snprintf(t->status.error, sizeof(t->status.error), "%s", msg);
		pthread_mutex_unlock(&t->lock);
		/* Once per change of the failure, not once per retry: an outage is one message. */
		if (strcmp(msg, last) != 0) {
			tier_logf(t, S3_LOG_ERROR, "S3 tier: upload to %s failed: %s; retrying with backoff, nothing "
				  "is lost", t->uri, msg);
			snprintf(last, sizeof(last), "%s", msg);
		}
		tier_wait(t, backoff);
		backoff = backoff * 2 > TIER_BACKOFF_MAX_MS ? TIER_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* tier_upload.c - the uploader: finds sealed versions without an upload record, oldest seal first,
 * and uploads each in the order the bucket's readers rely on: every chunk its files reference
 * (in parallel, skipping chunks already marked or found in the bucket), then this node's manifest,
 * then COMMIT created only if absent, then the synced upload record, then the commit hook (retention
 * waits for it). A failure at any step leaves no COMMIT behind and the version pending; it is retried
 * with its own backoff (1 s doubling to 30 s) while the versions behind it go ahead (struct
 * tier_vfail). The version's record is read again before its manifest and before COMMIT: one removed
 * or damaged meanwhile (rm -r of a sealed version) is never committed, whatever part of it the walk saw.
 *
 * Each upload of a version by a node carries a random seal id, in its manifest and in the COMMIT
 * that names the parts (node and seal id) making up the version. A retry takes the seal id back from
 * the manifest its earlier attempt left (recognised by the version's seal_seq and sealed_ns). A part
 * or COMMIT of another upload of a version of the same name (the version removed and sealed again,
 * two data folders with one node id) is a conflict: nothing of it is overwritten, the version is
 * not reported uploaded, and it waits on its backoff behind the other pending versions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

#include "digest_table.h"
#include "tier_impl.h"

#define TIER_SCAN_MS 1000
#define TIER_BACKOFF_MIN_MS 1000u
#define TIER_BACKOFF_MAX_MS 30000u
#define TIER_AWAIT_CHECK_MS 2000

struct pending {
	struct meta_version best;
	bool found;
	int64_t now;
	int64_t wake_ns;        /* the earliest retry time of a version waiting on its backoff */
	uint64_t versions, bytes;
	uint64_t awaiting;      /* parts up, COMMIT waiting for other nodes */
	struct meta_version *await;
	size_t nawait;
	struct tier *t;
	uint64_t run;
};

static int pending_version(const struct meta_version *v, void *arg)
{
	struct pending *p = arg;
	struct meta_upload r;

	if (v->state != META_VERSION_SEALED && v->state != META_VERSION_INCOMPLETE)
		return 0;
	if (meta_get_upload(p->t->meta, v->run_ino, v->ino, &r) == 0) {
		if (r.committed_ns == 0) {
			struct meta_version *a = realloc(p->await, (p->nawait + 1) * sizeof(*a));
			if (!a)
				return -ENOMEM;
			p->await = a;
			p->await[p->nawait++] = *v;
			p->awaiting++;
		}
		return 0;
	}
	p->versions++;
	p->bytes += v->stored_bytes;
	for (size_t i = 0; i < p->t->nvfail; i++) {
		struct tier_vfail *f = &p->t->vfail[i];
		if (f->run != v->run_ino || f->ino != v->ino)
			continue;
		f->seen = true;
		if (f->next_ns > p->now) {  /* backing off: the versions behind it go first */
			p->wake_ns = f->next_ns < p->wake_ns ? f->next_ns : p->wake_ns;
			return 0;
		}
	}
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

/* ---- one version's chunks, by upload_threads workers ----
 *
 * Two passes over the distinct chunks the manifest names. The first settles every chunk the bucket
 * may already hold: a mark of this GC epoch is taken as it is; a mark of an older epoch, or a
 * location the manifest carries for a chunk that is not local (a persist selection's earlier upload),
 * is checked with a HEAD (of its pack, once per upload for all the members). The second sends the
 * rest: the new chunks of one file, in file order, go up together as packs of up to pack_size bytes
 * (one object, so one PUT here and one GET for a reader of all of them, instead of one per chunk); a
 * chunk alone goes up as its own object. A pack's name is the SHA-256 of its member table, so two
 * nodes packing the same new chunks of the same file (data-parallel replicas) name the same pack, and
 * the second finds it with a HEAD. The location of every chunk goes into its mark and into the
 * manifest's extents. */

struct chunk_ref {
	struct digest d;
	uint64_t len;
	struct tier_loc loc;    /* where the bucket holds it; from the manifest, a mark, or its upload */
	size_t first_use;       /* position of its first extent in the manifest (entries, then extents) */
	size_t entry;           /* the entry of that extent: a pack holds the chunks of one file */
	bool need;              /* still to be sent (after the first pass) */
};

/* A run of refs (by first use) that goes up as one object: a pack, or one chunk's own object. */
struct chunk_group {
	size_t first, n;        /* into the job's order */
	uint64_t bytes;         /* object bytes */
};

struct chunk_job {
	struct tier *t;
	uint64_t epoch;         /* bucket GC epoch read before the first chunk */
	struct chunk_ref *refs; /* sorted by digest */
	size_t n;
	size_t *order;          /* refs still to send, by first use (second pass) */
	struct chunk_group *groups;
	size_t ngroups;
	bool sending;           /* second pass: workers take groups, not refs */
	atomic_size_t next;
	pthread_mutex_t lock;   /* protects packs, rc and msg */
	pthread_cond_t headed;  /* a HEAD of a pack ended */
	struct digest_table packs;  /* first pass: each pack HEADed, with its size (0: not there), or
				     * PACK_HEADING while a worker's HEAD of it is on its way */
	int rc;                 /* first failure */
	char msg[400];
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

#define PACK_HEADING UINT64_MAX

/* Whether the bucket holds r at r->loc (0 or -ENOENT, or the client's error). A pack is HEADed once
 * per upload, not once per member: its size, kept in the job, settles every member after the first
 * (a pack is written whole, once, under a name that fixes its content). Workers that want a pack
 * whose HEAD is on its way wait for it. */
static int ref_head(struct chunk_job *j, const struct chunk_ref *r, struct s3_result *res)
{
	struct tier *t = j->t;
	char key[TIER_PREFIX_MAX + 160];
	uint64_t size = 0;
	bool mine = false;
	int rc = 0;

	if (!r->loc.packed)
		return tier_loc_head(t->client, t->prefix, &r->d, &r->loc, r->len, res);
	pthread_mutex_lock(&j->lock);
	while (digest_table_get(&j->packs, &r->loc.pack, &size) && size == PACK_HEADING)
		pthread_cond_wait(&j->headed, &j->lock);
	if (!digest_table_has(&j->packs, &r->loc.pack)) {
		rc = digest_table_add(&j->packs, &r->loc.pack, PACK_HEADING, NULL);
		mine = rc == 0;
	}
	pthread_mutex_unlock(&j->lock);
	if (rc < 0)
		return rc;
	if (!mine)
		return size && tier_loc_fits(&r->loc, r->len, size) ? 0 : -ENOENT;
	rc = tier_pack_key(t->prefix, &r->loc.pack, key, sizeof(key));
	if (rc == 0)
		rc = s3_head(t->client, key, &size, NULL, res);
	if (rc == -ENOENT)
		size = 0;
	pthread_mutex_lock(&j->lock);
	if (rc < 0 && rc != -ENOENT)
		digest_table_drop(&j->packs, &r->loc.pack);  /* the job fails; a waiter tries on its own */
	else
		digest_table_set_len(&j->packs, &r->loc.pack, size);
	pthread_cond_broadcast(&j->headed);
	pthread_mutex_unlock(&j->lock);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return size && tier_loc_fits(&r->loc, r->len, size) ? 0 : -ENOENT;
}

/* The bucket holds r at r->loc, as seen in this epoch: mark it and count it. */
static void ref_settled(struct chunk_job *j, struct chunk_ref *r, bool sent)
{
	struct meta_remote mark = { .epoch = j->epoch, .packed = r->loc.packed, .pack = r->loc.pack,
				    .pack_off = r->loc.off };

	meta_chunk_mark_remote(j->t->meta, &r->d, &mark);
	r->need = false;
	job_credit(j->t, r->len, sent);
}

/* First pass, one ref: settled if the bucket holds it, else left to send. */
static int check_ref(struct chunk_job *j, struct chunk_ref *r)
{
	struct tier *t = j->t;
	struct s3_result res = { 0 };
	struct meta_remote mark;
	uint64_t plen;
	int rc;

	r->need = true;
	if (meta_chunk_remote_get(t->meta, &r->d, &mark) == 0) {
		r->loc = (struct tier_loc){ .packed = mark.packed, .pack = mark.pack, .off = mark.pack_off };
		if (mark.epoch == j->epoch) {  /* an older mark is only a hint: that collection may have deleted it */
			r->need = false;
			job_credit(t, r->len, false);
			return 0;
		}
	} else if (!r->loc.packed && chunk_store_stat(store_chunks(t->st), &r->d, &plen) == 0) {
		/* A local chunk not known in the bucket: sent in the second pass, a pack's HEAD finds it
		 * there when another node packed it alike. */
		r->loc = (struct tier_loc){ 0 };
		return 0;
	}
	/* A mark of an older epoch, or a location the manifest names (own object when it names none). */
	rc = ref_head(j, r, &res);
	if (rc == 0) {
		ref_settled(j, r, false);
		return 0;
	}
	if (rc != -ENOENT) {
		job_fail(j, rc, "checking a chunk in the bucket", &res);
		return rc;
	}
	r->loc = (struct tier_loc){ 0 };
	return 0;
}

/* Second pass, one group: a chunk as its own object, or a pack of several. *buf grows as needed. */
static int send_group(struct chunk_job *j, const struct chunk_group *g, uint8_t **buf, size_t *cap)
{
	struct tier *t = j->t;
	char key[TIER_PREFIX_MAX + 160];
	struct s3_result res = { 0 };
	struct digest d[TIER_PACK_MEMBERS_MAX], name;
	uint64_t len[TIER_PACK_MEMBERS_MAX], size = 0, off;
	size_t hlen = 0;
	bool packed = g->n > 1;
	int rc;

	for (size_t i = 0; i < g->n; i++) {
		const struct chunk_ref *r = &j->refs[j->order[g->first + i]];
		d[i] = r->d;
		len[i] = r->len;
	}
	if (!*buf || *cap < g->bytes) {
		free(*buf);
		*buf = malloc(g->bytes);
		*cap = *buf ? g->bytes : 0;
		if (!*buf)
			return -ENOMEM;
	}
	if (packed) {
		hlen = tier_pack_header(d, len, g->n, *buf, &name);
		rc = tier_pack_key(t->prefix, &name, key, sizeof(key));
	} else {
		rc = tier_chunk_key(t->prefix, &d[0], key, sizeof(key));
	}
	if (rc < 0)
		return rc;
	/* Another node (or an upload cut short here) may have stored it already. */
	rc = s3_head(t->client, key, &size, NULL, &res);
	bool there = rc == 0 && size == g->bytes;
	if (rc < 0 && rc != -ENOENT) {
		job_fail(j, rc, packed ? "checking a pack in the bucket" : "checking a chunk in the bucket", &res);
		return rc;
	}
	off = hlen;
	for (size_t i = 0; i < g->n && !there; i++) {
		tier_chunk_header(&d[i], len[i], *buf + off);
		rc = store_chunk_read(t->st, &d[i], 0, *buf + off + TIER_CHUNK_HDR, (size_t)len[i]);
		if (rc < 0) {
			job_fail(j, rc, "reading a local chunk", NULL);
			return rc;
		}
		off += TIER_CHUNK_HDR + len[i];
	}
	if (!there) {
		tier_throttle(t, g->bytes);
		memset(&res, 0, sizeof(res));
		rc = s3_put(t->client, key, *buf, (size_t)g->bytes, NULL, 0, &res);
		if (rc < 0) {
			job_fail(j, rc, packed ? "uploading a pack" : "uploading a chunk", &res);
			return rc;
		}
	}
	off = hlen;
	for (size_t i = 0; i < g->n; i++) {
		struct chunk_ref *r = &j->refs[j->order[g->first + i]];
		r->loc = packed ? (struct tier_loc){ .packed = true, .pack = name, .off = off } : (struct tier_loc){ 0 };
		ref_settled(j, r, !there);
		off += TIER_CHUNK_HDR + len[i];
	}
	if (!there && packed) {
		pthread_mutex_lock(&t->lock);
		t->status.packs_uploaded++;
		pthread_mutex_unlock(&t->lock);
	}
	return 0;
}

static void *chunk_worker(void *arg)
{
	struct chunk_job *j = arg;
	uint8_t *buf = NULL;
	size_t cap = 0;

	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= (j->sending ? j->ngroups : j->n) || atomic_load(&j->t->stopping))
			break;
		pthread_mutex_lock(&j->lock);
		int failed = j->rc;
		pthread_mutex_unlock(&j->lock);
		if (failed)
			break;
		int rc = j->sending ? send_group(j, &j->groups[i], &buf, &cap) : check_ref(j, &j->refs[i]);
		if (rc == -ENOMEM)
			job_fail(j, rc, "uploading a chunk", NULL);
	}
	free(buf);
	return NULL;
}

/* Runs the job's current pass on upload_threads workers (or n of them, when fewer items). */
static void run_pass(struct chunk_job *j, size_t items)
{
	pthread_t th[64];
	size_t nth = j->t->threads < 64 ? j->t->threads : 64, started = 0;

	atomic_store(&j->next, 0);
	if (nth > items)
		nth = items;
	for (size_t i = 0; i < nth; i++)
		if (pthread_create(&th[started], NULL, chunk_worker, j) == 0)
			started++;
	if (started == 0 && items > 0)
		chunk_worker(j);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
}

/* The distinct chunks of a manifest, sorted by digest, each with where it is first used and the
 * location the manifest gives it (a persist selection's earlier upload). */
static int manifest_chunks(const struct tier_manifest *m, struct chunk_ref **out, size_t *n)
{
	size_t total = 0, k = 0;
	struct chunk_ref *r;

	for (size_t i = 0; i < m->n; i++)
		total += m->entries[i].next;
	r = malloc((total ? total : 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		for (size_t x = 0; x < m->entries[i].next; x++, k++) {
			const struct tier_manifest_extent *e = &m->entries[i].ext[x];
			r[k] = (struct chunk_ref){ .d = e->digest, .len = e->chunk_len, .loc = e->loc, .first_use = k,
						   .entry = i };
		}
	qsort(r, k, sizeof(*r), chunk_ref_cmp);
	*n = 0;
	for (size_t i = 0; i < k; i++) {
		if (*n > 0 && memcmp(&r[*n - 1].d, &r[i].d, DIGEST_LEN) == 0) {
			struct chunk_ref *kept = &r[*n - 1];
			if (r[i].first_use < kept->first_use) {  /* keep the first use, and any location named */
				kept->first_use = r[i].first_use;
				kept->entry = r[i].entry;
			}
			if (!kept->loc.packed && r[i].loc.packed)
				kept->loc = r[i].loc;
			continue;
		}
		r[(*n)++] = r[i];
	}
	*out = r;
	return 0;
}

/* A ref still to send, with its first use: what the second pass is sorted by. */
struct send_order {
	size_t first_use;
	size_t ref;
};

static int send_order_cmp(const void *a, const void *b)
{
	size_t x = ((const struct send_order *)a)->first_use, y = ((const struct send_order *)b)->first_use;

	return x < y ? -1 : x > y;
}

/* Cuts the refs still to send, by first use, into groups: the chunks of one file up to pack_size
 * object bytes and TIER_PACK_MEMBERS_MAX members each; one chunk alone is its own object. */
static int plan_groups(struct chunk_job *j)
{
	struct tier *t = j->t;
	struct send_order *o;
	size_t n = 0;

	for (size_t i = 0; i < j->n; i++)
		n += j->refs[i].need;
	o = malloc((n ? n : 1) * sizeof(*o));
	j->order = malloc((n ? n : 1) * sizeof(*j->order));
	j->groups = malloc((n ? n : 1) * sizeof(*j->groups));
	if (!o || !j->order || !j->groups) {
		free(o);
		return -ENOMEM;
	}
	n = 0;
	for (size_t i = 0; i < j->n; i++)
		if (j->refs[i].need)
			o[n++] = (struct send_order){ .first_use = j->refs[i].first_use, .ref = i };
	qsort(o, n, sizeof(*o), send_order_cmp);
	for (size_t i = 0; i < n; i++)
		j->order[i] = o[i].ref;
	free(o);
	j->ngroups = 0;
	for (size_t i = 0; i < n;) {
		const struct chunk_ref *r = &j->refs[j->order[i]];
		struct chunk_group *g = &j->groups[j->ngroups++];
		uint64_t payload = r->len;

		*g = (struct chunk_group){ .first = i, .n = 1 };
		for (i++; i < n && g->n < TIER_PACK_MEMBERS_MAX; i++, g->n++) {
			const struct chunk_ref *x = &j->refs[j->order[i]];
			if (x->entry != r->entry || payload + x->len > t->pack_size)
				break;
			payload += x->len;
		}
		g->bytes = payload + g->n * TIER_CHUNK_HDR + (g->n > 1 ? TIER_PACK_HDR_FIXED + g->n * TIER_PACK_ENTRY : 0);
	}
	return 0;
}

static int upload_chunks(struct tier *t, uint64_t epoch, struct chunk_ref *refs, size_t n, uint64_t *bytes,
			 char *msg, size_t msgsz)
{
	struct chunk_job j = { .t = t, .n = n, .epoch = epoch, .refs = refs };

	*bytes = 0;
	for (size_t i = 0; i < n; i++)
		*bytes += refs[i].len;
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.headed, NULL);
	run_pass(&j, n);
	if (j.rc == 0 && !atomic_load(&t->stopping)) {
		j.rc = plan_groups(&j);
		if (j.rc == 0) {
			j.sending = true;
			run_pass(&j, j.ngroups);
		} else {
			snprintf(j.msg, sizeof(j.msg), "planning the upload: %s", strerror(-j.rc));
		}
	}
	if (j.rc == 0 && atomic_load(&t->stopping))
		j.rc = -ECANCELED;
	if (j.rc)
		snprintf(msg, msgsz, "%s", j.msg);
	pthread_mutex_destroy(&j.lock);
	pthread_cond_destroy(&j.headed);
	digest_table_free(&j.packs);
	free(j.order);
	free(j.groups);
	return j.rc;
}

/* Gives every extent of m the location its chunk was found at or sent to (refs sorted by digest). */
static void set_locations(struct tier_manifest *m, const struct chunk_ref *refs, size_t n)
{
	for (size_t i = 0; i < m->n; i++)
		for (size_t x = 0; x < m->entries[i].next; x++) {
			struct tier_manifest_extent *e = &m->entries[i].ext[x];
			const struct chunk_ref *r = bsearch(&e->digest, refs, n, sizeof(*refs), chunk_ref_cmp);
			if (r)
				e->loc = r->loc;
		}
}

/* Publishes this node's state with every chunk the manifest names (a persist selection reuses
 * chunks of earlier uploads that the local index may no longer hold) and reads the GC epoch. */
static int prepare_refs(struct tier *t, const struct chunk_ref *refs, size_t n, uint64_t *epoch, char *msg,
			size_t msgsz)
{
	struct digest *d = malloc((n ? n : 1) * sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		d[i] = refs[i].d;
	rc = tier_gc_prepare(t, d, n, epoch, msg, msgsz);
	free(d);
	return rc;
}

/* ---- seal ids ---- */

static int seal_id_new(char out[TIER_SEAL_ID_LEN + 1])
{
	unsigned char b[TIER_SEAL_ID_LEN / 2];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

enum own_part { PART_ABSENT, PART_OURS, PART_STALE };

int tier_job_read(struct meta *m, uint64_t ino, char *job)
{
	int len = meta_get_xattr(m, ino, TIER_JOB_XATTR, job, TIER_JOB_MAX);

	if (len > 0 && len <= TIER_JOB_MAX) {
		job[len] = '\0';
		if (tier_job_ok(job))
			return 0;
	}
	job[0] = '\0';
	return len < 0 ? len : -EINVAL;
}

/* Whether the version has no COMMIT: 1 yes, 0 it has one, or the client's error (msg). */
static int commit_absent(struct tier *t, const char *run, const char *version, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], etag[S3_ETAG_MAX];
	struct s3_result res = { 0 };
	uint64_t size;
	int rc = tier_key(t, key, sizeof(key), "runs/%s/%s/COMMIT", run, version);

	if (rc == 0)
		rc = s3_head(t->client, key, &size, etag, &res);
	if (rc == -ENOENT)
		return 1;
	if (rc < 0)
		snprintf(msg, msgsz, "looking for the version's COMMIT: %.300s", res.message[0] ? res.message :
			 strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* What this node's manifest key of v holds: nothing; a part of this very sealing of v (an earlier
 * attempt; its seal id in seal_id, "" when it was written before seal ids); or an object that may be
 * replaced (PART_STALE): one that cannot be a part of anything, or, when job is not NULL, the part of
 * an earlier sealing by another job (a job that died before the version was committed: job is this
 * sealing's, the part was sealed before this one, and the version has no COMMIT). -EEXIST (msg) when
 * it is a part of another sealing of a version of that name; or the client's error. */
static int own_part(struct tier *t, const char *run, const char *version, const struct meta_version *v,
		    const char *job, enum own_part *what, char seal_id[TIER_SEAL_ID_LEN + 1], char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], why[600];
	struct tier_manifest m;
	int rc;

	*what = PART_ABSENT;
	seal_id[0] = '\0';
	rc = tier_key(t, key, sizeof(key), "runs/%s/%s/%s.manifest", run, version, t->node_id);
	if (rc == 0)
		rc = tier_manifest_get(t->client, key, &m, why, sizeof(why));
	if (rc == -ENOENT)
		return 0;
	if (rc == -EBADMSG) {
		tier_logf(t, S3_LOG_WARN, "S3 tier: replacing %s", why);
		*what = PART_STALE;
		return 0;
	}
	if (rc < 0) {
		snprintf(msg, msgsz, "reading this node's part: %.300s", why);
		return rc;
	}
	if (m.seal_seq == v->seal_seq && m.sealed_ns == v->sealed_ns) {
		*what = PART_OURS;
		memcpy(seal_id, m.seal_id, sizeof(m.seal_id));
	} else if (job && strcmp(m.job, job) != 0 && m.sealed_ns < v->sealed_ns &&
		   (rc = commit_absent(t, run, version, msg, msgsz)) != 0) {
		if (rc > 0) {
			tier_logf(t, S3_LOG_WARN, "S3 tier: %s/%s: replacing this node's part of an uncommitted earlier "
				  "sealing (job '%.128s', seal id %s) with this job's ('%.128s')", run, version, m.job,
				  m.seal_id[0] ? m.seal_id : "none", job);
			*what = PART_STALE;
			rc = 0;
		}
	} else {
		snprintf(msg, msgsz, "the bucket holds another upload of this version by node %.64s (sealed at %lld, "
			 "not %lld; job '%.40s'): remove or rename the version here, give this node another node-id, "
			 "or set the run's user.pec.job for a new launch", t->node_id, (long long)m.sealed_ns,
			 (long long)v->sealed_ns, m.job);
		rc = -EEXIST;
	}
	tier_manifest_free(&m);
	return rc;
}

/* Gives m the seal id of this upload: the one an earlier attempt left in the bucket, else a new one.
 * *if_absent tells whether the manifest must be created only if absent (nothing of ours is there). */
static int choose_seal_id(struct tier *t, const struct meta_version *v, struct tier_manifest *m, bool *if_absent,
			  char *msg, size_t msgsz)
{
	enum own_part what = PART_ABSENT;
	int rc = own_part(t, m->run, m->version, v, m->job, &what, m->seal_id, msg, msgsz);

	if (rc < 0)
		return rc;
	*if_absent = what == PART_ABSENT;
	if (m->seal_id[0])
		return 0;
	rc = seal_id_new(m->seal_id);
	if (rc < 0)
		snprintf(msg, msgsz, "no random bytes for a seal id");
	return rc;
}

static int put_manifest(struct tier *t, const struct meta_version *v, const struct tier_manifest *m, bool if_absent,
			char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], *text = NULL, theirs[TIER_SEAL_ID_LEN + 1];
	struct s3_result res = { 0 };
	enum own_part what = PART_ABSENT;
	size_t len;
	int rc;

	rc = tier_manifest_encode(m, &text, &len);
	if (rc < 0)
		return rc;
	rc = tier_key(t, key, sizeof(key), "runs/%s/%s/%s.manifest", m->run, m->version, t->node_id);
	if (rc == 0)
		rc = s3_put(t->client, key, text, len, NULL, if_absent ? S3_PUT_IF_ABSENT : 0, &res);
	free(text);
	if (rc == -EEXIST) {
		/* Created meanwhile: by this very call when an answer was lost, or by another upload. */
		rc = own_part(t, m->run, m->version, v, NULL, &what, theirs, msg, msgsz);
		if (rc == 0 && (what != PART_OURS || strcmp(theirs, m->seal_id) != 0)) {
			snprintf(msg, msgsz, "another upload created this node's part of the version meanwhile");
			rc = -EEXIST;
		}
		return rc;
	}
	if (rc < 0)
		snprintf(msg, msgsz, "uploading the manifest: %.300s", res.message[0] ? res.message : strerror(-rc));
	return rc;
}

/* What one LIST of a version's folder tells the barrier: how many parts are up, whether COMMIT is,
 * and an FNV-1a hash of the parts' keys and ETags (a part replaced or added changes it). */
struct version_keys {
	unsigned manifests;
	bool commit;
	uint64_t listing;
};

#define FNV1A_BASIS 0xcbf29ce484222325ull

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull;  /* the terminator, so "ab","c" differs from "a","bc" */
}

static int count_version_keys(void *ctx, const struct s3_object *o)
{
	struct version_keys *k = ctx;
	size_t len = strlen(o->key);

	if (o->is_prefix)
		return 0;
	if (len > 9 && strcmp(o->key + len - 9, ".manifest") == 0) {
		k->manifests++;
		k->listing = fnv1a(fnv1a(k->listing, o->key), o->etag);
	} else if (len >= 7 && strcmp(o->key + len - 7, "/COMMIT") == 0) {
		k->commit = true;
	}
	return 0;
}

/* While parts of another job make up a version's count, each look would read every part again;
 * a version whose listing is the one its parts were last read at is known to fall short still. */
static struct tier_short_count *short_count_find(struct tier *t, const struct meta_version *v)
{
	for (size_t i = 0; i < t->nshort; i++)
		if (t->short_counts[i].run == v->run_ino && t->short_counts[i].ino == v->ino)
			return &t->short_counts[i];
	return NULL;
}

static void short_count_note(struct tier *t, const struct meta_version *v, uint64_t listing)
{
	struct tier_short_count *s = short_count_find(t, v);

	if (!s && t->nshort >= 4096)
		t->nshort = 0;  /* versions removed meanwhile: forgetting costs one more read each */
	if (!s) {
		struct tier_short_count *n = realloc(t->short_counts, (t->nshort + 1) * sizeof(*n));
		if (!n)
			return;
		t->short_counts = n;
		s = &t->short_counts[t->nshort++];
		s->run = v->run_ino;
		s->ino = v->ino;
	}
	s->listing = listing;
}

static void short_count_forget(struct tier *t, const struct meta_version *v)
{
	struct tier_short_count *s = short_count_find(t, v);

	if (s)
		*s = t->short_counts[--t->nshort];
}

static int part_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tier_commit_part *)a)->node, ((const struct tier_commit_part *)b)->node);
}

/* The parts COMMIT will name: this node's alone, or (s3-nodes > 1) every manifest of the version
 * sealed by this node's part's job, with this node's checked to be of this sealing. 1 when fewer than
 * s3-nodes parts are of that job (parts of another job made up the count: not complete yet).
 * c->seal_id is this node's part's; "" when that part was written before seal ids, and c then names
 * no parts (a legacy COMMIT). job is the sealing's job when the upload is in hand (seal_id not NULL). */
static int commit_parts(struct tier *t, const struct meta_version *v, const char *seal_id, const char *job,
			struct tier_commit *c, char *msg, size_t msgsz)
{
	struct tier_manifest_set set;
	const struct tier_manifest *own = NULL;
	enum own_part what = PART_ABSENT;
	size_t k = 0;
	int rc;

	if (t->nodes <= 1) {
		if (seal_id)  /* the upload in hand */
			memcpy(c->seal_id, seal_id, sizeof(c->seal_id));
		else if ((rc = own_part(t, c->run, c->version, v, NULL, &what, c->seal_id, msg, msgsz)) < 0)
			return rc;
		if (!seal_id && what != PART_OURS) {
			snprintf(msg, msgsz, "this node's part is gone from the bucket");
			return -ENOENT;
		}
		snprintf(c->job, sizeof(c->job), "%s", job ? job : "");
		c->parts = 1;
		c->part = calloc(1, sizeof(*c->part));
		if (!c->part)
			return -ENOMEM;
		snprintf(c->part[0].node, sizeof(c->part[0].node), "%s", t->node_id);
		memcpy(c->part[0].seal_id, c->seal_id, sizeof(c->seal_id));
		c->npart = c->seal_id[0] ? 1 : 0;
		return 0;
	}
	rc = tier_manifests_load(t->client, t->prefix, c->run, c->version, &set, msg, msgsz);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < set.n; i++)
		if (strcmp(set.m[i].node, t->node_id) == 0)
			own = &set.m[i];
	if (!own) {
		snprintf(msg, msgsz, "this node's part is gone from the bucket");
		rc = -ENOENT;
	} else if (own->seal_seq != v->seal_seq || own->sealed_ns != v->sealed_ns ||
		   (seal_id && strcmp(seal_id, own->seal_id))) {
		snprintf(msg, msgsz, "this node's part in the bucket is of another upload of the version");
		rc = -EEXIST;
	} else if (!(c->part = calloc(set.n, sizeof(*c->part)))) {
		rc = -ENOMEM;
	} else {
		memcpy(c->seal_id, own->seal_id, sizeof(c->seal_id));
		memcpy(c->job, own->job, sizeof(c->job));
		for (size_t i = 0; i < set.n; i++) {
			if (strcmp(set.m[i].job, own->job) != 0)
				continue;  /* a part of another job's sealing of the name: never this one's */
			snprintf(c->part[k].node, sizeof(c->part[k].node), "%s", set.m[i].node);
			memcpy(c->part[k++].seal_id, set.m[i].seal_id, sizeof(set.m[i].seal_id));
		}
		c->parts = k;
		c->npart = c->seal_id[0] ? k : 0;
		qsort(c->part, k, sizeof(*c->part), part_cmp);
		rc = k < t->nodes ? 1 : 0;
	}
	tier_manifest_set_free(&set);
	return rc;
}

/* A COMMIT exists already: committed when it names this node's part with this part's seal id (an
 * earlier attempt of ours, or another node that counted our part), or when it is from before seal
 * ids (its readers take every manifest beside it). Else -EEXIST: another upload committed the name. */
static int commit_check_existing(struct tier *t, const struct tier_commit *ours, char *msg, size_t msgsz)
{
	struct tier_commit c;
	const struct tier_commit_part *p;
	char why[600];
	int rc = tier_commit_get(t->client, t->prefix, ours->run, ours->version, &c, why, sizeof(why));

	if (rc == -EBADMSG) {
		snprintf(msg, msgsz, "a COMMIT that readers refuse is in the way: %.300s", why);
		return -EEXIST;
	}
	if (rc < 0) {
		snprintf(msg, msgsz, "reading the COMMIT in place: %.300s", why);
		return rc;
	}
	p = tier_commit_find(&c, t->node_id);
	if (c.npart == 0 || (p && strcmp(p->seal_id, ours->seal_id) == 0))
		rc = 0;
	else {
		snprintf(msg, msgsz, "the version is committed by another upload (node %.64s, seal id %s) that does "
			 "not include this node's part (seal id %s)", c.node, c.seal_id, ours->seal_id[0] ?
			 ours->seal_id : "none");
		rc = -EEXIST;
	}
	tier_commit_free(&c);
	return rc;
}

/* COMMIT is listed already: whether it counts our part needs only this node's seal id (in hand, or
 * from its manifest) and COMMIT, not every part; a barrier of N nodes that each read all N parts
 * would cost N^2 GETs a version. */
static int commit_listed(struct tier *t, const struct meta_version *v, const char *seal_id, struct tier_commit *c,
			 char *msg, size_t msgsz)
{
	enum own_part what = PART_ABSENT;
	int rc;

	if (seal_id) {
		memcpy(c->seal_id, seal_id, sizeof(c->seal_id));
		return commit_check_existing(t, c, msg, msgsz);
	}
	rc = own_part(t, c->run, c->version, v, NULL, &what, c->seal_id, msg, msgsz);
	if (rc == 0 && what != PART_OURS) {
		snprintf(msg, msgsz, "this node's part is gone from the bucket");
		rc = -ENOENT;
	}
	return rc < 0 ? rc : commit_check_existing(t, c, msg, msgsz);
}

/* The commit barrier: COMMIT is created (once, conditionally) when the version has the manifests of
 * t->nodes nodes sealed by one job, naming each part with its seal id. seal_id and job are this
 * node's part's (NULL: read from the bucket, for a version uploaded earlier that awaited other
 * nodes). *committed tells
 * whether the version is committed now, by us or by another node that counted our part; -EEXIST
 * when another upload holds the name. */
static int commit_if_complete(struct tier *t, const char *run, const char *version, const struct meta_version *v,
			      const char *seal_id, const char *job, bool *committed, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], *text = NULL;
	struct tier_commit c = { .step = v->step, .sealed_ns = v->sealed_ns };
	struct s3_result res = { 0 };
	struct version_keys keys = { .listing = FNV1A_BASIS };
	size_t len;
	int rc;

	*committed = false;
	rc = tier_key(t, key, sizeof(key), "runs/%s/%s/", run, version);
	if (rc == 0 && t->nodes > 1)
		rc = s3_list(t->client, key, NULL, 0, count_version_keys, &keys, &res);
	if (rc < 0) {
		snprintf(msg, msgsz, "listing the version's parts: %.300s", res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	if (t->nodes > 1 && keys.manifests < t->nodes && !keys.commit)
		return 0;
	struct tier_short_count *sc = keys.commit ? NULL : short_count_find(t, v);
	if (sc && sc->listing == keys.listing)
		return 0;  /* the parts are those read last time, which fell short */
	snprintf(c.run, sizeof(c.run), "%s", run);
	snprintf(c.version, sizeof(c.version), "%s", version);
	snprintf(c.node, sizeof(c.node), "%s", t->node_id);
	if (keys.commit) {
		short_count_forget(t, v);
		rc = commit_listed(t, v, seal_id, &c, msg, msgsz);
		*committed = rc == 0;
		tier_commit_free(&c);
		return rc;
	}
	rc = commit_parts(t, v, seal_id, job, &c, msg, msgsz);
	if (rc == 1) {  /* parts of another job's sealing made up the count: wait for this job's */
		short_count_note(t, v, keys.listing);
		tier_commit_free(&c);
		return 0;
	}
	short_count_forget(t, v);
	if (rc == 0)
		rc = tier_commit_encode(&c, &text, &len);
	if (rc == 0)
		rc = tier_key(t, key, sizeof(key), "runs/%s/%s/COMMIT", run, version);
	memset(&res, 0, sizeof(res));
	if (rc == 0)
		rc = s3_put(t->client, key, text, len, NULL, S3_PUT_IF_ABSENT, &res);
	if (rc == -EEXIST && text)
		rc = commit_check_existing(t, &c, msg, msgsz);
	else if (rc < 0 && text)
		snprintf(msg, msgsz, "creating COMMIT: %.300s", res.message[0] ? res.message : strerror(-rc));
	if (rc == 0)
		*committed = true;
	free(text);
	tier_commit_free(&c);
	return rc;
}

/* ---- versions that failed (only the uploader thread changes t->vfail; t->lock for readers) ---- */

/* Records a failed attempt of v; true when its failure differs from the one before (worth a log line). */
static bool vfail_record(struct tier *t, const struct meta_version *v, const char *msg)
{
	struct tier_vfail *f = NULL;
	bool changed = true;
	unsigned shift;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nvfail && !f; i++)
		if (t->vfail[i].run == v->run_ino && t->vfail[i].ino == v->ino)
			f = &t->vfail[i];
	if (!f) {
		struct tier_vfail *n = realloc(t->vfail, (t->nvfail + 1) * sizeof(*n));
		if (n) {
			t->vfail = n;
			f = &t->vfail[t->nvfail++];
			*f = (struct tier_vfail){ .run = v->run_ino, .ino = v->ino, .seen = true };
		}
	}
	if (f) {
		f->attempts++;
		shift = f->attempts - 1 < 15 ? f->attempts - 1 : 15;
		f->next_ns = tier_now_ns() + (int64_t)(TIER_BACKOFF_MIN_MS << shift > TIER_BACKOFF_MAX_MS ?
						       TIER_BACKOFF_MAX_MS : TIER_BACKOFF_MIN_MS << shift) * 1000000;
		changed = strcmp(f->error, msg) != 0;
		snprintf(f->error, sizeof(f->error), "%s", msg);
	}
	pthread_mutex_unlock(&t->lock);
	return changed;
}

/* Forgets the failures of versions that are no longer pending (uploaded, removed, damaged) and of
 * version v when it is not NULL (it just went up). */
static void vfail_sweep(struct tier *t, const struct meta_version *v)
{
	size_t o = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nvfail; i++) {
		struct tier_vfail *f = &t->vfail[i];
		bool gone = v ? f->run == v->run_ino && f->ino == v->ino : !f->seen;
		if (!gone)
			t->vfail[o++] = *f;
	}
	t->nvfail = o;
	for (size_t i = 0; !v && i < t->nvfail; i++)
		t->vfail[i].seen = false;  /* the next scan marks the ones still pending */
	t->status.versions_failing = t->nvfail;
	pthread_mutex_unlock(&t->lock);
}

/* -ECANCELED when version v was removed or damaged since it was picked, or sealed anew. */
static int still_sealed(struct tier *t, const struct meta_version *v, char *msg, size_t msgsz)
{
	struct meta_version now;

	if (meta_get_version(t->meta, v->run_ino, v->ino, &now) == 0 && now.seal_seq == v->seal_seq &&
	    (now.state == META_VERSION_SEALED || now.state == META_VERSION_INCOMPLETE))
		return 0;
	snprintf(msg, msgsz, "removed or damaged while it was uploaded: not committed");
	return -ECANCELED;
}

static int upload_version(struct tier *t, const struct meta_version *v, char *msg, size_t msgsz)
{
	struct meta_upload rec = { 0 };
	struct tier_manifest m;
	struct chunk_ref *refs = NULL;
	uint64_t epoch = 0;
	bool committed = false, if_absent = false;
	size_t n = 0;
	int rc;

	rc = tier_walk_version(t, v, &m);
	if (rc < 0) {
		snprintf(msg, msgsz, "reading version metadata: %s", strerror(-rc));
		return rc;
	}
	rc = tier_persist_apply(t, v, &m, msg, msgsz);  /* persist selection; frees m on failure */
	if (rc < 0)
		return rc;
	tier_job_read(t->meta, v->ino, m.job);  /* the seal copied a checked value, or none: "" */
	pthread_mutex_lock(&t->lock);
	t->cur_run = v->run_ino;
	t->cur_ino = v->ino;
	t->cur_bytes = 0;
	t->status.state = t->status.state == TIER_RETRYING ? TIER_RETRYING : TIER_UPLOADING;
	pthread_mutex_unlock(&t->lock);
	rc = choose_seal_id(t, v, &m, &if_absent, msg, msgsz);  /* before any chunk: a conflict costs nothing */
	if (rc == 0)
		rc = manifest_chunks(&m, &refs, &n);
	if (rc == 0)
		rc = prepare_refs(t, refs, n, &epoch, msg, msgsz);
	if (rc == 0)
		rc = upload_chunks(t, epoch, refs, n, &rec.uploaded_bytes, msg, msgsz);
	if (rc == 0) {
		set_locations(&m, refs, n);
		rc = still_sealed(t, v, msg, msgsz);
	}
	if (rc == 0)
		rc = put_manifest(t, v, &m, if_absent, msg, msgsz);
	if (rc == 0)
		rc = still_sealed(t, v, msg, msgsz);
	if (rc == 0)
		rc = commit_if_complete(t, m.run, m.version, v, m.seal_id, m.job, &committed, msg, msgsz);
	if (rc == 0) {
		rec.chunks = n;
		rec.committed_ns = committed ? tier_wall_ns() : 0;
		rc = meta_put_upload(t->meta, v->run_ino, v->ino, &rec);
		if (rc < 0)
			snprintf(msg, msgsz, "recording the upload: %s", strerror(-rc));
		else if (committed)
			tier_logf(t, S3_LOG_INFO, "S3 tier: %s/%s uploaded (%zu chunks, %llu bytes)", m.run, m.version,
				  n, (unsigned long long)rec.uploaded_bytes);
		else
			tier_logf(t, S3_LOG_INFO, "S3 tier: %s/%s: this node's part uploaded (%zu chunks, %llu bytes); "
				  "COMMIT waits for the parts of %u nodes", m.run, m.version, n,
				  (unsigned long long)rec.uploaded_bytes, t->nodes);
	} else if (rc == -ECANCELED && msg[0]) {
		tier_logf(t, S3_LOG_WARN, "S3 tier: %s/%s %s", m.run, m.version, msg);
	} else if (rc != -ECANCELED) {
		char where[600];
		snprintf(where, sizeof(where), "%.100s/%.100s: %.380s", m.run, m.version, msg);
		snprintf(msg, msgsz, "%.390s", where);
	}
	pthread_mutex_lock(&t->lock);
	t->cur_run = t->cur_ino = 0;
	t->cur_bytes = 0;
	if (rc == 0 && committed)
		t->status.versions_uploaded++;
	pthread_mutex_unlock(&t->lock);
	if (rc == 0 && committed)
		tier_note_committed(t, v->run_ino, v->ino);
	free(refs);
	tier_manifest_free(&m);
	return rc;
}

/* Versions whose part is up but not yet committed: COMMIT once the other nodes' parts are there. */
static void check_awaiting(struct tier *t, const struct pending *p)
{
	char msg[400];

	if (p->nawait == 0 || tier_now_ns() < t->commit_check_ns)
		return;
	t->commit_check_ns = tier_now_ns() + (int64_t)TIER_AWAIT_CHECK_MS * 1000000;
	for (size_t i = 0; i < p->nawait && !atomic_load(&t->stopping); i++) {
		const struct meta_version *v = &p->await[i];
		struct meta_inode run, ver;
		struct meta_upload rec;
		bool committed = false;

		if (meta_get_inode(t->meta, v->run_ino, &run) < 0 || meta_get_inode(t->meta, v->ino, &ver) < 0 ||
		    meta_get_upload(t->meta, v->run_ino, v->ino, &rec) < 0)
			continue;  /* removed meanwhile */
		if (commit_if_complete(t, run.name, ver.name, v, NULL, NULL, &committed, msg, sizeof(msg)) < 0) {
			tier_logf(t, S3_LOG_WARN, "S3 tier: %s/%s: %s", run.name, ver.name, msg);
			continue;
		}
		if (!committed)
			continue;
		rec.committed_ns = tier_wall_ns();
		if (meta_put_upload(t->meta, v->run_ino, v->ino, &rec) == 0) {
			tier_logf(t, S3_LOG_INFO, "S3 tier: %s/%s committed: every node's part is uploaded", run.name,
				  ver.name);
			pthread_mutex_lock(&t->lock);
			t->status.versions_uploaded++;
			if (t->status.versions_awaiting_nodes > 0)
				t->status.versions_awaiting_nodes--;
			pthread_mutex_unlock(&t->lock);
			tier_note_committed(t, v->run_ino, v->ino);
		}
	}
}

void tier_note_sealed(struct tier *t)
{
	pthread_mutex_lock(&t->lock);
	t->scan_now = true;
	pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

/* Sleeps ms on the wake condition; returns early when the tier is closed or a version was sealed. */
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
	while (!atomic_load(&t->stopping) && !t->scan_now)
		if (pthread_cond_timedwait(&t->wake, &t->lock, &until) != 0)
			break;
	t->scan_now = false;
	pthread_mutex_unlock(&t->lock);
}

void *tier_upload_main(void *arg)
{
	struct tier *t = arg;
	char msg[400];

	while (!atomic_load(&t->stopping)) {
		struct pending p = { .t = t, .now = tier_now_ns(), .wake_ns = INT64_MAX };
		int rc = meta_list_dir(t->meta, META_ROOT_INO, NULL, pending_run, &p);

		if (rc == 0)
			vfail_sweep(t, NULL);
		pthread_mutex_lock(&t->lock);
		t->status.versions_pending = p.versions;
		t->status.bytes_pending = p.bytes;
		t->status.versions_awaiting_nodes = p.awaiting;
		if (!p.found && t->nvfail == 0 && t->status.state == TIER_UPLOADING)
			t->status.state = TIER_IDLE;
		pthread_mutex_unlock(&t->lock);
		if (rc == 0)
			check_awaiting(t, &p);
		free(p.await);
		if (rc < 0 || !p.found) {
			int64_t wait_ms = (p.wake_ns - tier_now_ns()) / 1000000 + 1;
			tier_publish_idle(t);
			tier_cache_evict(t);
			tier_wait(t, wait_ms < 1 ? 1 : wait_ms > TIER_SCAN_MS ? TIER_SCAN_MS : (unsigned)wait_ms);
			continue;
		}
		msg[0] = '\0';
		rc = upload_version(t, &p.best, msg, sizeof(msg));
		if (rc == 0 || rc == -ECANCELED) {
			vfail_sweep(t, &p.best);
			pthread_mutex_lock(&t->lock);
			if (t->status.state == TIER_RETRYING && t->nvfail == 0) {
				t->status.state = TIER_UPLOADING;
				t->status.error[0] = '\0';
				tier_logf(t, S3_LOG_INFO, "S3 tier: uploads to %s resumed", t->uri);
			}
			pthread_mutex_unlock(&t->lock);
			tier_cache_evict(t);
			continue;
		}
		bool changed = vfail_record(t, &p.best, msg);
		pthread_mutex_lock(&t->lock);
		t->status.failures++;
		t->status.versions_failing = t->nvfail;
		t->status.state = TIER_RETRYING;
		snprintf(t->status.error, sizeof(t->status.error), "%s", msg);
		pthread_mutex_unlock(&t->lock);
		/* Once per change of a version's failure, not once per retry: an outage is one message a
		 * version. */
		if (changed)
			tier_logf(t, S3_LOG_ERROR, "S3 tier: upload to %s failed: %s; retrying with backoff, nothing "
				  "is lost", t->uri, msg);
	}
	return NULL;
}

/* tier_persist.c - the persist hook the uploader calls for each version (store/tier/tier.h): under
 * `s3-persist pec` (or a run's user.pec.persist) it reads the version's fixed composition, finds this
 * node's previous upload of the run in the bucket, rewrites the manifest (tier_persist_rewrite.c) and
 * stores the remote composition beside it. Under `full`, or for a version without a composition, the
 * manifest is left as walked.
 *
 * The previous upload is the version of the run with this node's manifest and composition and the
 * highest seal_seq below the version's; COMMIT is not required, since the manifest goes up only after
 * all its chunks and a part waiting for other nodes' parts is as good a base as a committed one.
 * Each upload remembers itself as the run's next base (the 'B' record, written once its composition
 * is stored), so the next upload reads that manifest and composition directly. The record is only a
 * hint: the manifest found under its key must carry the recorded seal_seq and sealed_ns, and
 * anything else (no record, as after an upgrade or the loss of an unsynced write; the manifest gone,
 * as after bucket gc or an upload that failed after its composition; another upload under the key;
 * a record that is not below the version, as for a retry) makes the hook list the run and choose as
 * before records existed. That way it is right after a restart, after the local copy of that version
 * was retired, and after an upload that failed half way. In the listing, manifests are read newest
 * first by their Last-Modified (uploads of one node go one at a time in seal order), so normally one
 * is read. A composition that disagrees with its manifest (an attempt cut short between the two)
 * costs at most an upload: tier_persist_rewrite reuses a unit only where both name the same source.
 * Runs on the uploader thread only; the hook keeps no state besides the mount's settings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "compose.h"
#include "log.h"
#include "tier_persist.h"

/* Manifests whose Last-Modified is this close to the newest usable one are read too: S3 gives the
 * time in seconds on some servers, so uploads within one second are not ordered by it. */
#define TP_MTIME_SLACK_S 2

struct tier_persist {
	bool pec;            /* the mount's s3-persist is "pec" */
	uint32_t k_persist;  /* the mount's s3-k-persist */
};

/* One version of the run seen in the bucket listing. */
struct tp_cand {
	char *name;
	int64_t mtime;           /* this node's manifest, seconds */
	bool manifest, comp;
};

struct tp_listing {
	const char *node;
	size_t skip;             /* length of "PREFIX/runs/RUN/" */
	struct tp_cand *c;
	size_t n, cap;
};

/* This node's previous upload of the run. */
struct tp_prev {
	bool found;
	struct tier_manifest m;
	struct pec_composition *comp;
};

static int tp_fail(char *msg, size_t msgsz, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int tp_fail(char *msg, size_t msgsz, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
	return rc;
}

static int tp_key(const char *prefix, char *buf, size_t size, const char *run, const char *version,
		  const char *file)
{
	int n = snprintf(buf, size, "%s%sruns/%s/%s%s%s", prefix, prefix[0] ? "/" : "", run, version,
			 version[0] ? "/" : "", file);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Seconds of an ISO 8601 time as S3 lists it ("2026-11-27T10:11:12.345Z"); 0 when unreadable. */
static int64_t tp_mtime(const char *iso)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!iso || !strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static int tp_list_one(void *ctx, const struct s3_object *o)
{
	struct tp_listing *l = ctx;
	const char *rel = o->key + l->skip, *slash, *file;
	size_t nlen = strlen(l->node);
	struct tp_cand *c;

	if (o->is_prefix || strlen(o->key) <= l->skip || !(slash = strchr(rel, '/')) || strchr(slash + 1, '/'))
		return 0;
	file = slash + 1;
	c = l->n ? &l->c[l->n - 1] : NULL;
	/* Keys come in order, so the objects of one version are adjacent. */
	if (!c || strncmp(c->name, rel, (size_t)(slash - rel)) != 0 || c->name[slash - rel] != '\0') {
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			c = realloc(l->c, cap * sizeof(*c));
			if (!c)
				return -ENOMEM;
			l->c = c;
			l->cap = cap;
		}
		c = &l->c[l->n];
		memset(c, 0, sizeof(*c));
		c->name = strndup(rel, (size_t)(slash - rel));
		if (!c->name)
			return -ENOMEM;
		l->n++;
	}
	if (strncmp(file, l->node, nlen) == 0 && strcmp(file + nlen, ".manifest") == 0) {
		c->manifest = true;
		c->mtime = tp_mtime(o->last_modified);
	} else if (strncmp(file, l->node, nlen) == 0 && strcmp(file + nlen, TIER_PERSIST_COMP_SUFFIX) == 0) {
		c->comp = true;
	}
	return 0;
}

static void tp_listing_free(struct tp_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->c[i].name);
	free(l->c);
}

static int tp_cand_newest_first(const void *a, const void *b)
{
	const struct tp_cand *x = a, *y = b;

	return x->mtime < y->mtime ? 1 : x->mtime > y->mtime ? -1 : 0;
}

/* Reads object key (at most TIER_MANIFEST_MAX_BYTES) into *text. */
static int tp_get(const struct tier_persist_call *call, const char *key, char **text, size_t *len, char *msg,
		  size_t msgsz)
{
	struct s3_result res = { 0 };
	int rc = s3_get_all(call->client, key, TIER_MANIFEST_MAX_BYTES, (void **)text, len, &res);

	if (rc < 0 && rc != -ENOENT)
		tp_fail(msg, msgsz, rc, "reading %.200s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
	return rc;
}

/* This node's manifest of version name, checked to be what its key says. 1 when read, 0 when it is
 * gone or unusable (logged), or -errno with msg. */
static int tp_read_manifest(const struct tier_persist_call *call, const char *run, const char *name,
			    struct tier_manifest *out, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], file[TIER_NODE_ID_MAX + 16], err[256];
	char *text = NULL;
	size_t len;
	int rc;

	snprintf(file, sizeof(file), "%s.manifest", call->node_id);
	rc = tp_key(call->prefix, key, sizeof(key), run, name, file);
	if (rc == 0)
		rc = tp_get(call, key, &text, &len, msg, msgsz);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = tier_manifest_parse(key, text, len, out, err, sizeof(err));  /* names checked against the key */
	free(text);
	if (rc < 0) {
		pecfs_log_warn("S3 tier: ignoring %s as a previous upload: %s", key, err);
		return 0;
	}
	return 1;
}

/* The remote composition beside prev's manifest; without a readable one there is no previous
 * upload to build on (it was uploaded in full, or the object is damaged): the version goes up whole. */
static int tp_read_comp(const struct tier_persist_call *call, struct tp_prev *prev, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], file[TIER_NODE_ID_MAX + 16], err[256];
	char *text = NULL;
	size_t len;
	int rc;

	snprintf(file, sizeof(file), "%s%s", call->node_id, TIER_PERSIST_COMP_SUFFIX);
	rc = tp_key(call->prefix, key, sizeof(key), prev->m.run, prev->m.version, file);
	if (rc == 0)
		rc = tp_get(call, key, &text, &len, msg, msgsz);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		rc = pec_composition_from_json(text, len, &prev->comp, err, sizeof(err));
		free(text);
		if (rc == 0 && strcmp(prev->comp->name, prev->m.version) != 0) {
			snprintf(err, sizeof(err), "it is the composition of %.200s", prev->comp->name);
			pec_composition_free(prev->comp);
			prev->comp = NULL;
			rc = -EINVAL;
		}
		if (rc == -ENOMEM)
			return rc;
	} else {
		snprintf(err, sizeof(err), "it is gone");
	}
	if (rc < 0) {
		pecfs_log_warn("S3 tier: ignoring %s as a previous upload: %s", key, err);
		tier_manifest_free(&prev->m);
		prev->found = false;
	}
	return 0;
}

/* Picks the previous upload among the listed candidates, newest manifest first. */
static int tp_pick(const struct tier_persist_call *call, const char *run, struct tp_listing *l, struct tp_prev *prev,
		   char *msg, size_t msgsz)
{
	int64_t best_mtime = 0;
	int rc = 0;

	if (l->n > 1)
		qsort(l->c, l->n, sizeof(*l->c), tp_cand_newest_first);
	for (size_t i = 0; i < l->n; i++) {
		struct tier_manifest m;

		if (!l->c[i].manifest || !l->c[i].comp)
			continue;
		if (prev->found && l->c[i].mtime < best_mtime - TP_MTIME_SLACK_S)
			break;
		rc = tp_read_manifest(call, run, l->c[i].name, &m, msg, msgsz);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if (m.seal_seq >= call->version->seal_seq || (prev->found && m.seal_seq <= prev->m.seal_seq)) {
			tier_manifest_free(&m);
			continue;
		}
		if (prev->found)
			tier_manifest_free(&prev->m);
		prev->m = m;
		prev->found = true;
		best_mtime = l->c[i].mtime;
	}
	return prev->found ? tp_read_comp(call, prev, msg, msgsz) : 0;
}

/* The run's recorded base (the 'B' record): 0, or -ENOENT when there is none or it does not read. */
static int tp_base_get(const struct tier_persist_call *call, char **name, uint64_t *seal_seq, int64_t *sealed_ns)
{
	char *text = NULL;
	size_t len;
	json_t *o = NULL;
	json_int_t fmt, seq, ns;
	const char *v;
	int rc = meta_get_persist_base(call->meta, call->version->run_ino, &text, &len);

	if (rc == 0) {
		o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		if (!o || json_unpack(o, "{s:I, s:s, s:I, s:I}", "format", &fmt, "version", &v, "seal_seq", &seq,
				      "sealed_ns", &ns) < 0 || fmt != 1 || seq <= 0 || !(*name = strdup(v))) {
			rc = -EINVAL;
		} else {
			*seal_seq = (uint64_t)seq;
			*sealed_ns = (int64_t)ns;
		}
	}
	if (rc < 0 && rc != -ENOENT)
		pecfs_log_warn("S3 tier: run %llu: the record of its last persist selection does not read (%s); "
			       "listing the run instead", (unsigned long long)call->version->run_ino, strerror(-rc));
	json_decref(o);
	free(text);
	return rc < 0 ? -ENOENT : 0;
}

/* Records version m as the run's base for its next upload. Unsynced: losing it costs one listing. */
static void tp_base_put(const struct tier_persist_call *call, const struct tier_manifest *m)
{
	json_t *o = json_pack("{s:i, s:s, s:I, s:I}", "format", 1, "version", m->version, "seal_seq",
			      (json_int_t)m->seal_seq, "sealed_ns", (json_int_t)m->sealed_ns);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct meta_batch *b = text ? meta_batch_new() : NULL;
	int rc = -ENOMEM;

	if (b) {
		meta_batch_put_persist_base(b, call->version->run_ino, text, strlen(text));
		rc = meta_batch_commit(call->meta, b, false);
	}
	if (rc < 0)
		pecfs_log_warn("S3 tier: %s/%s: could not record it as the base of the next persist selection (%s); "
			       "the next upload lists the run instead", m->run, m->version, strerror(-rc));
	meta_batch_free(b);
	free(text);
	json_decref(o);
}

/* The previous upload as the run's record names it: 1 with prev filled, 0 when the record is missing or
 * does not hold (the caller lists the run), or -errno with msg when the bucket cannot be read. */
static int tp_prev_recorded(const struct tier_persist_call *call, const struct tier_manifest *m, struct tp_prev *prev,
			    char *msg, size_t msgsz)
{
	char *name = NULL;
	uint64_t seq = 0;
	int64_t ns = 0;
	int rc;

	if (tp_base_get(call, &name, &seq, &ns) < 0)
		return 0;
	rc = 0;
	if (seq < m->seal_seq)
		rc = tp_read_manifest(call, m->run, name, &prev->m, msg, msgsz);
	if (rc == 1 && (prev->m.seal_seq != seq || prev->m.sealed_ns != ns)) {
		pecfs_log_info("S3 tier: %s/%s: the manifest of the recorded base %s is of another upload; listing "
			       "the run instead", m->run, m->version, name);
		tier_manifest_free(&prev->m);
		rc = 0;
	}
	if (rc == 1) {
		prev->found = true;
		rc = tp_read_comp(call, prev, msg, msgsz);  /* a composition that does not read: found false */
		if (rc == 0)
			rc = prev->found;
	}
	free(name);
	return rc;
}

/* Finds this node's previous upload of the run (prev->found false when there is none). */
static int tp_prev_find(const struct tier_persist_call *call, const struct tier_manifest *m, struct tp_prev *prev,
			char *msg, size_t msgsz)
{
	struct tp_listing l = { .node = call->node_id };
	struct s3_result res = { 0 };
	char key[TIER_PREFIX_MAX + 1024];
	int rc;

	memset(prev, 0, sizeof(*prev));
	rc = tp_prev_recorded(call, m, prev, msg, msgsz);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	rc = tp_key(call->prefix, key, sizeof(key), m->run, "", "");
	if (rc < 0)
		return tp_fail(msg, msgsz, rc, "bucket key too long for run %.100s", m->run);
	l.skip = strlen(key);
	rc = s3_list(call->client, key, NULL, 0, tp_list_one, &l, &res);
	if (rc < 0)
		tp_fail(msg, msgsz, rc, "listing %.200s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
	else
		rc = tp_pick(call, m->run, &l, prev, msg, msgsz);
	tp_listing_free(&l);
	return rc;
}

static void tp_prev_free(struct tp_prev *prev)
{
	if (prev->found)
		tier_manifest_free(&prev->m);
	pec_composition_free(prev->comp);
	memset(prev, 0, sizeof(*prev));
}

/* The version's fixed composition (-ENOENT when it has none). */
static int tp_local_comp(struct meta *meta, uint64_t vino, struct pec_composition **out, char *msg, size_t msgsz)
{
	char *text = NULL, err[256];
	size_t len;
	int rc = meta_get_manifest(meta, vino, &text, &len);

	if (rc == -ENOENT)
		return rc;
	if (rc < 0)
		return tp_fail(msg, msgsz, rc, "reading its composition: %s", strerror(-rc));
	rc = pec_composition_from_json(text, len, out, err, sizeof(err));
	free(text);
	if (rc < 0)
		return tp_fail(msg, msgsz, rc, "its stored composition is unreadable: %.200s", err);
	return 0;
}

/* Stores the remote composition beside the manifest (before any chunk: it names no object). */
static int tp_put_comp(const struct tier_persist_call *call, const struct tier_manifest *m,
		       const struct pec_composition *remote, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 1024], file[TIER_NODE_ID_MAX + 16], *text = NULL;
	struct s3_result res = { 0 };
	int rc;

	snprintf(file, sizeof(file), "%s%s", call->node_id, TIER_PERSIST_COMP_SUFFIX);
	rc = tp_key(call->prefix, key, sizeof(key), m->run, m->version, file);
	if (rc == 0)
		rc = pec_composition_to_json(remote, &text);
	if (rc == 0)
		rc = s3_put(call->client, key, text, strlen(text), NULL, 0, &res);
	free(text);
	if (rc < 0)
		tp_fail(msg, msgsz, rc, "storing %.200s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
	return rc;
}

static int tp_hook(void *ctx, const struct tier_persist_call *call, struct tier_manifest *m, char *msg, size_t msgsz)
{
	const struct tier_persist *tp = ctx;
	struct pec_composition *local = NULL;
	struct tier_persist_result res = { 0 };
	struct tp_prev prev = { 0 };
	bool pec = tp->pec;
	uint32_t k = tp->k_persist;
	int rc;

	pec_runcfg_persist(call->meta, call->version->run_ino, &pec, &k);
	if (!pec)
		return 0;
	rc = tp_local_comp(call->meta, call->version->ino, &local, msg, msgsz);
	if (rc == -ENOENT)
		return 0;  /* nothing composed (no expert files were ever matched): every file goes up */
	if (rc == 0)
		rc = tp_prev_find(call, m, &prev, msg, msgsz);
	if (rc == 0) {
		rc = tier_persist_rewrite(m, local, prev.found ? &prev.m : NULL, prev.comp, k, &res);
		if (rc < 0)
			tp_fail(msg, msgsz, rc, "rewriting the manifest: %s", strerror(-rc));
	}
	if (rc == 0)
		rc = tp_put_comp(call, m, res.remote, msg, msgsz);
	if (rc == 0)
		tp_base_put(call, m);
	if (rc == 0)
		pecfs_log_info("S3 tier: %s/%s: persist selection (k_persist %u): %zu expert units selected, %zu "
			       "uploaded for want of a usable copy in the bucket, %zu reused from earlier uploads%s%s%s",
			       m->run, m->version, k, res.units_new, res.units_forced, res.units_reused,
			       prev.found ? " (previous: " : "", prev.found ? prev.m.version : "", prev.found ? ")" : "");
	pec_composition_free(res.remote);
	pec_composition_free(local);
	tp_prev_free(&prev);
	return rc;
}

void tier_persist_hook_free(void *ctx)
{
	free(ctx);
}

int tier_persist_hook_new(const struct pecfs_config *cfg, struct tier_persist_hook *out)
{
	struct tier_persist *tp = calloc(1, sizeof(*tp));

	if (!tp)
		return -ENOMEM;
	tp->pec = strcmp(cfg->s3_persist, "pec") == 0;
	tp->k_persist = cfg->s3_k_persist;
	*out = (struct tier_persist_hook){ .fn = tp_hook, .ctx = tp, .free = tier_persist_hook_free };
	return 0;
}

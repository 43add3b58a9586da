/* tier_gc_sweep.c - bucket garbage collection (`pecfs gc --remote`), protocol in tier_gc.c and
 * FORMAT.md section 5:
 *
 *   1. take gc/lock (If-None-Match; a lock older than TIER_GC_STALE_NS is broken), raise gc/epoch
 *      and mark it collecting: from here on no node skips an upload or evicts a chunk on an old mark;
 *   2. read every node's state (its head, then the segments it names): the versions nodes keep and
 *      every chunk their indexes hold are live;
 *   3. retire committed versions beyond the newest `keep` of each run that no node keeps and whose
 *      COMMIT is older than the grace period: COMMIT first (readers stop seeing the version), then
 *      its manifests; and abandoned uploads: versions without COMMIT that no node keeps, whose
 *      newest object is older than TIER_GC_ABANDON_GRACES grace periods (a node that died mid-upload
 *      or was forgotten: nobody will ever commit them);
 *   4. every chunk named by a remaining manifest (committed or not) is live; chunk objects that are
 *      not live and older than the grace period are deleted; so are pack objects older than that
 *      which no remaining manifest names and whose member table (read for each such candidate)
 *      lists no live chunk, and objects under packs/ that are no pack at all;
 *   5. delete node state segments no head names (FORMAT.md: "Orphans"), clear collecting, drop the lock.
 * A failure stops the run where it is (nothing half-deleted matters: an unreferenced chunk or a
 * manifest without COMMIT is only garbage for the next run) and still clears collecting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tier_impl.h"

struct gc_version {
	char *run, *version;
	bool committed;
	int64_t commit_ns;      /* LastModified of COMMIT */
	int64_t newest_ns;      /* LastModified of its newest other object (manifests, ...) */
	int64_t step, sealed_ns;
	char **manifests;       /* full keys of its *.manifest objects */
	size_t n_manifests;
	char **others;          /* its other objects (a persist selection's .composition, ...) */
	size_t n_others;
	bool retire;
	bool abandoned;         /* retire: an upload without COMMIT that no one will finish */
};

/* A node state head listed under nodes/, and the segments it named when read. */
struct gc_node {
	char *name;
	int64_t modified;       /* LastModified in the listing; 0 unreadable */
	struct tier_node_seg *segs;
	size_t nsegs;
	bool read;              /* found and read (not forgotten meanwhile) */
};

/* A segment object listed under nodes/<node>/. */
struct gc_seg {
	char *key, *node;
	uint64_t gen;
	int64_t modified;
};

struct gc_run {
	struct s3_client *c;
	char prefix[TIER_PREFIX_MAX];
	const struct tier_gc_options *o;
	struct tier_gc_report *rep;
	FILE *progress;
	char *msg;
	size_t msgsz;
	int64_t now;
	struct tier_gc_epoch ep;
	struct tier_digest_vec live;
	struct gc_node *nodes;  /* sorted by name once listed */
	size_t n_nodes;
	struct gc_seg *segs;
	size_t n_segs;
	char **held;            /* "run/version" kept by some node, sorted */
	size_t n_held;
	struct gc_version *v;
	size_t nv;
	bool locked;
	struct digest *doomed;  /* chunk objects to delete */
	uint64_t *doomed_size;
	size_t n_doomed, cap_doomed;
	struct tier_digest_vec named;  /* packs a remaining manifest names, sorted once all are read */
	struct gc_pack *packs;  /* objects under packs/ that may go: past grace, named by no manifest */
	size_t n_packs, cap_packs;
};

/* An object listed under packs/ that no remaining manifest names and is past the grace period: it goes
 * unless its member table lists a live chunk. */
struct gc_pack {
	char *key;              /* as listed */
	uint64_t size;
	struct digest name;     /* from the key, when well_named */
	bool well_named;        /* the key is packs/<hh>/<hex> as tier_pack_key writes it */
	bool doomed;
	bool not_a_pack;        /* its key or its table is not a pack's: garbage */
};

#define GC_REFRESH_NS (60ll * 1000000000)  /* gc/epoch is rewritten this often on a long run */

/* LastModified ("2026-11-27T23:54:44.000Z") in ns since the epoch; 0 when unreadable. */
static int64_t parse_s3_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	return end ? (int64_t)timegm(&tm) * 1000000000 : 0;
}

static int gc_fail(struct gc_run *g, int rc, const char *what, const struct s3_result *res)
{
	snprintf(g->msg, g->msgsz, "%.120s: %.250s", what, res && res->message[0] ? res->message : strerror(-rc));
	return rc;
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- 1. lock and epoch ---- */

/* When the lock at key was taken (its started_ns), 0 when unreadable. */
static int64_t lock_started(struct gc_run *g, const char *key)
{
	struct s3_result res = { 0 };
	char *text = NULL;
	size_t len;
	int64_t t = 0;

	if (s3_get_all(g->c, key, 4096, (void **)&text, &len, &res) == 0) {
		json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		json_t *st = json_object_get(j, "started_ns");
		t = json_is_integer(st) ? (int64_t)json_integer_value(st) : 0;
		json_decref(j);
	}
	free(text);
	return t;
}

static int gc_lock(struct gc_run *g)
{
	char key[TIER_PREFIX_MAX + 32], body[256], host[64] = "";
	struct s3_result res = { 0 };
	int rc;

	gethostname(host, sizeof(host) - 1);
	snprintf(body, sizeof(body), "{\"format\":1,\"host\":\"%.60s\",\"pid\":%d,\"started_ns\":%lld}", host,
		 (int)getpid(), (long long)g->now);
	tier_gc_key(g->prefix, key, sizeof(key), "gc/lock");
	for (int attempt = 0;; attempt++) {
		struct tier_gc_epoch held;
		memset(&res, 0, sizeof(res));
		rc = s3_put(g->c, key, body, strlen(body), NULL, S3_PUT_IF_ABSENT, &res);
		if (rc == 0) {
			g->locked = true;
			return 0;
		}
		if (rc != -EEXIST)
			return gc_fail(g, rc, "taking gc/lock", &res);
		/* Held by a live collector (its epoch is refreshed at least every minute), or left by a dead
		 * one: broken only when both the lock and the epoch are older than TIER_GC_STALE_NS. */
		rc = tier_gc_epoch_get(g->c, g->prefix, &held, &res);
		if (rc < 0)
			return gc_fail(g, rc, "reading gc/epoch", &res);
		if (attempt > 0 || (held.collecting && !tier_gc_epoch_stale(&held)) ||
		    tier_wall_ns() - lock_started(g, key) < TIER_GC_STALE_NS) {
			snprintf(g->msg, g->msgsz, "another bucket garbage collection holds %.300s (node %.64s)", key,
				 held.node[0] ? held.node : "unknown");
			return -EBUSY;
		}
		if (g->progress)
			fprintf(g->progress, "breaking a stale %s\n", key);
		s3_delete(g->c, key, &res);
	}
}

static void gc_unlock(struct gc_run *g)
{
	char key[TIER_PREFIX_MAX + 32];
	struct s3_result res = { 0 };

	tier_gc_key(g->prefix, key, sizeof(key), "gc/lock");
	s3_delete(g->c, key, &res);
}

static int gc_epoch_set(struct gc_run *g, bool collecting)
{
	struct s3_result res = { 0 };
	int rc;

	g->ep.collecting = collecting;
	g->ep.updated_ns = tier_wall_ns();
	rc = tier_gc_epoch_put(g->c, g->prefix, &g->ep, &res);
	return rc < 0 ? gc_fail(g, rc, "writing gc/epoch", &res) : 0;
}

/* ---- 2. node states ---- */

static int node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gc_node *)a)->name, ((const struct gc_node *)b)->name);
}

/* Sorts one listed key under nodes/: a head "<node>.json" or a segment "<node>/<16 hex>.seg"; anything
 * else is left alone. */
static int list_node_object(void *ctx, const struct s3_object *o)
{
	struct gc_run *g = ctx;
	size_t plen = strlen(g->prefix) + (g->prefix[0] ? 1 : 0) + 6;  /* "PREFIX/nodes/" */
	const char *rel = o->key + plen, *slash;
	size_t len = strlen(o->key) > plen ? strlen(rel) : 0;
	int64_t modified = parse_s3_time(o->last_modified);
	char *end;

	if (o->is_prefix || len <= 5)
		return 0;
	slash = strchr(rel, '/');
	if (!slash && strcmp(rel + len - 5, ".json") == 0) {
		struct gc_node *n = realloc(g->nodes, (g->n_nodes + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		g->nodes = n;
		n = &g->nodes[g->n_nodes];
		memset(n, 0, sizeof(*n));
		n->modified = modified;
		n->name = strndup(rel, len - 5);
		return n->name ? (g->n_nodes++, 0) : -ENOMEM;
	}
	if (slash && strlen(slash + 1) == 16 + 4 && strcmp(slash + 17, ".seg") == 0 && !strchr(slash + 1, '/')) {
		struct gc_seg *sg = realloc(g->segs, (g->n_segs + 1) * sizeof(*sg));
		uint64_t gen = strtoull(slash + 1, &end, 16);
		if (end != slash + 17)
			return 0;
		if (!sg)
			return -ENOMEM;
		g->segs = sg;
		sg = &g->segs[g->n_segs];
		sg->gen = gen;
		sg->modified = modified;
		sg->key = strdup(o->key);
		sg->node = strndup(rel, (size_t)(slash - rel));
		if (!sg->key || !sg->node) {
			free(sg->key);
			free(sg->node);
			return -ENOMEM;
		}
		g->n_segs++;
	}
	return 0;
}

/* Reads one node's state into the live set and the versions nodes hold. */
static int read_node(struct gc_run *g, struct gc_node *n)
{
	char key[TIER_PREFIX_MAX + TIER_NODE_ID_MAX + 16], err[700];
	struct tier_node_state ns;
	size_t before = g->live.n;
	int rc;

	if (tier_gc_key(g->prefix, key, sizeof(key), "nodes/%s.json", n->name) < 0)
		return 0;  /* not a name a node could have */
	rc = tier_node_state_get(g->c, key, &ns, &g->live, err, sizeof(err));
	if (rc == -ENOENT)
		return 0;  /* forgotten meanwhile */
	if (rc < 0) {
		/* Unreadable: its chunks cannot be known, so nothing may be deleted. */
		snprintf(g->msg, g->msgsz, "%.500s; nothing deleted (see pecfs fsck --remote)", err);
		return rc;
	}
	n->read = true;
	n->segs = ns.segs;
	n->nsegs = ns.n_segs;
	ns.segs = NULL;
	for (size_t i = 0; rc == 0 && i < ns.n_versions; i++) {
		char **h = realloc(g->held, (g->n_held + 1) * sizeof(*h));
		if (!h) {
			rc = -ENOMEM;
			break;
		}
		g->held = h;
		g->held[g->n_held++] = ns.versions[i];
		ns.versions[i] = NULL;
	}
	g->rep->nodes++;
	if (g->progress)
		fprintf(g->progress, "node %s: %zu versions kept, %zu chunks in its index (%zu segments, %zu digests)\n",
			ns.node, ns.n_versions, (size_t)ns.chunk_count, ns.n_segs, g->live.n - before);
	tier_node_state_free(&ns);
	return rc;
}

static int read_nodes(struct gc_run *g)
{
	int rc = 0;

	if (g->n_nodes)
		qsort(g->nodes, g->n_nodes, sizeof(*g->nodes), node_cmp);
	for (size_t i = 0; rc == 0 && i < g->n_nodes; i++)
		rc = read_node(g, &g->nodes[i]);
	return rc;
}

/* Whether a listed segment is an orphan old enough to go (FORMAT.md section 5, "Orphans"). */
static bool segment_is_orphan(const struct gc_run *g, const struct gc_seg *sg)
{
	struct gc_node key = { .name = sg->node }, *n;

	if (sg->modified == 0 || g->now - sg->modified < g->o->grace_ns)
		return false;
	n = g->n_nodes ? bsearch(&key, g->nodes, g->n_nodes, sizeof(*g->nodes), node_cmp) : NULL;
	if (!n || !n->read)  /* no head: a new node writes its first segment just before its first head */
		return g->now - sg->modified >= TIER_GC_HEADLESS_SEGMENT_NS;
	for (size_t i = 0; i < n->nsegs; i++)
		if (n->segs[i].gen == sg->gen)
			return false;
	/* A head written after it does not name it: dropped, abandoned or left by a restart, for good. */
	return n->modified > 0 && sg->modified < n->modified;
}

static int delete_orphan_segments(struct gc_run *g)
{
	struct s3_result res = { 0 };
	int rc;

	for (size_t i = 0; i < g->n_segs; i++) {
		if (!segment_is_orphan(g, &g->segs[i]))
			continue;
		if (g->progress)
			fprintf(g->progress, "%s %s (a node state segment no head names)\n",
				g->o->dry_run ? "would delete" : "deleted", g->segs[i].key);
		g->rep->segments_deleted++;
		if (!g->o->dry_run && (rc = s3_delete(g->c, g->segs[i].key, &res)) < 0)
			return gc_fail(g, rc, g->segs[i].key, &res);
	}
	return 0;
}

static int forget_segment(void *ctx, const struct s3_object *o)
{
	struct gc_run *g = ctx;
	struct s3_result res = { 0 };
	int rc;

	if (o->is_prefix)
		return 0;
	if (g->progress)
		fprintf(g->progress, "%s %s\n", g->o->dry_run ? "would delete" : "deleted", o->key);
	g->rep->segments_deleted++;
	if (!g->o->dry_run && (rc = s3_delete(g->c, o->key, &res)) < 0)
		return gc_fail(g, rc, o->key, &res);
	return 0;
}

/* --forget-node: the head first (nothing then names the segments), then every segment. */
static int forget_node(struct gc_run *g)
{
	char key[TIER_PREFIX_MAX + TIER_NODE_ID_MAX + 16];
	struct s3_result res = { 0 };
	int rc;

	if (strchr(g->o->forget_node, '/')) {
		snprintf(g->msg, g->msgsz, "--forget-node %.64s: a node id holds no '/'", g->o->forget_node);
		return -EINVAL;
	}
	tier_gc_key(g->prefix, key, sizeof(key), "nodes/%s.json", g->o->forget_node);
	if (g->progress)
		fprintf(g->progress, "%s node %s\n", g->o->dry_run ? "would forget" : "forgot", g->o->forget_node);
	if (!g->o->dry_run && (rc = s3_delete(g->c, key, &res)) < 0)
		return gc_fail(g, rc, key, &res);
	tier_gc_key(g->prefix, key, sizeof(key), "nodes/%s/", g->o->forget_node);
	rc = s3_list(g->c, key, NULL, 0, forget_segment, g, &res);
	return rc < 0 ? (g->msg[0] ? rc : gc_fail(g, rc, key, &res)) : 0;
}

/* ---- 3. versions ---- */

static struct gc_version *version_slot(struct gc_run *g, const char *run, size_t rlen, const char *ver, size_t vlen)
{
	struct gc_version *v;

	/* Listing is in key order: a version's objects are adjacent. */
	if (g->nv > 0) {
		v = &g->v[g->nv - 1];
		if (strlen(v->run) == rlen && strncmp(v->run, run, rlen) == 0 && strlen(v->version) == vlen &&
		    strncmp(v->version, ver, vlen) == 0)
			return v;
	}
	v = realloc(g->v, (g->nv + 1) * sizeof(*v));
	if (!v)
		return NULL;
	g->v = v;
	v = &g->v[g->nv];
	memset(v, 0, sizeof(*v));
	v->run = strndup(run, rlen);
	v->version = strndup(ver, vlen);
	v->step = -1;
	if (!v->run || !v->version) {
		free(v->run);
		free(v->version);
		return NULL;
	}
	g->nv++;
	return v;
}

static int key_add(char ***keys, size_t *n, const char *key)
{
	char **k = realloc(*keys, (*n + 1) * sizeof(*k));

	if (!k)
		return -ENOMEM;
	*keys = k;
	if (!(k[*n] = strdup(key)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void keys_free(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static int list_version_object(void *ctx, const struct s3_object *o)
{
	struct gc_run *g = ctx;
	size_t plen = strlen(g->prefix) + (g->prefix[0] ? 1 : 0) + 5;  /* "PREFIX/runs/" */
	const char *run = o->key + plen, *ver, *leaf;
	struct gc_version *v;

	if (o->is_prefix || strlen(o->key) <= plen || !(ver = strchr(run, '/')) || !(leaf = strchr(ver + 1, '/')))
		return 0;
	v = version_slot(g, run, (size_t)(ver - run), ver + 1, (size_t)(leaf - ver - 1));
	if (!v)
		return -ENOMEM;
	leaf++;
	if (strcmp(leaf, "COMMIT") == 0) {
		v->committed = true;
		v->commit_ns = parse_s3_time(o->last_modified);
		return 0;
	}
	/* An unreadable date counts as now: never old enough to go. */
	int64_t modified = parse_s3_time(o->last_modified);
	modified = modified > 0 ? modified : g->now;
	if (modified > v->newest_ns)
		v->newest_ns = modified;
	if (strlen(leaf) > 9 && strcmp(leaf + strlen(leaf) - 9, ".manifest") == 0)
		return key_add(&v->manifests, &v->n_manifests, o->key);
	return key_add(&v->others, &v->n_others, o->key);
}

static int read_commit(struct gc_run *g, struct gc_version *v)
{
	struct tier_commit c;
	char why[700];
	int rc = tier_commit_get(g->c, g->prefix, v->run, v->version, &c, why, sizeof(why));

	if (rc < 0) {
		/* Which versions are newest cannot be known: retiring anything could retire the wrong one. */
		snprintf(g->msg, g->msgsz, "%.500s; nothing deleted (see pecfs fsck --remote)", why);
		return rc;
	}
	v->step = c.step;
	v->sealed_ns = c.sealed_ns;
	tier_commit_free(&c);
	return 0;
}

/* Newest first: by step, then by seal time (as restore picks "latest"). */
static int newest_first(const void *a, const void *b)
{
	const struct gc_version *x = *(struct gc_version *const *)a, *y = *(struct gc_version *const *)b;

	if (x->step != y->step)
		return x->step > y->step ? -1 : 1;
	return x->sealed_ns > y->sealed_ns ? -1 : x->sealed_ns < y->sealed_ns;
}

static bool held_by_a_node(const struct gc_run *g, const struct gc_version *v)
{
	char name[2 * META_NAME_MAX + 2], *p = name;

	snprintf(name, sizeof(name), "%s/%s", v->run, v->version);
	return g->n_held > 0 && bsearch(&p, g->held, g->n_held, sizeof(*g->held), str_cmp) != NULL;
}

/* Marks the versions to retire, run by run. */
static int choose_retired(struct gc_run *g)
{
	struct gc_version **cv = malloc((g->nv ? g->nv : 1) * sizeof(*cv));
	size_t i = 0;

	if (!cv)
		return -ENOMEM;
	while (i < g->nv) {
		size_t j = i, n = 0;
		for (; j < g->nv && strcmp(g->v[j].run, g->v[i].run) == 0; j++) {
			struct gc_version *v = &g->v[j];
			if (v->committed)
				cv[n++] = v;
			else
				v->retire = v->abandoned = !held_by_a_node(g, v) && v->newest_ns > 0 &&
							   g->now - v->newest_ns >= TIER_GC_ABANDON_GRACES * g->o->grace_ns;
		}
		qsort(cv, n, sizeof(*cv), newest_first);
		for (size_t k = g->o->keep; g->o->keep > 0 && k < n; k++)
			cv[k]->retire = !held_by_a_node(g, cv[k]) && cv[k]->commit_ns > 0 &&
					g->now - cv[k]->commit_ns >= g->o->grace_ns;
		i = j;
	}
	free(cv);
	return 0;
}

static int retire_version(struct gc_run *g, struct gc_version *v)
{
	char key[TIER_PREFIX_MAX + 2 * META_NAME_MAX + 32];
	struct s3_result res = { 0 };
	int rc = 0;

	if (g->progress)
		fprintf(g->progress, "%s %s/%s%s\n", g->o->dry_run ? "would retire" : "retired", v->run, v->version,
			v->abandoned ? " (an upload without COMMIT that no node keeps)" : "");
	if (v->abandoned)
		g->rep->uploads_abandoned++;
	else
		g->rep->versions_retired++;
	if (g->o->dry_run)
		return 0;
	if (!v->abandoned) {
		tier_gc_key(g->prefix, key, sizeof(key), "runs/%s/%s/COMMIT", v->run, v->version);
		rc = s3_delete(g->c, key, &res);
		if (rc < 0)
			return gc_fail(g, rc, key, &res);
		g->rep->objects_deleted++;
	}
	/* Manifests before the objects beside them: a manifest is never left naming a missing one. */
	for (size_t i = 0; i < v->n_manifests + v->n_others; i++) {
		const char *k = i < v->n_manifests ? v->manifests[i] : v->others[i - v->n_manifests];
		rc = s3_delete(g->c, k, &res);
		if (rc < 0)
			return gc_fail(g, rc, k, &res);
		g->rep->objects_deleted++;
	}
	return 0;
}

static int add_manifest_chunks(struct gc_run *g, const char *key)
{
	struct tier_manifest m;
	char err[400];
	int rc = tier_manifest_get(g->c, key, &m, err, sizeof(err));

	if (rc < 0) {
		/* Its chunks cannot be known: deleting anything could break it. */
		snprintf(g->msg, g->msgsz, "%.400s; nothing deleted (see pecfs fsck --remote)", err);
		return rc;
	}
	for (size_t i = 0; rc == 0 && i < m.n; i++)
		for (size_t x = 0; rc == 0 && x < m.entries[i].next; x++) {
			const struct tier_manifest_extent *e = &m.entries[i].ext[x];
			rc = tier_digest_vec_add(&g->live, &e->digest, 1);
			/* a file's chunks lie in few packs, one after the other: most repeats go here */
			if (rc == 0 && e->loc.packed &&
			    (g->named.n == 0 || !digest_equal(&g->named.d[g->named.n - 1], &e->loc.pack)))
				rc = tier_digest_vec_add(&g->named, &e->loc.pack, 1);
		}
	tier_manifest_free(&m);
	return rc;
}

static bool is_live(const struct gc_run *g, const struct digest *d)
{
	return g->live.n > 0 && bsearch(d, g->live.d, g->live.n, sizeof(*d), digest_cmp) != NULL;
}

/* An object written less than the grace period ago, or whose date does not parse: never deleted. */
static bool within_grace(const struct gc_run *g, const struct s3_object *o)
{
	int64_t modified = parse_s3_time(o->last_modified);

	return modified == 0 || g->now - modified < g->o->grace_ns;
}

/* ---- 4. chunks ---- */

static int judge_chunk(void *ctx, const struct s3_object *o)
{
	struct gc_run *g = ctx;
	const char *base = strrchr(o->key, '/');
	struct digest d;

	if (o->is_prefix || !base || strlen(base + 1) != DIGEST_HEX_LEN || digest_from_hex(base + 1, &d) < 0)
		return 0;  /* not a chunk object of ours */
	g->rep->chunks++;
	if (is_live(g, &d)) {
		g->rep->chunks_live++;
		return 0;
	}
	if (within_grace(g, o)) {
		g->rep->chunks_recent++;
		return 0;
	}
	if (g->n_doomed == g->cap_doomed) {
		size_t cap = g->cap_doomed ? g->cap_doomed * 2 : 256;
		struct digest *dd = realloc(g->doomed, cap * sizeof(*dd));
		uint64_t *ds;
		if (!dd)
			return -ENOMEM;
		g->doomed = dd;
		ds = realloc(g->doomed_size, cap * sizeof(*ds));
		if (!ds)
			return -ENOMEM;
		g->doomed_size = ds;
		g->cap_doomed = cap;
	}
	g->doomed[g->n_doomed] = d;
	g->doomed_size[g->n_doomed++] = o->size;
	return 0;
}

/* On a long run, rewrites gc/epoch now and then so that nodes do not take this collector for dead. */
static int gc_keep_alive(struct gc_run *g, int64_t *refresh)
{
	int rc;

	if (g->o->dry_run || tier_now_ns() <= *refresh)
		return 0;
	rc = gc_epoch_set(g, true);
	*refresh = tier_now_ns() + GC_REFRESH_NS;
	return rc;
}

/* ---- 4b. packs ---- */

/* Sorts one listed key under packs/: kept when a remaining manifest names it or it is recent, else a
 * candidate whose member table judge_packs reads. */
static int list_pack(void *ctx, const struct s3_object *o)
{
	struct gc_run *g = ctx;
	const char *base = strrchr(o->key, '/');
	char canon[TIER_PREFIX_MAX + 160];
	struct gc_pack *p;
	struct digest d;
	bool well_named;

	if (o->is_prefix)
		return 0;
	g->rep->packs++;
	/* Readers only ever build the key from a name (tier_pack_key): any other spelling of it (upper
	   case hex, another <hh>) is an object nobody reads. */
	well_named = base && strlen(base + 1) == DIGEST_HEX_LEN && digest_from_hex(base + 1, &d) == 0 &&
		     tier_pack_key(g->prefix, &d, canon, sizeof(canon)) == 0 && strcmp(canon, o->key) == 0;
	if (well_named && g->named.n > 0 && bsearch(&d, g->named.d, g->named.n, sizeof(d), digest_cmp)) {
		g->rep->packs_live++;
		return 0;
	}
	if (within_grace(g, o)) {
		g->rep->packs_recent++;
		return 0;
	}
	if (g->n_packs == g->cap_packs) {
		size_t cap = g->cap_packs ? g->cap_packs * 2 : 64;
		p = realloc(g->packs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		g->packs = p;
		g->cap_packs = cap;
	}
	p = &g->packs[g->n_packs];
	memset(p, 0, sizeof(*p));
	p->key = strdup(o->key);
	if (!p->key)
		return -ENOMEM;
	p->size = o->size;
	p->well_named = well_named;
	if (well_named)
		p->name = d;
	g->n_packs++;
	return 0;
}

/* Judges one candidate by its member table (one ranged GET of the header; a shorter object gives
 * fewer bytes, and tier_pack_parse refuses a table it does not hold whole). 0 with p->doomed set or
 * not, or the error that left it unjudged. */
static int judge_pack(struct gc_run *g, struct gc_pack *p, uint8_t *hdr, size_t hsz, struct tier_pack_member *mem)
{
	struct s3_result res = { 0 };
	size_t got = 0, n = 0;
	int rc;

	if (!p->well_named) {
		p->doomed = p->not_a_pack = true;
		return 0;
	}
	rc = s3_get(g->c, p->key, 0, hsz, hdr, &got, &res);
	if (rc == -ENOENT)
		return 0;  /* gone meanwhile */
	if (rc < 0) {
		/* Its members cannot be known: a node may still read one of them. */
		snprintf(g->msg, g->msgsz, "reading the member table of %.300s: %.250s; no chunk or pack deleted",
			 p->key, res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	rc = tier_pack_parse(hdr, got, &p->name, mem, &n);
	if (rc == -EPROTONOSUPPORT) {
		/* A later release's pack: its members cannot be known here, and nodes of that release read it. */
		snprintf(g->msg, g->msgsz, "%.300s is a pack of a format this release does not read; collect with "
			 "the release that wrote it. No chunk or pack deleted", p->key);
		return rc;
	}
	if (rc < 0) {
		p->doomed = p->not_a_pack = true;  /* no reader can take a member from it */
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (is_live(g, &mem[i].d)) {
			g->rep->packs_live++;
			return 0;
		}
	p->doomed = true;
	return 0;
}

/* Reads the table of every candidate before anything is deleted, so that a table that cannot be read
 * stops the run with nothing gone. */
static int judge_packs(struct gc_run *g)
{
	size_t hsz = TIER_PACK_HDR_FIXED + TIER_PACK_MEMBERS_MAX * TIER_PACK_ENTRY;
	uint8_t *hdr = g->n_packs ? malloc(hsz) : NULL;
	struct tier_pack_member *mem = g->n_packs ? malloc(TIER_PACK_MEMBERS_MAX * sizeof(*mem)) : NULL;
	int64_t refresh = tier_now_ns() + GC_REFRESH_NS;
	int rc = 0;

	if (g->n_packs && (!hdr || !mem))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < g->n_packs; i++) {
		rc = judge_pack(g, &g->packs[i], hdr, hsz, mem);
		if (rc == 0)
			rc = gc_keep_alive(g, &refresh);
	}
	free(hdr);
	free(mem);
	return rc;
}

/* ---- 4c. deleting ---- */

/* The chunk objects, then the packs, that judge_chunk and judge_packs doomed. */
static int delete_doomed(struct gc_run *g)
{
	int64_t refresh = tier_now_ns() + GC_REFRESH_NS;
	size_t total = g->n_doomed, done = 0;

	for (size_t i = 0; i < g->n_packs; i++)
		total += g->packs[i].doomed;
	for (size_t i = 0; i < g->n_doomed + g->n_packs; i++) {
		char buf[TIER_PREFIX_MAX + 160];
		const char *key = buf;
		struct s3_result res = { 0 };
		int rc;

		if (i < g->n_doomed) {
			g->rep->chunks_deleted++;
			g->rep->bytes_deleted += g->doomed_size[i];
			tier_chunk_key(g->prefix, &g->doomed[i], buf, sizeof(buf));
		} else {
			const struct gc_pack *p = &g->packs[i - g->n_doomed];
			if (!p->doomed)
				continue;
			g->rep->packs_deleted++;
			g->rep->pack_bytes_deleted += p->size;
			key = p->key;
			if (p->not_a_pack && g->progress)
				fprintf(g->progress, "%s %s (under packs/ but not a pack)\n",
					g->o->dry_run ? "would delete" : "deleted", key);
		}
		if (g->o->progress && (done % 64 == 0 || done + 1 == total))
			g->o->progress(g->o->progress_ctx, "deleting", done, total);
		done++;
		if (g->o->dry_run)
			continue;
		rc = s3_delete(g->c, key, &res);
		if (rc < 0)
			return gc_fail(g, rc, key, &res);
		rc = gc_keep_alive(g, &refresh);
		if (rc < 0)
			return rc;
	}
	if (g->o->progress)
		g->o->progress(g->o->progress_ctx, "deleting", total, total);
	return 0;
}

static int gc_sweep(struct gc_run *g)
{
	char key[TIER_PREFIX_MAX + 64];
	struct s3_result res = { 0 };
	int rc;

	if (g->o->forget_node && g->o->forget_node[0] && (rc = forget_node(g)) < 0)
		return rc;
	tier_gc_key(g->prefix, key, sizeof(key), "nodes/");
	rc = s3_list(g->c, key, NULL, 0, list_node_object, g, &res);
	if (rc < 0)
		return g->msg[0] ? rc : gc_fail(g, rc, "listing nodes/", &res);
	rc = read_nodes(g);
	if (rc < 0)
		return rc;
	if (g->n_held)
		qsort(g->held, g->n_held, sizeof(*g->held), str_cmp);
	tier_gc_key(g->prefix, key, sizeof(key), "runs/");
	rc = s3_list(g->c, key, NULL, 0, list_version_object, g, &res);
	if (rc < 0)
		return gc_fail(g, rc, "listing runs/", &res);
	for (size_t i = 0; i < g->nv; i++) {
		g->rep->versions++;
		if (!g->v[i].committed)
			g->rep->uncommitted++;
		else if (g->o->keep > 0 && (rc = read_commit(g, &g->v[i])) < 0)
			return rc;
	}
	rc = choose_retired(g);
	for (size_t i = 0; rc == 0 && i < g->nv; i++) {
		if (g->o->progress)
			g->o->progress(g->o->progress_ctx, "reading", i, g->nv);
		if (g->v[i].retire)
			rc = retire_version(g, &g->v[i]);
		else
			for (size_t k = 0; rc == 0 && k < g->v[i].n_manifests; k++)
				rc = add_manifest_chunks(g, g->v[i].manifests[k]);
	}
	if (rc < 0)
		return rc;
	if (g->o->progress)
		g->o->progress(g->o->progress_ctx, "reading", g->nv, g->nv);
	if (g->live.n)
		qsort(g->live.d, g->live.n, sizeof(*g->live.d), digest_cmp);
	tier_digest_vec_sort_unique(&g->named);
	tier_gc_key(g->prefix, key, sizeof(key), "chunks/");
	rc = s3_list(g->c, key, NULL, 0, judge_chunk, g, &res);
	if (rc < 0)
		return gc_fail(g, rc, "listing chunks/", &res);
	tier_gc_key(g->prefix, key, sizeof(key), "packs/");
	rc = s3_list(g->c, key, NULL, 0, list_pack, g, &res);
	if (rc < 0)
		return gc_fail(g, rc, "listing packs/", &res);
	rc = judge_packs(g);
	if (rc == 0)
		rc = delete_doomed(g);
	return rc == 0 ? delete_orphan_segments(g) : rc;
}

static void gc_free(struct gc_run *g)
{
	for (size_t i = 0; i < g->nv; i++) {
		keys_free(g->v[i].manifests, g->v[i].n_manifests);
		keys_free(g->v[i].others, g->v[i].n_others);
		free(g->v[i].run);
		free(g->v[i].version);
	}
	for (size_t i = 0; i < g->n_held; i++)
		free(g->held[i]);
	free(g->held);
	free(g->v);
	tier_digest_vec_free(&g->live);
	for (size_t i = 0; i < g->n_nodes; i++) {
		free(g->nodes[i].name);
		free(g->nodes[i].segs);
	}
	free(g->nodes);
	for (size_t i = 0; i < g->n_segs; i++) {
		free(g->segs[i].key);
		free(g->segs[i].node);
	}
	free(g->segs);
	free(g->doomed);
	free(g->doomed_size);
	tier_digest_vec_free(&g->named);
	for (size_t i = 0; i < g->n_packs; i++)
		free(g->packs[i].key);
	free(g->packs);
}

int tier_bucket_gc(const struct tier_options *opt, const struct tier_gc_options *o, FILE *progress,
		   struct tier_gc_report *out, char *err, size_t errsz)
{
	struct gc_run g = { .o = o, .rep = out, .progress = progress, .msg = err, .msgsz = errsz,
			    .now = tier_wall_ns() };
	struct tier_options ro = *opt;
	struct s3_result res = { 0 };
	char bucket[S3_BUCKET_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (!ro.max_attempts)
		ro.max_attempts = TIER_READER_ATTEMPTS;  /* one failed request ends the run */
	rc = tier_client_new(&ro, 8, NULL, NULL, &g.c, bucket, g.prefix, err, errsz);
	if (rc < 0)
		return rc;
	rc = tier_gc_epoch_get(g.c, g.prefix, &g.ep, &res);
	if (rc < 0) {
		gc_fail(&g, rc, "reading gc/epoch", &res);
		goto out;
	}
	if (!o->dry_run) {
		rc = gc_lock(&g);
		if (rc < 0)
			goto out;
		rc = tier_gc_epoch_get(g.c, g.prefix, &g.ep, &res);  /* under the lock now */
		if (rc == 0) {
			g.ep.epoch++;
			snprintf(g.ep.node, sizeof(g.ep.node), "%s", opt->node_id && opt->node_id[0] ? opt->node_id : "gc");
			rc = gc_epoch_set(&g, true);
		} else {
			gc_fail(&g, rc, "reading gc/epoch", &res);
		}
	}
	out->epoch = g.ep.epoch;
	if (rc == 0)
		rc = gc_sweep(&g);
	if (!o->dry_run && g.ep.collecting) {
		char keep[400];
		snprintf(keep, sizeof(keep), "%s", err);
		int rc2 = gc_epoch_set(&g, false);
		snprintf(err, errsz, "%s", keep);
		if (rc == 0 && rc2 < 0)
			rc = rc2;
	}
	if (g.locked)
		gc_unlock(&g);
out:
	gc_free(&g);
	s3_client_free(g.c);
	return rc;
}

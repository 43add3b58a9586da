/* tier_fsck.c - the remote check behind `pecfs fsck --remote`: is the S3 tier's bucket under a prefix
 * whole, as restore and `mount --from` need it? Reads only; needs no mount and no data folder.
 *
 * One listing of the prefix sorts the objects into COMMITs, manifests, node states, garbage collection
 * objects, chunk objects and packs. Then, `jobs` requests at a time: every COMMIT, manifest and node
 * state is read and parsed; every chunk a manifest names must be listed with the size its header and
 * payload length give (in a pack: a pack long enough to hold it at the offset the manifest gives), and
 * (unless quick) is downloaded and verified (header, length, SHA-256: tier_chunk_fetch_into), as is the
 * member table of every pack a manifest names. One chunk may be named at several locations (its own
 * object, packs of different uploads): each is checked. Problems are printed after all checks, one
 * per line, each naming the object's key and, for a chunk, the files that use it (run/version/path).
 * A garbage collection running, or starting during the check, makes it refuse (-EAGAIN): objects it
 * retires would look missing.
 * Invariant: nothing here writes to the bucket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "tier_impl.h"

#define FSCK_JOBS_MAX 64
#define FSCK_USERS_SHOWN 4

enum fsck_kind { FSCK_COMMIT, FSCK_MANIFEST };

/* A COMMIT or manifest found by the listing. */
struct fsck_robj {
	char *key;
	const char *run, *version, *name;  /* into own, a copy of the part after "runs/" split at '/' */
	char *own;
	enum fsck_kind kind;
};

/* What reading one COMMIT, manifest or node state gave (filled by a worker). */
struct fsck_read {
	int rc;          /* 0 read and sound; -EBADMSG does not parse or does not fit; -ENOENT gone; else unreadable */
	char *msg;       /* why, when rc != 0 (malloc'ed) */
	struct tier_commit commit;  /* COMMIT, when rc == 0 */
	struct tier_manifest m;  /* manifest, when rc == 0 */
	struct tier_node_seg *segs;  /* node state head: the segments it names, when rc == 0 */
	size_t nsegs;
};

/* A node state segment found by the listing: nodes/<node>/<gen>.seg. */
struct fsck_seg {
	char *key, *node;
	uint64_t gen;
};

struct fsck_version {
	size_t first, n;     /* its objects in robj[] (sorted: COMMIT first, then manifests by key) */
	ssize_t commit;      /* index in robj[] of its COMMIT, -1 when none */
};

enum fsck_chunk_state { CHUNK_UNCHECKED = 0, CHUNK_OK, CHUNK_MISSING, CHUNK_SIZE, CHUNK_CORRUPT, CHUNK_UNREADABLE };

struct fsck_ref {
	struct digest d;
	struct tier_loc loc;
	uint64_t chunk_len;
	uint32_t manifest, entry;  /* robj index, entry index */
};

/* A chunk at one location: its own object, or a member of a pack. */
struct fsck_chunk {
	struct digest d;
	struct tier_loc loc;
	uint64_t len;          /* payload length the manifests give */
	size_t first, n;       /* its refs */
	size_t pack;           /* loc.packed: its pack in packs[] */
	uint64_t listed;       /* size of the object holding it, from the listing */
	bool present;
	enum fsck_chunk_state state;
	char *msg;             /* CHUNK_UNREADABLE: why */
};

/* A chunk object or a pack, as listed. */
struct fsck_listed {
	struct digest d;
	uint64_t size;
	bool named;            /* a manifest names it */
};

enum fsck_pack_state { PACK_UNCHECKED = 0, PACK_OK, PACK_BAD_TABLE, PACK_UNREADABLE };

/* A pack a manifest names. */
struct fsck_pack {
	struct digest name;
	enum fsck_pack_state state;
	char *msg;             /* PACK_UNREADABLE: why */
};

/* A file using a chunk: robj index, entry index. */
struct fsck_user {
	uint32_t manifest, entry;
};

struct fsck_lines {
	char **v;
	size_t n, cap;
};

struct fsck {
	struct s3_client *c;
	char bucket[S3_BUCKET_MAX];
	char prefix[TIER_PREFIX_MAX];
	size_t prefix_len;            /* of "PREFIX/" ("" when no prefix) */
	const struct tier_fsck_options *o;
	struct tier_fsck_report *r;
	unsigned jobs;                /* requests at once, 1..FSCK_JOBS_MAX */

	struct fsck_robj *robj;       /* COMMITs and manifests */
	size_t nrobj, caprobj;
	struct fsck_read *reads;      /* one per robj */
	char **nodes;                 /* keys of node states */
	size_t nnodes, capnodes;
	struct fsck_read *node_reads;
	struct fsck_seg *segs;        /* node state segments */
	size_t nsegs, capsegs;
	struct fsck_listed *listed;   /* chunk objects */
	size_t nlisted, caplisted;
	struct fsck_listed *listed_packs;
	size_t nlisted_packs, caplisted_packs;
	struct fsck_lines notes;      /* unexpected keys */
	struct fsck_version *versions;
	size_t nversions;
	struct fsck_ref *refs;
	size_t nrefs;
	struct fsck_chunk *chunks;    /* distinct (digest, location) pairs, sorted */
	size_t nchunks;
	struct fsck_pack *packs;      /* distinct packs named, sorted */
	size_t npacks;

	atomic_uint_fast64_t done_bytes;
	uint64_t total_bytes;
};

/* ---- small helpers ---- */

static char *fsck_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *fsck_strdup_printf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static int lines_add(struct fsck_lines *l, char *line)
{
	if (!line)
		return -ENOMEM;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(line);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = line;
	return 0;
}

static void lines_free(struct fsck_lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *q;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? 2 * *cap : 256;
	q = realloc(*p, c * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

static const char *fsck_message(const struct s3_result *res, int rc)
{
	return res->message[0] ? res->message : strerror(-rc);
}

/* ---- the listing ---- */

static int fsck_add_robj(struct fsck *f, const char *key, const char *rel)
{
	struct fsck_robj *o;
	char *own, *s1, *s2 = NULL, *name = NULL;
	bool commit = false, manifest = false;
	size_t nlen;

	own = strdup(rel);
	if (!own)
		return -ENOMEM;
	s1 = strchr(own, '/');
	if (s1 && s1 != own)
		s2 = strchr(s1 + 1, '/');
	if (s2 && s2 != s1 + 1 && !strchr(s2 + 1, '/')) {
		name = s2 + 1;
		nlen = strlen(name);
		commit = strcmp(name, "COMMIT") == 0;
		manifest = nlen > 9 && strcmp(name + nlen - 9, ".manifest") == 0;
	}
	if (!commit && !manifest) {
		free(own);
		return lines_add(&f->notes,
				 fsck_strdup_printf("%s: not a COMMIT or a manifest (unexpected under runs/)", key));
	}
	if (grow((void **)&f->robj, &f->caprobj, f->nrobj, sizeof(*f->robj)) < 0) {
		free(own);
		return -ENOMEM;
	}
	o = &f->robj[f->nrobj];
	o->key = strdup(key);
	if (!o->key) {
		free(own);
		return -ENOMEM;
	}
	*s1 = *s2 = '\0';
	o->own = own;
	o->run = own;
	o->version = s1 + 1;
	o->name = name;
	o->kind = commit ? FSCK_COMMIT : FSCK_MANIFEST;
	f->nrobj++;
	return 0;
}

/* chunks/<hh>/<hex> or packs/<hh>/<hex> (dir the part before <hh>), spelled as readers spell it. */
static int fsck_add_object(struct fsck *f, const char *key, const char *rel, const char *dir, uint64_t size)
{
	size_t dlen = strlen(dir);
	const char *hex = rel + dlen + 3;  /* "<dir>xx/" */
	bool pack = strcmp(dir, "packs/") == 0;
	struct digest d;
	bool lower = true;

	for (size_t i = 0; i < DIGEST_HEX_LEN && hex[i]; i++)
		lower = lower && ((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	if (strlen(rel) != dlen + 3 + DIGEST_HEX_LEN || rel[dlen + 2] != '/' || memcmp(rel + dlen, hex, 2) != 0 ||
	    !lower || digest_from_hex(hex, &d) < 0)
		return lines_add(&f->notes, fsck_strdup_printf("%s: not a %s name (unexpected under %s)", key,
							      pack ? "pack object" : "chunk object", dir));
	if (pack) {
		if (grow((void **)&f->listed_packs, &f->caplisted_packs, f->nlisted_packs, sizeof(*f->listed_packs)) < 0)
			return -ENOMEM;
		f->listed_packs[f->nlisted_packs++] = (struct fsck_listed){ d, size, false };
		return 0;
	}
	if (grow((void **)&f->listed, &f->caplisted, f->nlisted, sizeof(*f->listed)) < 0)
		return -ENOMEM;
	f->listed[f->nlisted++] = (struct fsck_listed){ d, size, false };
	return 0;
}

/* nodes/<node>/<16 hex>.seg: a segment of a node's state. */
static int fsck_add_segment(struct fsck *f, const char *key, const char *node, size_t nlen, const char *leaf)
{
	char *end;
	uint64_t gen = strtoull(leaf, &end, 16);

	if (strlen(leaf) != 16 + 4 || end != leaf + 16 || strcmp(end, ".seg") != 0 || nlen == 0)
		return lines_add(&f->notes, fsck_strdup_printf("%s: not a node state segment (unexpected under nodes/)",
							      key));
	if (grow((void **)&f->segs, &f->capsegs, f->nsegs, sizeof(*f->segs)) < 0)
		return -ENOMEM;
	f->segs[f->nsegs] = (struct fsck_seg){ strdup(key), strndup(node, nlen), gen };
	if (!f->segs[f->nsegs].key || !f->segs[f->nsegs].node) {
		free(f->segs[f->nsegs].key);
		free(f->segs[f->nsegs].node);
		return -ENOMEM;
	}
	f->nsegs++;
	return 0;
}

static int fsck_add_node(struct fsck *f, const char *key, const char *rel)
{
	size_t len = strlen(rel);
	const char *slash = strchr(rel + 6, '/');

	if (slash && !strchr(slash + 1, '/'))
		return fsck_add_segment(f, key, rel + 6, (size_t)(slash - rel - 6), slash + 1);
	if (len <= 6 + 5 || slash || strcmp(rel + len - 5, ".json") != 0)
		return lines_add(&f->notes, fsck_strdup_printf("%s: not a node state (unexpected under nodes/)", key));
	if (grow((void **)&f->nodes, &f->capnodes, f->nnodes, sizeof(*f->nodes)) < 0)
		return -ENOMEM;
	f->nodes[f->nnodes] = strdup(key);
	return f->nodes[f->nnodes++] ? 0 : -ENOMEM;
}

static int fsck_listed_one(void *ctx, const struct s3_object *o)
{
	struct fsck *f = ctx;
	const char *rel = o->key + f->prefix_len;

	if (strlen(o->key) < f->prefix_len)
		return 0;
	if (strncmp(rel, "chunks/", 7) == 0)
		return fsck_add_object(f, o->key, rel, "chunks/", o->size);
	if (strncmp(rel, "packs/", 6) == 0)
		return fsck_add_object(f, o->key, rel, "packs/", o->size);
	if (strncmp(rel, "runs/", 5) == 0)
		return fsck_add_robj(f, o->key, rel + 5);
	if (strncmp(rel, "nodes/", 6) == 0)
		return fsck_add_node(f, o->key, rel);
	if (strcmp(rel, "gc/epoch") == 0 || strcmp(rel, "gc/lock") == 0)
		return 0;  /* read on their own (tier_gc_epoch_get), or the collector's */
	return lines_add(&f->notes, fsck_strdup_printf("%s: not a pecfs object (unexpected under the prefix)", o->key));
}

/* ---- running work on `jobs` threads ---- */

struct fsck_pool {
	struct fsck *f;
	size_t n;
	atomic_size_t next;
	void (*fn)(struct fsck *f, size_t i, void **buf, size_t *bufsz);
};

static void *fsck_pool_worker(void *arg)
{
	struct fsck_pool *p = arg;
	void *buf = NULL;
	size_t bufsz = 0;

	for (;;) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			break;
		p->fn(p->f, i, &buf, &bufsz);
	}
	free(buf);
	return NULL;
}

/* Runs fn(f, i) for i in [0, n) on up to f->jobs threads; reports progress meanwhile. */
static void fsck_parallel(struct fsck *f, size_t n, void (*fn)(struct fsck *f, size_t i, void **buf, size_t *bufsz))
{
	struct fsck_pool p = { .f = f, .n = n, .fn = fn };
	pthread_t th[FSCK_JOBS_MAX];
	size_t nth = 0, want = f->jobs;

	atomic_init(&p.next, 0);
	if (want > n)
		want = n;
	for (; nth < want; nth++)
		if (pthread_create(&th[nth], NULL, fsck_pool_worker, &p) != 0)
			break;
	if (nth == 0) {
		fsck_pool_worker(&p);
		return;
	}
	while (f->o->progress && atomic_load(&p.next) < n) {
		struct timespec ts = { 0, 200000000 };
		f->o->progress(f->o->progress_ctx, atomic_load(&f->done_bytes), f->total_bytes);
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (f->o->progress)
		f->o->progress(f->o->progress_ctx, atomic_load(&f->done_bytes), f->total_bytes);
}

/* ---- COMMITs, manifests, node states ---- */

static void read_fail(struct fsck_read *rd, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void read_fail(struct fsck_read *rd, int rc, const char *fmt, ...)
{
	va_list ap;

	rd->rc = rc;
	va_start(ap, fmt);
	if (vasprintf(&rd->msg, fmt, ap) < 0)
		rd->msg = NULL;
	va_end(ap);
}

/* Reads key whole into *text; on failure fills rd (gone, or unreadable). */
static int fsck_get(struct fsck *f, const char *key, size_t max, char **text, size_t *len, struct fsck_read *rd)
{
	struct s3_result res = { 0 };
	int rc = s3_get_all(f->c, key, max, (void **)text, len, &res);

	if (rc == -ENOENT)
		read_fail(rd, rc, "vanished during the check");
	else if (rc == -EFBIG)
		read_fail(rd, -EBADMSG, "larger than %zu bytes", max);
	else if (rc < 0)
		read_fail(rd, rc, "%s", fsck_message(&res, rc));
	return rc;
}

static void check_commit(struct fsck *f, struct fsck_robj *o, struct fsck_read *rd)
{
	char *text = NULL, err[512];
	size_t len;

	if (fsck_get(f, o->key, TIER_COMMIT_MAX_BYTES, &text, &len, rd) < 0)
		return;
	if (tier_commit_parse(o->run, o->version, text, len, &rd->commit, err, sizeof(err)) < 0)
		read_fail(rd, -EBADMSG, "%s", err);
	free(text);
}

static void check_manifest(struct fsck *f, struct fsck_robj *o, struct fsck_read *rd)
{
	char *text = NULL, err[512];
	size_t len;

	if (fsck_get(f, o->key, TIER_MANIFEST_MAX_BYTES, &text, &len, rd) < 0)
		return;
	if (tier_manifest_parse(o->key, text, len, &rd->m, err, sizeof(err)) < 0)
		read_fail(rd, -EBADMSG, "%s", err);
	free(text);
}

static void check_robj(struct fsck *f, size_t i, void **buf, size_t *bufsz)
{
	(void)buf;
	(void)bufsz;
	if (f->robj[i].kind == FSCK_COMMIT)
		check_commit(f, &f->robj[i], &f->reads[i]);
	else
		check_manifest(f, &f->robj[i], &f->reads[i]);
}

/* A node's head and every segment it names, checked as bucket gc reads them. */
static void check_node(struct fsck *f, size_t i, void **buf, size_t *bufsz)
{
	struct fsck_read *rd = &f->node_reads[i];
	struct tier_digest_vec chunks = { 0 };
	struct tier_node_state st;
	char err[700];
	int rc;

	(void)buf;
	(void)bufsz;
	rc = tier_node_state_get(f->c, f->nodes[i], &st, &chunks, err, sizeof(err));
	tier_digest_vec_free(&chunks);
	if (rc == -EBADMSG)
		read_fail(rd, rc, "node state refused (%s): bucket garbage collection refuses to run", err);
	else if (rc < 0)
		read_fail(rd, rc, "%s", err);
	if (rc < 0)
		return;
	rd->segs = st.segs;
	rd->nsegs = st.n_segs;
	st.segs = NULL;
	tier_node_state_free(&st);
}

/* ---- chunks ---- */

static int robj_cmp(const void *a, const void *b)
{
	const struct fsck_robj *x = a, *y = b;
	int c = strcmp(x->run, y->run);

	if (!c)
		c = strcmp(x->version, y->version);
	if (!c)
		c = (int)x->kind - (int)y->kind;
	return c ? c : strcmp(x->name, y->name);
}

/* Own object first, then packs by name and offset. */
static int loc_cmp(const struct tier_loc *x, const struct tier_loc *y)
{
	int c;

	if (x->packed != y->packed)
		return x->packed ? 1 : -1;
	if (!x->packed)
		return 0;
	c = memcmp(&x->pack, &y->pack, DIGEST_LEN);
	if (c)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct fsck_ref *x = a, *y = b;
	int c = memcmp(&x->d, &y->d, DIGEST_LEN);

	if (!c)
		c = loc_cmp(&x->loc, &y->loc);
	if (c)
		return c;
	if (x->manifest != y->manifest)
		return x->manifest < y->manifest ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static int listed_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

/* Every extent of every sound manifest, sorted by digest and location, and the distinct (digest,
 * location) pairs among them. */
static int fsck_collect_refs(struct fsck *f)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < f->nrobj; i++)
		if (f->robj[i].kind == FSCK_MANIFEST && f->reads[i].rc == 0)
			for (size_t e = 0; e < f->reads[i].m.n; e++)
				n += f->reads[i].m.entries[e].next;
	f->refs = malloc((n ? n : 1) * sizeof(*f->refs));
	f->chunks = calloc(n ? n : 1, sizeof(*f->chunks));
	if (!f->refs || !f->chunks)
		return -ENOMEM;
	for (size_t i = 0; i < f->nrobj; i++) {
		if (f->robj[i].kind != FSCK_MANIFEST || f->reads[i].rc != 0)
			continue;
		for (size_t e = 0; e < f->reads[i].m.n; e++) {
			const struct tier_manifest_entry *me = &f->reads[i].m.entries[e];
			for (size_t x = 0; x < me->next; x++) {
				const struct tier_manifest_extent *ext = &me->ext[x];
				f->refs[k++] = (struct fsck_ref){ ext->digest, ext->loc, ext->chunk_len, (uint32_t)i,
								  (uint32_t)e };
			}
		}
	}
	f->nrefs = k;
	if (f->nrefs)
		qsort(f->refs, f->nrefs, sizeof(*f->refs), ref_cmp);
	for (size_t i = 0; i < f->nrefs; i++) {
		struct fsck_chunk *c = &f->chunks[f->nchunks];
		if (i > 0 && digest_equal(&f->refs[i].d, &f->refs[i - 1].d) &&
		    loc_cmp(&f->refs[i].loc, &f->refs[i - 1].loc) == 0) {
			f->chunks[f->nchunks - 1].n++;
			continue;
		}
		c->d = f->refs[i].d;
		c->loc = f->refs[i].loc;
		c->len = f->refs[i].chunk_len;
		c->first = i;
		c->n = 1;
		f->nchunks++;
	}
	return 0;
}

/* The distinct packs the chunks name, each chunk's index among them. */
static int fsck_collect_packs(struct fsck *f)
{
	size_t k = 0;

	f->packs = calloc(f->nchunks ? f->nchunks : 1, sizeof(*f->packs));
	if (!f->packs)
		return -ENOMEM;
	for (size_t i = 0; i < f->nchunks; i++)
		if (f->chunks[i].loc.packed)
			f->packs[f->npacks++].name = f->chunks[i].loc.pack;
	if (f->npacks)
		qsort(f->packs, f->npacks, sizeof(*f->packs), listed_cmp);
	for (size_t i = 0; i < f->npacks; i++)
		if (k == 0 || !digest_equal(&f->packs[k - 1].name, &f->packs[i].name))
			f->packs[k++] = f->packs[i];
	f->npacks = k;
	for (size_t i = 0; i < f->nchunks; i++) {
		const struct fsck_pack *p;
		if (!f->chunks[i].loc.packed)
			continue;
		p = bsearch(&f->chunks[i].loc.pack, f->packs, f->npacks, sizeof(*f->packs), listed_cmp);
		f->chunks[i].pack = (size_t)(p - f->packs);
	}
	return 0;
}

static struct fsck_listed *fsck_listed_find(struct fsck_listed *v, size_t n, const struct digest *d)
{
	return n ? bsearch(d, v, n, sizeof(*v), listed_cmp) : NULL;
}

/* Marks the chunks and packs the listing has, and counts the listed ones no manifest names. */
static void fsck_match_listing(struct fsck *f)
{
	if (f->nlisted)  /* nothing listed: no array at all */
		qsort(f->listed, f->nlisted, sizeof(*f->listed), listed_cmp);
	if (f->nlisted_packs)
		qsort(f->listed_packs, f->nlisted_packs, sizeof(*f->listed_packs), listed_cmp);
	for (size_t p = 0; p < f->npacks; p++) {
		const struct fsck_listed *l = fsck_listed_find(f->listed_packs, f->nlisted_packs, &f->packs[p].name);
		if (!l || f->o->quick)
			f->packs[p].state = PACK_OK;  /* a missing pack is told chunk by chunk */
	}
	for (size_t c = 0; c < f->nchunks; c++) {
		struct fsck_chunk *ch = &f->chunks[c];
		struct fsck_listed *l = ch->loc.packed ?
			fsck_listed_find(f->listed_packs, f->nlisted_packs, &ch->loc.pack) :
			fsck_listed_find(f->listed, f->nlisted, &ch->d);
		if (l) {
			l->named = true;
			ch->present = true;
			ch->listed = l->size;
		}
		if (!ch->present)
			ch->state = CHUNK_MISSING;
		else if (ch->loc.packed ? ch->listed < ch->loc.off + TIER_CHUNK_HDR + ch->len
					: ch->listed != ch->len + TIER_CHUNK_HDR)
			ch->state = CHUNK_SIZE;
		else if (f->o->quick)
			ch->state = CHUNK_OK;
		else
			f->total_bytes += ch->len;
	}
	for (size_t i = 0; i < f->nlisted; i++)
		if (!f->listed[i].named) {
			f->r->unreferenced++;
			f->r->unreferenced_bytes += f->listed[i].size;
		}
	for (size_t i = 0; i < f->nlisted_packs; i++)
		if (!f->listed_packs[i].named) {
			f->r->unreferenced_packs++;
			f->r->unreferenced_pack_bytes += f->listed_packs[i].size;
		}
}

static void check_chunk(struct fsck *f, size_t i, void **buf, size_t *bufsz)
{
	struct fsck_chunk *ch = &f->chunks[i];
	struct s3_result res = { 0 };
	size_t need = (size_t)ch->len + TIER_CHUNK_HDR + 1;
	int rc;

	if (ch->state != CHUNK_UNCHECKED)
		return;
	if (*bufsz < need) {
		void *p = realloc(*buf, need);
		if (!p) {
			ch->state = CHUNK_UNREADABLE;
			ch->msg = strdup("out of memory");
			return;
		}
		*buf = p;
		*bufsz = need;
	}
	rc = tier_chunk_fetch_into(f->c, f->prefix, &ch->d, &ch->loc, ch->len, *buf, &res);
	if (rc == 0) {
		ch->state = CHUNK_OK;
		atomic_fetch_add(&f->done_bytes, ch->len);
	} else if ((rc == -EIO && res.http_status >= 200 && res.http_status < 300) || rc == -ERANGE) {
		ch->state = CHUNK_CORRUPT;  /* -ERANGE: the member's offset is past the end of the pack */
	} else if (rc == -ENOENT) {
		ch->state = CHUNK_MISSING;
	} else {
		ch->state = CHUNK_UNREADABLE;
		ch->msg = strdup(fsck_message(&res, rc));
	}
}

/* The member table of a pack a manifest names: readers never need it, but bucket gc judges by it a
 * pack that no manifest names any more, and takes one whose table does not parse for garbage. */
static void check_pack(struct fsck *f, size_t i, void **buf, size_t *bufsz)
{
	struct fsck_pack *p = &f->packs[i];
	size_t hsz = TIER_PACK_HDR_FIXED + TIER_PACK_MEMBERS_MAX * TIER_PACK_ENTRY;
	size_t msz = TIER_PACK_MEMBERS_MAX * sizeof(struct tier_pack_member), got = 0, n;
	char key[TIER_PREFIX_MAX + 160];
	struct s3_result res = { 0 };
	int rc;

	if (p->state != PACK_UNCHECKED)
		return;
	if (*bufsz < msz + hsz) {
		void *q = realloc(*buf, msz + hsz);
		if (!q) {
			p->state = PACK_UNREADABLE;
			p->msg = strdup("out of memory");
			return;
		}
		*buf = q;
		*bufsz = msz + hsz;
	}
	tier_pack_key(f->prefix, &p->name, key, sizeof(key));
	/* A shorter object gives fewer bytes; tier_pack_parse refuses a table it does not hold whole. */
	rc = s3_get(f->c, key, 0, hsz, (uint8_t *)*buf + msz, &got, &res);
	if (rc == -ENOENT) {
		p->state = PACK_OK;  /* gone since the listing: its chunks are checked, and found missing */
	} else if (rc < 0) {
		p->state = PACK_UNREADABLE;
		p->msg = strdup(fsck_message(&res, rc));
	} else {
		rc = tier_pack_parse((const uint8_t *)*buf + msz, got, &p->name, *buf, &n);
		p->state = rc == 0 || rc == -EPROTONOSUPPORT ? PACK_OK : PACK_BAD_TABLE;  /* a later format: its members are still checked */
	}
}

/* ---- the report ---- */

static int user_cmp(const void *a, const void *b)
{
	const struct fsck_user *x = a, *y = b;

	if (x->manifest != y->manifest)
		return x->manifest < y->manifest ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* Adds the files using chunk ch to u (room for them reserved by the caller). */
static size_t fsck_chunk_users(const struct fsck *f, const struct fsck_chunk *ch, struct fsck_user *u)
{
	for (size_t i = 0; i < ch->n; i++)
		u[i] = (struct fsck_user){ f->refs[ch->first + i].manifest, f->refs[ch->first + i].entry };
	return ch->n;
}

/* ": used by run/version/path, ... and N more" and the end of the line: each file once, in manifest
 * order. Sorts u. */
static void fsck_print_users(const struct fsck *f, FILE *out, struct fsck_user *u, size_t n)
{
	size_t shown = 0, users = 0;

	if (n)
		qsort(u, n, sizeof(*u), user_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && user_cmp(&u[i], &u[i - 1]) == 0)
			continue;  /* one file naming the chunk twice, or several chunks of one pack */
		users++;
		if (shown++ < FSCK_USERS_SHOWN) {
			const struct fsck_robj *o = &f->robj[u[i].manifest];
			fprintf(out, "%s%s/%s/%s", shown == 1 ? ": used by " : ", ", o->run, o->version,
				f->reads[u[i].manifest].m.entries[u[i].entry].path);
		}
	}
	if (users > FSCK_USERS_SHOWN)
		fprintf(out, " and %zu more", users - FSCK_USERS_SHOWN);
	fputc('\n', out);
}

/* "KEY ...: used by run/version/path, ... and N more" for a bad chunk; a chunk in a pack is named by
 * the pack's key, its digest and its offset there. */
static void fsck_print_chunk(struct fsck *f, FILE *out, const struct fsck_chunk *ch)
{
	const char *kind = ch->loc.packed ? "pack" : "chunk";
	char key[TIER_PREFIX_MAX + 160], at[DIGEST_HEX_LEN + 64] = "", hex[DIGEST_HEX_LEN + 1];
	struct fsck_user *u = malloc((ch->n ? ch->n : 1) * sizeof(*u));

	tier_loc_key(f->prefix, &ch->d, &ch->loc, key, sizeof(key));
	if (ch->loc.packed) {
		digest_to_hex(&ch->d, hex);
		snprintf(at, sizeof(at), "chunk %s at offset %llu", hex, (unsigned long long)ch->loc.off);
	}
	switch (ch->state) {
	case CHUNK_MISSING:
		fprintf(out, "missing %s object %s%s%s%s", kind, key, at[0] ? " (" : "", at, at[0] ? ")" : "");
		break;
	case CHUNK_SIZE:
		if (ch->loc.packed)
			fprintf(out, "corrupt pack object %s (%llu bytes, %s ends at %llu)", key,
				(unsigned long long)ch->listed, at,
				(unsigned long long)(ch->loc.off + TIER_CHUNK_HDR + ch->len));
		else
			fprintf(out, "corrupt chunk object %s (%llu bytes, %llu expected)", key,
				(unsigned long long)ch->listed, (unsigned long long)(ch->len + TIER_CHUNK_HDR));
		break;
	case CHUNK_CORRUPT:
		fprintf(out, "corrupt %s object %s (%s%sheader or SHA-256 mismatch)", kind, key, at, at[0] ? ": " : "");
		break;
	default:
		fprintf(out, "cannot read %s object %s (%s%s%s)", kind, key, at, at[0] ? ": " : "",
			ch->msg ? ch->msg : "unknown error");
		break;
	}
	fsck_print_users(f, out, u, u ? fsck_chunk_users(f, ch, u) : 0);
	free(u);
}

/* A pack whose member table is bad or unreadable, with every file whose chunks it holds. */
static void fsck_print_pack(struct fsck *f, FILE *out, size_t p)
{
	const struct fsck_pack *pk = &f->packs[p];
	char key[TIER_PREFIX_MAX + 160];
	struct fsck_user *u = NULL;
	size_t n = 0, k = 0;

	tier_pack_key(f->prefix, &pk->name, key, sizeof(key));
	if (pk->state == PACK_BAD_TABLE)
		fprintf(out, "corrupt pack object %s (its member table does not parse: bucket gc takes it for garbage "
			"once no manifest names it)", key);
	else
		fprintf(out, "cannot read pack object %s (its member table: %s)", key,
			pk->msg ? pk->msg : "unknown error");
	for (size_t i = 0; i < f->nchunks; i++)
		if (f->chunks[i].loc.packed && f->chunks[i].pack == p)
			n += f->chunks[i].n;
	u = malloc((n ? n : 1) * sizeof(*u));
	for (size_t i = 0; u && i < f->nchunks; i++)
		if (f->chunks[i].loc.packed && f->chunks[i].pack == p)
			k += fsck_chunk_users(f, &f->chunks[i], u + k);
	fsck_print_users(f, out, u, k);
	free(u);
}

/* The manifest robj of node in version ver, or -1. */
static ssize_t fsck_find_manifest(const struct fsck *f, const struct fsck_version *ver, const char *node)
{
	size_t nlen = strlen(node);

	for (size_t i = ver->first; i < ver->first + ver->n; i++)
		if (f->robj[i].kind == FSCK_MANIFEST && strncmp(f->robj[i].name, node, nlen) == 0 &&
		    strcmp(f->robj[i].name + nlen, ".manifest") == 0)
			return (ssize_t)i;
	return -1;
}

/* A COMMIT that names its parts: each must be there with the seal id COMMIT gives it (a part that
 * does not parse was reported already). Manifests beside it that it does not name are only noted:
 * readers ignore them. */
static void fsck_check_parts(struct fsck *f, const struct fsck_version *ver, FILE *out)
{
	const struct fsck_robj *c = &f->robj[ver->commit];
	const struct tier_commit *cm = &f->reads[ver->commit].commit;

	for (size_t k = 0; k < cm->npart; k++) {
		ssize_t i = fsck_find_manifest(f, ver, cm->part[k].node);
		if (i < 0) {
			f->r->problems++;
			fprintf(out, "bad COMMIT %s: names the part of node %s, whose manifest is missing (restore cannot "
				"read the version)\n", c->key, cm->part[k].node);
		} else if (f->reads[i].rc == 0 && strcmp(f->reads[i].m.seal_id, cm->part[k].seal_id) != 0) {
			f->r->problems++;
			fprintf(out, "bad COMMIT %s: names the part of node %s with seal id '%s', but %s has seal id '%s' "
				"(another upload; restore refuses the version)\n", c->key, cm->part[k].node,
				cm->part[k].seal_id, f->robj[i].key, f->reads[i].m.seal_id);
		}
	}
	for (size_t i = ver->first; i < ver->first + ver->n; i++) {
		const struct fsck_read *rd = &f->reads[i];
		if (f->robj[i].kind != FSCK_MANIFEST || rd->rc != 0 || tier_commit_find(cm, rd->m.node))
			continue;
		lines_add(&f->notes, fsck_strdup_printf("%s: not a part of the committed upload (COMMIT does not name "
							"it; readers ignore it)", f->robj[i].key));
	}
}

/* Groups robj[] into versions and prints the problems of COMMITs and manifests. */
static void fsck_report_versions(struct fsck *f, FILE *out)
{
	struct tier_fsck_report *r = f->r;

	for (size_t v = 0; v < f->nversions; v++) {
		const struct fsck_version *ver = &f->versions[v];

		for (size_t i = ver->first; i < ver->first + ver->n; i++) {
			const struct fsck_read *rd = &f->reads[i];
			r->objects++;
			if (f->robj[i].kind == FSCK_MANIFEST)
				r->manifests++;
			if (rd->rc == 0)
				continue;
			if (rd->rc == -EBADMSG || rd->rc == -ENOENT) {
				r->problems++;
				fprintf(out, "%s %s: %s\n",
					f->robj[i].kind == FSCK_COMMIT ? "bad COMMIT" : "bad manifest", f->robj[i].key,
					rd->msg ? rd->msg : "");
			} else {
				r->unreadable++;
				fprintf(out, "cannot read %s: %s\n", f->robj[i].key, rd->msg ? rd->msg : "");
			}
		}
		if (ver->commit < 0) {
			r->uncommitted++;
			continue;
		}
		r->versions++;
		const struct fsck_robj *c = &f->robj[ver->commit];
		const struct fsck_read *crd = &f->reads[ver->commit];
		size_t present = ver->n - 1;  /* manifests, sound or not (those not were reported above) */
		if (present == 0) {
			r->problems++;
			fprintf(out, "bad COMMIT %s: %s/%s is committed but has no manifest (restore cannot read it)\n",
				c->key, c->run, c->version);
		} else if (crd->rc == 0 && crd->commit.npart > 0) {
			fsck_check_parts(f, ver, out);
		} else if (crd->rc == 0 && present < crd->commit.parts) {
			r->problems++;
			fprintf(out, "bad COMMIT %s: records %llu node parts, %zu manifest%s present\n", c->key,
				(unsigned long long)crd->commit.parts, present, present == 1 ? " is" : "s are");
		}
	}
}

/* Manifests disagreeing on a chunk's length, wherever they place it: one of them is wrong. */
static void fsck_report_lengths(struct fsck *f, FILE *out)
{
	for (size_t i = 0, j; i < f->nrefs; i = j) {
		bool told = false;
		for (j = i + 1; j < f->nrefs && digest_equal(&f->refs[j].d, &f->refs[i].d); j++) {
			char key[TIER_PREFIX_MAX + 160];
			if (told || f->refs[j].chunk_len == f->refs[i].chunk_len)
				continue;
			tier_chunk_key(f->prefix, &f->refs[i].d, key, sizeof(key));
			f->r->problems++;
			fprintf(out, "bad manifest %s: gives chunk %s a length of %llu, %s says %llu\n",
				f->robj[f->refs[j].manifest].key, key, (unsigned long long)f->refs[j].chunk_len,
				f->robj[f->refs[i].manifest].key, (unsigned long long)f->refs[i].chunk_len);
			told = true;
		}
	}
}

static void fsck_report_chunks(struct fsck *f, FILE *out)
{
	struct tier_fsck_report *r = f->r;

	fsck_report_lengths(f, out);
	for (size_t i = 0; i < f->npacks; i++) {
		const struct fsck_pack *p = &f->packs[i];
		r->objects++;
		r->packs++;
		if (p->state == PACK_OK)
			continue;
		if (p->state == PACK_UNREADABLE) {
			r->unreadable++;
		} else {
			r->problems++;
			r->corrupt++;
		}
		fsck_print_pack(f, out, i);
	}
	for (size_t i = 0; i < f->nchunks; i++) {
		const struct fsck_chunk *ch = &f->chunks[i];
		r->objects++;
		r->chunks++;
		if (ch->state == CHUNK_OK) {
			r->bytes += f->o->quick ? ch->len + TIER_CHUNK_HDR : ch->len;
			continue;
		}
		if (ch->state == CHUNK_UNREADABLE) {
			r->unreadable++;
		} else {
			r->problems++;
			if (ch->state == CHUNK_MISSING)
				r->missing++;
			else
				r->corrupt++;
		}
		fsck_print_chunk(f, out, ch);
	}
}

enum fsck_seg_owner { SEG_NAMED, SEG_UNNAMED, SEG_HEAD_UNREAD, SEG_NO_HEAD };

/* What the head of a segment's node says of it. */
static enum fsck_seg_owner fsck_segment_owner(const struct fsck *f, const struct fsck_seg *sg)
{
	size_t plen = f->prefix_len + 6, nlen = strlen(sg->node);

	for (size_t i = 0; i < f->nnodes; i++) {
		const char *name = f->nodes[i] + plen;
		const struct fsck_read *rd = &f->node_reads[i];
		if (strncmp(name, sg->node, nlen) != 0 || strcmp(name + nlen, ".json") != 0)
			continue;
		if (rd->rc == -ENOENT)
			return SEG_NO_HEAD;
		if (rd->rc != 0)
			return SEG_HEAD_UNREAD;  /* reported as the head's problem */
		for (size_t k = 0; k < rd->nsegs; k++)
			if (rd->segs[k].gen == sg->gen)
				return SEG_NAMED;
		return SEG_UNNAMED;
	}
	return SEG_NO_HEAD;
}

/* Segments no head names: left by a compaction, a failed publish or a restart (notes, not problems). */
static void fsck_note_orphan_segments(struct fsck *f)
{
	for (size_t i = 0; i < f->nsegs; i++) {
		enum fsck_seg_owner owner = fsck_segment_owner(f, &f->segs[i]);
		f->r->objects++;
		if (owner == SEG_UNNAMED || owner == SEG_NO_HEAD)
			lines_add(&f->notes, fsck_strdup_printf("%s: a node state segment %s (gc --remote removes it "
								"after the grace period)", f->segs[i].key,
								owner == SEG_UNNAMED ? "its node's head does not name" :
								"of a node with no head"));
	}
}

static void fsck_report_nodes(struct fsck *f, FILE *out)
{
	fsck_note_orphan_segments(f);
	for (size_t i = 0; i < f->nnodes; i++) {
		const struct fsck_read *rd = &f->node_reads[i];
		f->r->objects++;
		f->r->node_states++;
		if (rd->rc == -ENOENT || rd->rc == 0)
			continue;  /* a node state is replaced now and then: gone is fine */
		if (rd->rc == -EBADMSG) {
			f->r->problems++;
			fprintf(out, "bad node state %s: %s\n", f->nodes[i], rd->msg ? rd->msg : "");
		} else {
			f->r->unreadable++;
			fprintf(out, "cannot read %s: %s\n", f->nodes[i], rd->msg ? rd->msg : "");
		}
	}
}

/* ---- the check ---- */

static int fsck_group_versions(struct fsck *f)
{
	if (f->nrobj)  /* an empty prefix has no objects, and qsort wants an array */
		qsort(f->robj, f->nrobj, sizeof(*f->robj), robj_cmp);
	f->versions = calloc(f->nrobj ? f->nrobj : 1, sizeof(*f->versions));
	f->reads = calloc(f->nrobj ? f->nrobj : 1, sizeof(*f->reads));
	f->node_reads = calloc(f->nnodes ? f->nnodes : 1, sizeof(*f->node_reads));
	if (!f->versions || !f->reads || !f->node_reads)
		return -ENOMEM;
	for (size_t i = 0; i < f->nrobj; i++) {
		const struct fsck_robj *o = &f->robj[i];
		struct fsck_version *v = &f->versions[f->nversions];
		if (i == 0 || strcmp(o->run, o[-1].run) != 0 || strcmp(o->version, o[-1].version) != 0) {
			v->first = i;
			v->commit = -1;
			f->nversions++;
		} else {
			v--;
		}
		v->n++;
		if (o->kind == FSCK_COMMIT)
			v->commit = (ssize_t)i;
	}
	return 0;
}

/* Reads the epoch; -EAGAIN while a collection runs. A malformed epoch object is a problem, not a stop. */
static int fsck_epoch(struct fsck *f, struct tier_gc_epoch *ep, char *err, size_t errsz, FILE *out)
{
	struct s3_result res = { 0 };
	int rc = tier_gc_epoch_get(f->c, f->prefix, ep, &res);

	if (rc == -EIO && res.http_status >= 200 && res.http_status < 300) {
		if (out) {
			f->r->problems++;
			fprintf(out, "bad garbage collection epoch %s%sgc/epoch: %s\n", f->prefix,
				f->prefix[0] ? "/" : "", res.message);
		}
		memset(ep, 0, sizeof(*ep));
		return 0;
	}
	if (rc < 0) {
		snprintf(err, errsz, "reading the garbage collection epoch: %s", fsck_message(&res, rc));
		return rc;
	}
	if (ep->collecting && !tier_gc_epoch_stale(ep)) {
		snprintf(err, errsz, "a bucket garbage collection (node %.64s) is running; check again when it is over",
			 ep->node);
		return -EAGAIN;
	}
	return 0;
}

static int fsck_run(struct fsck *f, char *err, size_t errsz)
{
	struct tier_gc_epoch before, after;
	struct s3_result res = { 0 };
	char key[TIER_PREFIX_MAX + 8];
	FILE *out = f->o->out ? f->o->out : stdout;
	int rc;

	rc = s3_bucket_check(f->c, &res);
	if (rc < 0) {
		snprintf(err, errsz, "%s", fsck_message(&res, rc));
		return rc;
	}
	rc = fsck_epoch(f, &before, err, errsz, NULL);
	if (rc < 0)
		return rc;
	snprintf(key, sizeof(key), "%s%s", f->prefix, f->prefix[0] ? "/" : "");
	f->prefix_len = strlen(key);
	memset(&res, 0, sizeof(res));
	rc = s3_list(f->c, key, NULL, 0, fsck_listed_one, f, &res);
	if (rc < 0) {
		snprintf(err, errsz, "listing s3://%s/%s: %s", f->bucket, key,
			 rc == -ENOMEM ? strerror(ENOMEM) : fsck_message(&res, rc));
		return rc;
	}
	rc = fsck_group_versions(f);
	if (rc < 0)
		return rc;
	fsck_parallel(f, f->nrobj, check_robj);
	fsck_parallel(f, f->nnodes, check_node);
	rc = fsck_collect_refs(f);
	if (rc == 0)
		rc = fsck_collect_packs(f);
	if (rc < 0)
		return rc;
	fsck_match_listing(f);
	fsck_parallel(f, f->npacks, check_pack);
	fsck_parallel(f, f->nchunks, check_chunk);

	rc = fsck_epoch(f, &after, err, errsz, out);
	if (rc < 0)
		return rc;
	if (after.epoch != before.epoch) {
		snprintf(err, errsz, "a bucket garbage collection ran during the check (epoch %llu to %llu): "
			 "objects it retired would look missing; check again", (unsigned long long)before.epoch,
			 (unsigned long long)after.epoch);
		return -EAGAIN;
	}
	fsck_report_versions(f, out);
	fsck_report_nodes(f, out);
	fsck_report_chunks(f, out);
	for (size_t i = 0; i < f->notes.n; i++)
		fprintf(out, "note: %s\n", f->notes.v[i]);
	f->r->unexpected = f->notes.n;
	fflush(out);
	return 0;
}

static void fsck_free(struct fsck *f)
{
	for (size_t i = 0; i < f->nrobj; i++) {
		free(f->robj[i].key);
		free(f->robj[i].own);
		if (f->reads) {
			free(f->reads[i].msg);
			if (f->robj[i].kind == FSCK_MANIFEST && f->reads[i].rc == 0)
				tier_manifest_free(&f->reads[i].m);
			if (f->robj[i].kind == FSCK_COMMIT && f->reads[i].rc == 0)
				tier_commit_free(&f->reads[i].commit);
		}
	}
	for (size_t i = 0; i < f->nnodes; i++) {
		free(f->nodes[i]);
		if (f->node_reads) {
			free(f->node_reads[i].msg);
			free(f->node_reads[i].segs);
		}
	}
	for (size_t i = 0; i < f->nsegs; i++) {
		free(f->segs[i].key);
		free(f->segs[i].node);
	}
	free(f->segs);
	for (size_t i = 0; i < f->nchunks; i++)
		free(f->chunks[i].msg);
	for (size_t i = 0; i < f->npacks; i++)
		free(f->packs[i].msg);
	free(f->packs);
	free(f->listed_packs);
	free(f->robj);
	free(f->reads);
	free(f->nodes);
	free(f->node_reads);
	free(f->listed);
	free(f->versions);
	free(f->refs);
	free(f->chunks);
	lines_free(&f->notes);
	if (f->c)
		s3_client_free(f->c);
}

int tier_fsck(const struct tier_options *opt, const struct tier_fsck_options *o, struct tier_fsck_report *r, char *err,
	      size_t errsz)
{
	struct fsck f = { .o = o, .r = r };
	struct tier_options ro = *opt;
	unsigned jobs = o->jobs ? o->jobs : 8;
	int rc;

	memset(r, 0, sizeof(*r));
	err[0] = '\0';
	atomic_init(&f.done_bytes, 0);
	if (jobs > FSCK_JOBS_MAX)
		jobs = FSCK_JOBS_MAX;
	f.jobs = jobs;
	if (!ro.max_attempts)
		ro.max_attempts = TIER_READER_ATTEMPTS;
	rc = tier_client_new(&ro, jobs + 1, NULL, NULL, &f.c, f.bucket, f.prefix, err, errsz);
	if (rc < 0)
		return rc;
	rc = fsck_run(&f, err, errsz);
	if (rc < 0 && !err[0])
		snprintf(err, errsz, "%s", strerror(-rc));
	fsck_free(&f);
	return rc;
}

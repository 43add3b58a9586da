/* meta_tally.c - what commits change in the counted figures: the logical bytes of the whole folder,
 * and the live figures of each tracked (open) version: its files (every name of a regular file),
 * their logical bytes (size for each name) and its stored bytes (the payload bytes of the distinct
 * chunks its files' extents name).
 *
 * A batch notes the inode records and extents it puts or deletes (meta_batch_note_inode,
 * meta_batch_note_extent). Before the write, meta_notes_prepare reads what each noted key holds now
 * and turns old against new into changes: -1 for a digest an extent stops naming, +1 for one it
 * starts naming, the files and bytes an inode record adds or takes from its version. After a
 * successful write, meta_notes_apply adds them up. That is exact because the keys of one inode
 * change under one lock at a time (the namespace lock for inode records, the file's lock for its
 * extents), so nothing changes a noted key between prepare and write; and a batch of inode records,
 * whose prepare may count a moved file's extents, commits alone (meta_batch_commit's commit_rw), so
 * no extent of that file lands between its count and its write.
 *
 * The extents of an inode count for the version its record names after the batch (none without a
 * record); a file renamed into another version takes every extent's digest along. An unlinked file
 * still open keeps its record, its extents and so its stored bytes until it is freed.
 *
 * A version is tracked from its creation (empty) or from a walk of its files when a mount starts
 * with it open, both before any other commit can touch it, and untracked when it is sealed or
 * removed. Anything that cannot be counted (no memory, a failed read) marks the tallies broken:
 * their figures are then unknown (-ESTALE) and the caller counts by walking, as before tallies.
 */
#include "meta_db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "digest_table.h"
#include "meta_codec.h"

struct meta_tally {
	uint64_t vino;
	int64_t files, logical;
	struct digest_table chunks;  /* each digest its files' extents name, and how many do */
	bool broken;
	struct meta_tally *next;
};

/* One change a batch makes to a version's figures. */
struct meta_tally_change {
	uint64_t vino;
	int64_t files, logical;
	int refs;            /* -1, 0 or +1 extent naming d */
	struct digest d;
	uint64_t len;        /* d's payload length, for refs +1 */
};

/* ---- notes kept by a batch ---- */

uint64_t meta_inode_logical(const struct meta_inode *i)
{
	return S_ISREG(i->mode) && i->nlink > 0 ? i->size : 0;
}

static uint64_t inode_names(const struct meta_inode *i)
{
	return S_ISREG(i->mode) ? i->nlink : 0;
}

/* Room for need elements of size elem in *arr (*cap allocated); false without memory. */
static bool grow(void **arr, size_t need, size_t *cap, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	void *v = realloc(*arr, ncap * elem);
	if (!v)
		return false;
	*arr = v;
	*cap = ncap;
	return true;
}

/* Room for one more note in *arr (n used of *cap, elements of size elem); false (and the notes
 * lost) without memory. */
static bool note_room(struct meta_notes *notes, void **arr, size_t n, size_t *cap, size_t elem)
{
	if (grow(arr, n + 1, cap, elem))
		return true;
	notes->lost = true;
	return false;
}

void meta_batch_note_inode(struct meta_batch *b, uint64_t ino, const struct meta_inode *i)
{
	struct meta_notes *n = meta_batch_notes(b);

	if (!note_room(n, (void **)&n->inodes, n->ninodes, &n->capinodes, sizeof(*n->inodes)))
		return;
	n->inodes[n->ninodes] = (struct meta_note_inode){
		.ino = ino,
		.present = i != NULL,
		.vino = i ? i->version_ino : 0,
		.names = i ? inode_names(i) : 0,
		.size = i ? i->size : 0,
		.contrib = i ? meta_inode_logical(i) : 0,
		.seq = n->ninodes,
	};
	n->ninodes++;
}

void meta_batch_note_extent(struct meta_batch *b, uint64_t ino, uint64_t file_off, const struct digest *d)
{
	struct meta_notes *n = meta_batch_notes(b);

	if (!note_room(n, (void **)&n->extents, n->nextents, &n->capextents, sizeof(*n->extents)))
		return;
	n->extents[n->nextents] = (struct meta_note_extent){ .ino = ino, .off = file_off, .put = d != NULL,
							     .seq = n->nextents };
	if (d)
		n->extents[n->nextents].d = *d;
	n->nextents++;
}

void meta_batch_note_extents_before(struct meta_batch *b, uint64_t ino, const struct meta_extent *v, size_t n)
{
	struct meta_notes *nt = meta_batch_notes(b);

	/* Without memory the list is not kept, and prepare reads the extents instead. */
	if (!grow((void **)&nt->known_digests, nt->nknown_digests + n, &nt->capknown_digests,
		  sizeof(*nt->known_digests)) ||
	    !grow((void **)&nt->known, nt->nknown + 1, &nt->capknown, sizeof(*nt->known)))
		return;
	nt->known[nt->nknown++] = (struct meta_note_known){ .ino = ino, .first = nt->nknown_digests, .n = n };
	for (size_t i = 0; i < n; i++)
		nt->known_digests[nt->nknown_digests++] = v[i].digest;
}

void meta_notes_clear(struct meta_notes *n)
{
	n->ninodes = n->nextents = 0;
	n->nknown = n->nknown_digests = 0;
	n->lost = false;
}

void meta_notes_free(struct meta_notes *n)
{
	free(n->inodes);
	free(n->extents);
	free(n->known);
	free(n->known_digests);
	memset(n, 0, sizeof(*n));
}

void meta_tally_delta_free(struct meta_tally_delta *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* ---- prepare: old against new ---- */

static int change_add(struct meta_tally_delta *d, struct meta_tally_change c)
{
	if (c.vino == 0)
		return 0;  /* not in a version */
	if (d->n == d->cap) {
		size_t ncap = d->cap ? 2 * d->cap : 16;
		struct meta_tally_change *v = realloc(d->v, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = ncap;
	}
	d->v[d->n++] = c;
	return 0;
}

static struct meta_tally *tally_find(struct meta *m, uint64_t vino);

/* Whether vino is tracked now. A version is tracked before anything can commit in it and untracked
 * when nothing more can (sealed, removed), so a commit's answer cannot change under it. */
static bool tracked(struct meta *m, uint64_t vino)
{
	if (vino == 0)
		return false;
	pthread_mutex_lock(&m->tally_mu);
	bool t = tally_find(m, vino) != NULL;
	pthread_mutex_unlock(&m->tally_mu);
	return t;
}

static int digest_change(struct meta *m, struct meta_tally_delta *d, uint64_t vino, const struct digest *dg,
			 int refs)
{
	struct meta_tally_change c = { .vino = vino, .refs = refs, .d = *dg };

	if (!tracked(m, vino))
		return 0;
	if (refs > 0) {
		struct meta_chunk ch;
		int rc = meta_get_chunk(m, dg, &ch);
		if (rc < 0)
			return rc;
		c.len = ch.len;
	}
	return change_add(d, c);
}

struct move_arg {
	struct meta *m;
	struct meta_tally_delta *d;
	uint64_t from, to;
};

static int move_extent(const struct meta_extent *e, void *arg)
{
	struct move_arg *a = arg;
	int rc = digest_change(a->m, a->d, a->from, &e->digest, -1);

	return rc < 0 ? rc : digest_change(a->m, a->d, a->to, &e->digest, +1);
}

/* Moves ino's extents as they are before the batch from one version to another: from the caller's
 * list when it handed one (meta_batch_note_extents_before), else read. */
static int move_extents(struct meta *m, const struct meta_notes *n, uint64_t ino, struct move_arg *a)
{
	for (size_t i = 0; i < n->nknown; i++) {
		if (n->known[i].ino != ino)
			continue;
		int rc = 0;
		for (size_t k = 0; k < n->known[i].n && rc == 0; k++) {
			struct meta_extent e = { .digest = n->known_digests[n->known[i].first + k] };
			rc = move_extent(&e, a);
		}
		return rc;
	}
	return meta_get_extents(m, ino, 0, UINT64_MAX, move_extent, a);
}

static int cmp_note_inode(const void *a, const void *b)
{
	const struct meta_note_inode *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_note_extent(const void *a, const void *b)
{
	const struct meta_note_extent *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The last note of each inode (sorted), or NULL. */
static const struct meta_note_inode *noted_inode(const struct meta_notes *n, uint64_t ino)
{
	size_t lo = 0, hi = n->ninodes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n->inodes[mid].ino <= ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && n->inodes[lo - 1].ino == ino ? &n->inodes[lo - 1] : NULL;
}

static int prepare_inodes(struct meta *m, struct meta_notes *n, bool versions, struct meta_tally_delta *d)
{
	int rc = 0;

	for (size_t i = 0; i < n->ninodes && rc == 0; i++) {
		const struct meta_note_inode *ni = &n->inodes[i];
		if (i + 1 < n->ninodes && n->inodes[i + 1].ino == ni->ino)
			continue;  /* a later record of the same inode in this batch wins */
		struct meta_inode old;
		int got = meta_get_inode(m, ni->ino, &old);
		if (got < 0 && got != -ENOENT)
			return got;
		bool had = got == 0;
		d->logical += (int64_t)ni->contrib - (int64_t)(had ? meta_inode_logical(&old) : 0);
		if (!versions)
			continue;
		if (had && inode_names(&old))
			rc = change_add(d, (struct meta_tally_change){ .vino = old.version_ino,
								       .files = -(int64_t)inode_names(&old),
								       .logical = -(int64_t)(inode_names(&old) * old.size) });
		if (rc == 0 && ni->present && ni->names)
			rc = change_add(d, (struct meta_tally_change){ .vino = ni->vino, .files = (int64_t)ni->names,
								       .logical = (int64_t)(ni->names * ni->size) });
		uint64_t from = had ? old.version_ino : 0, to = ni->present ? ni->vino : 0;
		if (rc == 0 && from != to && (tracked(m, from) || tracked(m, to))) {
			/* Moved to another version, or its record comes or goes: its extents as they are
			 * before this batch go along; the batch's own extent notes then count for `to`. */
			struct move_arg a = { m, d, from, to };
			rc = move_extents(m, n, ni->ino, &a);
		}
	}
	return rc;
}

/* The version an inode's extents count for after the batch. */
static int extent_version(struct meta *m, const struct meta_notes *n, uint64_t ino, uint64_t *vino)
{
	const struct meta_note_inode *ni = noted_inode(n, ino);
	struct meta_inode mi;
	int rc;

	if (ni) {
		*vino = ni->present ? ni->vino : 0;  /* deleted: its extents count nowhere */
		return 0;
	}
	rc = meta_get_inode(m, ino, &mi);
	if (rc == -ENOENT) {
		*vino = 0;  /* extents of an inode that has no record: counted nowhere */
		return 0;
	}
	if (rc == 0)
		*vino = mi.version_ino;
	return rc;
}

static int prepare_extents(struct meta *m, struct meta_notes *n, struct meta_tally_delta *d)
{
	uint64_t cur_ino = 0, vino = 0;
	bool have = false, counted = false;
	int rc = 0;

	for (size_t i = 0; i < n->nextents && rc == 0; i++) {
		const struct meta_note_extent *ne = &n->extents[i];
		if (i + 1 < n->nextents && n->extents[i + 1].ino == ne->ino && n->extents[i + 1].off == ne->off)
			continue;  /* the last edit of a key wins */
		if (!have || ne->ino != cur_ino) {
			rc = extent_version(m, n, ne->ino, &vino);
			if (rc < 0)
				break;
			cur_ino = ne->ino;
			have = true;
			counted = tracked(m, vino);  /* once per inode, not per extent */
		}
		if (!counted)
			continue;
		struct meta_extent old;
		int got = meta_get_extent(m, ne->ino, ne->off, &old);
		if (got < 0 && got != -ENOENT)
			return got;
		if (got == 0 && ne->put && digest_equal(&old.digest, &ne->d))
			continue;
		if (got == 0)
			rc = digest_change(m, d, vino, &old.digest, -1);
		if (rc == 0 && ne->put)
			rc = digest_change(m, d, vino, &ne->d, +1);
	}
	return rc;
}

int meta_notes_prepare(struct meta *m, struct meta_notes *n, struct meta_tally_delta *d)
{
	bool versions = __atomic_load_n(&m->tallies_tracked, __ATOMIC_ACQUIRE) > 0;
	int rc;

	memset(d, 0, sizeof(*d));
	if (n->lost) {
		d->failed = true;
		return 0;
	}
	if (n->ninodes)
		qsort(n->inodes, n->ninodes, sizeof(*n->inodes), cmp_note_inode);
	rc = prepare_inodes(m, n, versions, d);
	if (rc == 0 && versions && n->nextents) {
		qsort(n->extents, n->nextents, sizeof(*n->extents), cmp_note_extent);
		rc = prepare_extents(m, n, d);
	}
	if (rc < 0) {
		/* Not counted: the commit goes ahead, the figures are recounted. */
		d->n = 0;
		d->logical = 0;
		d->failed = true;
	}
	return 0;
}

/* ---- the tallies ---- */

static struct meta_tally *tally_find(struct meta *m, uint64_t vino)
{
	for (struct meta_tally *t = m->tallies; t; t = t->next)
		if (t->vino == vino)
			return t;
	return NULL;
}

static int tally_digest(struct meta_tally *t, const struct digest *d, int refs, uint64_t len)
{
	return refs > 0 ? digest_table_add(&t->chunks, d, len, NULL) : digest_table_drop(&t->chunks, d);
}

static void tally_apply(struct meta_tally *t, const struct meta_tally_change *c)
{
	t->files += c->files;
	t->logical += c->logical;
	if (c->refs && tally_digest(t, &c->d, c->refs, c->len) < 0)
		t->broken = true;
}

void meta_notes_apply(struct meta *m, struct meta_tally_delta *d)
{
	if (d->failed) {
		__atomic_store_n(&m->logical_stale, true, __ATOMIC_RELEASE);
	} else {
		__atomic_add_fetch(&m->logical_bytes, d->logical, __ATOMIC_RELAXED);
	}
	if (!d->failed && d->n == 0)
		return;
	pthread_mutex_lock(&m->tally_mu);
	for (struct meta_tally *t = m->tallies; d->failed && t; t = t->next)
		t->broken = true;
	for (size_t i = 0; !d->failed && i < d->n; i++) {
		struct meta_tally *t = tally_find(m, d->v[i].vino);
		if (t)
			tally_apply(t, &d->v[i]);
	}
	pthread_mutex_unlock(&m->tally_mu);
}

int meta_tally_track(struct meta *m, uint64_t vino)
{
	pthread_mutex_lock(&m->tally_mu);
	struct meta_tally *t = tally_find(m, vino);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (t) {
			t->vino = vino;
			t->next = m->tallies;
			m->tallies = t;
			__atomic_add_fetch(&m->tallies_tracked, 1, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&m->tally_mu);
	return t ? 0 : -ENOMEM;
}

void meta_tally_untrack(struct meta *m, uint64_t vino)
{
	pthread_mutex_lock(&m->tally_mu);
	for (struct meta_tally **pp = &m->tallies; *pp; pp = &(*pp)->next) {
		if ((*pp)->vino == vino) {
			struct meta_tally *t = *pp;
			*pp = t->next;
			digest_table_free(&t->chunks);
			free(t);
			__atomic_sub_fetch(&m->tallies_tracked, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	pthread_mutex_unlock(&m->tally_mu);
}

void meta_tallies_free(struct meta *m)
{
	while (m->tallies) {
		struct meta_tally *t = m->tallies;
		m->tallies = t->next;
		digest_table_free(&t->chunks);
		free(t);
	}
	m->tallies_tracked = 0;
}

int meta_tally_count_with(struct meta *m, uint64_t vino, const uint64_t *extra, size_t n_extra,
			  struct meta_tally_figures *out)
{
	struct digest_table more = { 0 };
	int rc = 0;

	/* The extra files' chunks are read before tally_mu is taken: a composition of thousands of
	 * files would hold every commit's tally update that long. They are sources in sealed versions,
	 * and the version being counted is sealing (its writes are held), so neither changes meanwhile. */
	for (size_t i = 0; rc == 0 && i < n_extra; i++)
		rc = meta_add_file_chunks(m, extra[i], &more);
	pthread_mutex_lock(&m->tally_mu);
	struct meta_tally *t = tally_find(m, vino);
	if (!t) {
		rc = -ENOENT;
	} else if (t->broken) {
		rc = -ESTALE;
	} else if (rc == 0) {
		out->files = t->files > 0 ? (uint64_t)t->files : 0;
		out->logical_bytes = t->logical > 0 ? (uint64_t)t->logical : 0;
		out->stored_bytes = t->chunks.len_sum + digest_table_len_outside(&more, &t->chunks);
	}
	pthread_mutex_unlock(&m->tally_mu);
	digest_table_free(&more);
	return rc;
}

int meta_tally_get(struct meta *m, uint64_t vino, struct meta_tally_figures *out)
{
	return meta_tally_count_with(m, vino, NULL, 0, out);
}

int meta_tally_seed_file(struct meta *m, uint64_t vino, uint64_t size)
{
	pthread_mutex_lock(&m->tally_mu);
	struct meta_tally *t = tally_find(m, vino);
	if (t) {
		t->files++;
		t->logical += (int64_t)size;
	}
	pthread_mutex_unlock(&m->tally_mu);
	return t ? 0 : -ENOENT;
}

struct seed_arg {
	struct meta *m;
	struct meta_tally *t;
};

static int seed_extent(const struct meta_extent *e, void *arg)
{
	struct seed_arg *a = arg;
	struct meta_chunk ch;
	int rc = meta_get_chunk(a->m, &e->digest, &ch);

	return rc < 0 ? rc : tally_digest(a->t, &e->digest, +1, ch.len);
}

int meta_tally_seed_extents(struct meta *m, uint64_t vino, uint64_t ino)
{
	pthread_mutex_lock(&m->tally_mu);
	struct seed_arg a = { m, tally_find(m, vino) };
	int rc = a.t ? meta_get_extents(m, ino, 0, UINT64_MAX, seed_extent, &a) : -ENOENT;
	if (rc < 0 && a.t)
		a.t->broken = true;
	pthread_mutex_unlock(&m->tally_mu);
	return rc;
}

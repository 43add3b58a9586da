/* tier_fetch.c - fetching one chunk object from the bucket into the local store, for read-through
 * and read-ahead alike: one fetch per chunk at a time (the slots; a second reader of the same chunk
 * waits for the first), a buffer placed so the payload can be written with O_DIRECT, verification of
 * the header and SHA-256 (tier_chunk_fetch_into), and the counters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "thread_buf.h"
#include "tier_impl.h"

static int fetch_slot(struct tier *t, const struct digest *d)
{
	for (unsigned i = 0; i < t->nfetching; i++)
		if (digest_equal(&t->fetching[i], d))
			return (int)i;
	return -1;
}

bool tier_fetch_in_flight(struct tier *t, const struct digest *d)
{
	pthread_mutex_lock(&t->lock);
	bool busy = fetch_slot(t, d) >= 0;
	pthread_mutex_unlock(&t->lock);
	return busy;
}

bool tier_fetch_try_claim(struct tier *t, const struct digest *d)
{
	bool claimed = false;

	pthread_mutex_lock(&t->lock);
	if (fetch_slot(t, d) < 0 && t->nfetching < TIER_FETCH_SLOTS) {
		t->fetching[t->nfetching++] = *d;
		claimed = true;
	}
	pthread_mutex_unlock(&t->lock);
	return claimed;
}

/* Readers of one chunk (kernel readahead issues several at once) cost one GET instead of one each. */
int tier_fetch_claim(struct tier *t, const struct digest *d, bool *owner)
{
	pthread_mutex_lock(&t->lock);
	if (fetch_slot(t, d) >= 0) {
		uint64_t gen = t->held_gen;
		while (fetch_slot(t, d) >= 0 && t->held_gen == gen)
			pthread_cond_wait(&t->fetched, &t->lock);
		bool busy = fetch_slot(t, d) >= 0;
		pthread_mutex_unlock(&t->lock);
		return busy ? -EAGAIN : 0;
	}
	*owner = t->nfetching < TIER_FETCH_SLOTS;
	if (*owner)
		t->fetching[t->nfetching++] = *d;
	pthread_mutex_unlock(&t->lock);
	return 1;
}

void tier_fetch_held(struct tier *t)
{
	pthread_mutex_lock(&t->lock);
	t->held_gen++;
	pthread_cond_broadcast(&t->fetched);
	pthread_mutex_unlock(&t->lock);
}

void tier_fetch_release(struct tier *t, const struct digest *d)
{
	pthread_mutex_lock(&t->lock);
	int i = fetch_slot(t, d);
	if (i >= 0)
		t->fetching[i] = t->fetching[--t->nfetching];
	pthread_cond_broadcast(&t->fetched);
	pthread_mutex_unlock(&t->lock);
}

/* Each thread's object buffer for demand reads, reused: fresh pages fault in slowly here, and a
 * chunk is a few MiB. At most one per FUSE thread. */
static struct thread_buf fetch_buf = THREAD_BUF_INIT;

/* Where an object of a len-byte payload goes in mem (of len + TIER_FETCH_SLACK bytes): the payload
 * lands 4 KiB-aligned, which lets chunk_store_put write it with O_DIRECT (no copy into the page
 * cache, the largest cost of a cache fill). */
uint8_t *tier_fetch_place(void *mem)
{
	return (uint8_t *)(((uintptr_t)mem + TIER_CHUNK_HDR + 4095) & ~(uintptr_t)4095) - TIER_CHUNK_HDR;
}

#define HUGE_PAGE (2u << 20)

int tier_fetch_buf_reserve(struct tier_fetch_buf *buf, size_t need)
{
	size_t size = need;

	if (buf->cap >= need)
		return 0;
	free(buf->mem);
	buf->cap = 0;
	if (size >= HUGE_PAGE) {
		size = (size + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
		buf->mem = aligned_alloc(HUGE_PAGE, size);
		if (buf->mem)
			(void)madvise(buf->mem, size, MADV_HUGEPAGE);  /* a hint: without it, 4 KiB pages */
	} else {
		buf->mem = malloc(size);
	}
	if (!buf->mem)
		return -ENOMEM;
	buf->cap = size;
	return 0;
}

/* Fetches the object of d into *obj (in buf, or the thread's buffer when buf is NULL); the payload
 * length is known from the chunk record. */
static int fetch_object(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, uint8_t **obj,
			size_t *plen, struct s3_result *res)
{
	struct meta_remote r;
	struct meta_chunk rec;
	struct tier_loc loc = { 0 };
	void *mem, *p = NULL;
	int rc;

	if (meta_chunk_remote_get(t->meta, d, &r) == 0 && r.packed)
		loc = (struct tier_loc){ .packed = true, .pack = r.pack, .off = r.pack_off };
	if (meta_get_chunk(t->meta, d, &rec) < 0 || rec.len > CHUNK_MAX_SIZE) {
		/* No record of its length (not expected for a chunk marked remote): fetch its own object whole. */
		if (loc.packed)
			return -EIO;
		rc = tier_chunk_fetch(t->client, t->prefix, d, &p, plen, res);
		if (rc < 0)
			return rc;
		rec.len = *plen;
	}
	if (buf)
		mem = tier_fetch_buf_reserve(buf, rec.len + TIER_FETCH_SLACK) == 0 ? buf->mem : NULL;
	else
		mem = thread_buf_get(&fetch_buf, rec.len + TIER_FETCH_SLACK);
	if (!mem) {
		free(p);
		return -ENOMEM;
	}
	*obj = tier_fetch_place(mem);
	*plen = rec.len;
	if (!p)
		return tier_chunk_fetch_into(t->client, t->prefix, d, &loc, rec.len, *obj, res);
	memcpy(*obj + TIER_CHUNK_HDR, p, rec.len);
	free(p);
	return 0;
}

int tier_fetch_verified(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, const uint8_t **payload,
			size_t *plen)
{
	struct s3_result res = { 0 };
	uint8_t *obj = NULL;
	int rc;

	rc = fetch_object(t, d, buf, &obj, plen, &res);
	if (rc < 0) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_to_hex(d, hex);
		pthread_mutex_lock(&t->lock);
		if (rc == -EIO)
			t->status.fetch_corrupt++;
		pthread_mutex_unlock(&t->lock);
		tier_logf(t, S3_LOG_ERROR, "S3 tier: fetching chunk %s failed: %s", hex,
			  res.message[0] ? res.message : strerror(-rc));
		return rc == -ENOENT ? -EIO : rc;  /* marked remote but gone: the read cannot be served */
	}
	*payload = obj + TIER_CHUNK_HDR;
	pthread_mutex_lock(&t->lock);
	t->status.fetched_chunks++;
	t->status.fetched_bytes += *plen;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void tier_fetch_keep(struct tier *t, const struct digest *d, const uint8_t *payload, size_t plen)
{
	chunk_store_put(store_chunks(t->st), d, payload, plen);
	tier_cache_touch(t, d);
}

int tier_fetch_store(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, const uint8_t **payload,
		     size_t *plen)
{
	int rc = tier_fetch_verified(t, d, buf, payload, plen);

	if (rc == 0)
		tier_fetch_keep(t, d, *payload, *plen);
	return rc;
}

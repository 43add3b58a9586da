/* chunk_read.c - reading chunks: a small LRU cache of open, header-verified chunk files, ranged
 * reads that check the CRC-32C of every block they touch, and whole-chunk verification.
 *
 * Full blocks inside the requested range are read straight into the caller's buffer; only the
 * partial blocks at either end go through a per-thread scratch buffer. A chunk that fails a check
 * is never served: the caller gets -EIO.
 */
#include "chunk_store_impl.h"
#include "thread_buf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crc32c.h"

static void chunk_open_release_locked(struct chunk_open *o, struct chunk_open **to_close)
{
	assert(o->refs > 0);
	if (--o->refs == 0)
		*to_close = o;
}

static void chunk_open_free(struct chunk_open *o)
{
	if (!o)
		return;
	close(o->fd);
	free(o);
}

static void chunk_open_put(struct chunk_store *cs, struct chunk_open *o)
{
	struct chunk_open *dead = NULL;

	pthread_mutex_lock(&cs->lock);
	chunk_open_release_locked(o, &dead);
	pthread_mutex_unlock(&cs->lock);
	chunk_open_free(dead);
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		if (n == 0)
			return -EIO;  /* truncated file */
		buf = (char *)buf + n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Opens chunk d and checks its header, without the cache. */
static int chunk_open_file(struct chunk_store *cs, const struct digest *d, struct chunk_open **out)
{
	char hex[DIGEST_HEX_LEN + 1];
	uint8_t hdr[CHUNK_HDR_SIZE];
	struct chunk_open *o;
	int rc;

	o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	digest_to_hex(d, hex);
	o->digest = *d;
	o->refs = 1;
	o->last_used = 0;
	o->fd = openat(cs->subdir_fd[d->b[0]], hex, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0) {
		rc = errno == ENOENT ? -ENOENT : -EIO;
		if (rc == -EIO)
			chunk_store_log("cannot open chunk %s: %s", hex, strerror(errno));
		free(o);
		return rc;
	}
	rc = pread_full(o->fd, hdr, CHUNK_HDR_SIZE, 0);
	if (!rc)
		rc = chunk_header_decode(hdr, d, &o->hdr);
	if (rc) {
		chunk_store_log("chunk %s: header is damaged", hex);
		chunk_open_free(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* Returns a referenced open file for d, from the cache or freshly opened (and then cached). */
static int chunk_open_get(struct chunk_store *cs, const struct digest *d, struct chunk_open **out)
{
	struct chunk_open *o, *dead = NULL;
	int victim = -1, rc;

	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < CHUNK_FD_CACHE; i++) {
		o = cs->cache[i];
		if (o && digest_equal(&o->digest, d)) {
			o->refs++;
			o->last_used = ++cs->tick;
			pthread_mutex_unlock(&cs->lock);
			*out = o;
			return 0;
		}
	}
	pthread_mutex_unlock(&cs->lock);

	rc = chunk_open_file(cs, d, &o);
	if (rc)
		return rc;

	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < CHUNK_FD_CACHE; i++) {
		struct chunk_open *c = cs->cache[i];

		if (c && digest_equal(&c->digest, d)) {
			/* Another reader cached it meanwhile: use theirs, drop ours. */
			c->refs++;
			c->last_used = ++cs->tick;
			pthread_mutex_unlock(&cs->lock);
			chunk_open_free(o);
			*out = c;
			return 0;
		}
		if (!c) {
			if (victim < 0 || cs->cache[victim])
				victim = i;
		} else if (victim < 0 || (cs->cache[victim] && c->last_used < cs->cache[victim]->last_used)) {
			victim = i;
		}
	}
	if (cs->cache[victim])
		chunk_open_release_locked(cs->cache[victim], &dead);
	o->refs = 2;  /* the cache's and the caller's */
	o->last_used = ++cs->tick;
	cs->cache[victim] = o;
	pthread_mutex_unlock(&cs->lock);
	chunk_open_free(dead);
	*out = o;
	return 0;
}

void chunk_cache_drop(struct chunk_store *cs, const struct digest *d)
{
	struct chunk_open *dead = NULL;

	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < CHUNK_FD_CACHE; i++) {
		if (cs->cache[i] && digest_equal(&cs->cache[i]->digest, d)) {
			chunk_open_release_locked(cs->cache[i], &dead);
			cs->cache[i] = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&cs->lock);
	chunk_open_free(dead);
}

void chunk_cache_clear(struct chunk_store *cs)
{
	for (int i = 0; i < CHUNK_FD_CACHE; i++) {
		struct chunk_open *dead = NULL;

		pthread_mutex_lock(&cs->lock);
		if (cs->cache[i]) {
			chunk_open_release_locked(cs->cache[i], &dead);
			cs->cache[i] = NULL;
		}
		pthread_mutex_unlock(&cs->lock);
		chunk_open_free(dead);
	}
}

static int preadv_full(int fd, struct iovec *iov, int iovcnt, off_t off)
{
	while (iovcnt > 0) {
		ssize_t n = preadv(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		if (n == 0)
			return -EIO;  /* the file is shorter than its header says */
		off += n;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Room for the two partial blocks of a read. */
static struct thread_buf read_scratch = THREAD_BUF_INIT;

static int chunk_read_blocks(struct chunk_open *o, uint64_t off, uint8_t *dst, size_t len)
{
	const uint64_t bs = o->hdr.block_size, plen = o->hdr.payload_len;
	uint64_t first = off / bs, last = (off + len - 1) / bs, nblocks = last - first + 1;
	struct iovec iov[CHUNK_MAX_CRCS], check[CHUNK_MAX_CRCS];
	uint8_t *scratch = NULL, *head = NULL, *tail = NULL;
	int rc = 0;

	for (uint64_t b = first; b <= last; b++) {
		uint64_t bstart = b * bs, bend = bstart + bs < plen ? bstart + bs : plen;
		struct iovec *v = &iov[b - first];

		v->iov_len = bend - bstart;
		if (bstart >= off && bend <= off + len) {
			v->iov_base = dst + (bstart - off);
		} else {
			/* Only the first and the last block can be partial. */
			if (!scratch) {
				scratch = thread_buf_get(&read_scratch, 2 * bs);
				if (!scratch)
					return -ENOMEM;
			}
			v->iov_base = b == first ? (head = scratch) : (tail = scratch + bs);
		}
		check[b - first] = *v;
	}
	rc = preadv_full(o->fd, iov, (int)nblocks, (off_t)(CHUNK_HDR_SIZE + first * bs));
	if (rc)
		goto out;
	const void *bufs[CHUNK_MAX_CRCS];
	size_t lens[CHUNK_MAX_CRCS];
	uint32_t crcs[CHUNK_MAX_CRCS];
	for (uint64_t i = 0; i < nblocks; i++) {
		bufs[i] = check[i].iov_base;
		lens[i] = check[i].iov_len;
	}
	crc32c_many(bufs, lens, nblocks, crcs);
	for (uint64_t b = first; b <= last; b++) {
		if (crcs[b - first] != o->hdr.crcs[b]) {
			char hex[DIGEST_HEX_LEN + 1];

			digest_to_hex(&o->digest, hex);
			chunk_store_log("chunk %s: checksum mismatch in block %llu", hex, (unsigned long long)b);
			rc = -EIO;
			goto out;
		}
	}
	if (head) {
		uint64_t skip = off - first * bs;
		size_t n = check[0].iov_len - skip < len ? check[0].iov_len - skip : len;

		memcpy(dst, head + skip, n);
	}
	if (tail) {
		uint64_t tstart = last * bs;

		memcpy(dst + (tstart - off), tail, off + len - tstart);
	}
out:
	return rc;
}

int chunk_store_read(struct chunk_store *cs, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	struct chunk_open *o;
	int rc;

	rc = chunk_open_get(cs, d, &o);
	if (rc)
		return rc;
	if (off > o->hdr.payload_len || len > o->hdr.payload_len - off)
		rc = -EINVAL;
	else if (len > 0)
		rc = chunk_read_blocks(o, off, dst, len);
	chunk_open_put(cs, o);
	return rc;
}

void chunk_store_prefetch(struct chunk_store *cs, const struct digest *d, uint64_t off, size_t len)
{
	struct chunk_open *o;

	if (chunk_open_get(cs, d, &o) != 0)
		return;
	if (off < o->hdr.payload_len) {
		if (len > o->hdr.payload_len - off)
			len = o->hdr.payload_len - off;
		(void)posix_fadvise(o->fd, (off_t)(CHUNK_HDR_SIZE + off), (off_t)len, POSIX_FADV_WILLNEED);
	}
	chunk_open_put(cs, o);
}

int chunk_store_stat(struct chunk_store *cs, const struct digest *d, uint64_t *payload_len)
{
	struct chunk_open *o;
	int rc;

	rc = chunk_open_get(cs, d, &o);
	if (rc)
		return rc;
	*payload_len = o->hdr.payload_len;
	chunk_open_put(cs, o);
	return 0;
}

int chunk_store_verify(struct chunk_store *cs, const struct digest *d)
{
	char hex[DIGEST_HEX_LEN + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct chunk_open *o;
	EVP_MD_CTX *ctx = NULL;
	uint8_t *buf = NULL;
	struct stat st;
	int rc;

	/* A private open: verification must read the disk as it is now, and not evict readers. */
	rc = chunk_open_file(cs, d, &o);
	if (rc)
		return rc == -ENOMEM ? rc : (rc == -ENOENT ? -ENOENT : -EIO);
	digest_to_hex(d, hex);
	rc = -EIO;
	if (fstat(o->fd, &st) != 0 || (uint64_t)st.st_size != CHUNK_HDR_SIZE + o->hdr.payload_len) {
		chunk_store_log("chunk %s: file size does not match its header", hex);
		goto out;
	}
	buf = malloc(o->hdr.block_size);
	ctx = EVP_MD_CTX_new();
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t b = 0; b < o->hdr.ncrcs; b++) {
		uint64_t start = (uint64_t)b * o->hdr.block_size;
		size_t n = o->hdr.payload_len - start < o->hdr.block_size ? o->hdr.payload_len - start
									  : o->hdr.block_size;

		if (pread_full(o->fd, buf, n, (off_t)(CHUNK_HDR_SIZE + start)) != 0)
			goto out;
		if (crc32c(0, buf, n) != o->hdr.crcs[b]) {
			chunk_store_log("chunk %s: checksum mismatch in block %u", hex, b);
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, n);
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != DIGEST_LEN ||
	    memcmp(md, d->b, DIGEST_LEN) != 0) {
		chunk_store_log("chunk %s: content does not match its SHA-256 name", hex);
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	chunk_open_free(o);
	return rc;
}

/* pecgpu_check.c - pecgpu-check VERSION: libpecgpu against a real pecfs mount. VERSION is an open
 * version directory; the program saves files in it, checks bytes, sizes, stats and user.pec.digest,
 * and at the end seals the version and checks that reference writes and saves are refused.
 *
 * Cases: a new multi-segment file (all chunks written), the same content again (all linked, nothing
 * written), one chunk changed, a two-rank sharded save, reference-write answers, and with --cuda the
 * same from device memory. Exit 0 all passed, 1 a check failed, 2 usage, 77 --cuda without a GPU.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "gpu_check.h"
#include "pecfs_ioctl.h"
#include "pecgpu.h"
#ifdef PECGPU_CHECK_CUDA
#include <cuda_runtime_api.h>
#endif

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		abort();
	check_fill(p, n, seed);
	return p;
}

/* Where the segments live: host copies of buf, or device copies with --cuda. */
struct layout {
	struct pecgpu_segment segs[8];
	size_t nsegs;
	int device;
};

static void layout_make(struct layout *l, const uint8_t *buf, uint64_t total, const uint64_t *cuts,
			size_t ncuts, int device)
{
	memset(l, 0, sizeof(*l));
	l->device = device;
	uint64_t off = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		uint64_t end = i == ncuts ? total : cuts[i];
		void *p = NULL;
		uint64_t len = end - off;
		/* the first segment (a safetensors header) stays in host memory even with --cuda */
		int where = device && i > 0 ? PECGPU_CUDA : PECGPU_HOST;
		if (where == PECGPU_HOST) {
			p = malloc(len ? len : 1);
			memcpy(p, buf + off, len);
		}
#ifdef PECGPU_CHECK_CUDA
		else if (cudaMalloc(&p, len ? len : 1) != cudaSuccess ||
			 cudaMemcpy(p, buf + off, len, cudaMemcpyHostToDevice) != cudaSuccess) {
			fprintf(stderr, "pecgpu-check: cannot stage %" PRIu64 " bytes on the device\n", len);
			exit(1);
		}
#endif
		l->segs[l->nsegs++] = (struct pecgpu_segment){ p, len, where };
		off = end;
	}
}

static void layout_free(struct layout *l)
{
	for (size_t i = 0; i < l->nsegs; i++) {
		if (l->segs[i].where == PECGPU_HOST)
			free((void *)l->segs[i].ptr);
#ifdef PECGPU_CHECK_CUDA
		else
			cudaFree((void *)l->segs[i].ptr);
#endif
	}
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* user.pec.digest of a file stored as one extent per chunk (fs/data.c, data_content_id): SHA-256 over
 * (file_off, len, chunk_off = 0 as little-endian u64, chunk digest) of each chunk, in hex. */
static void content_id(const uint8_t (*dig)[PECGPU_DIGEST_LEN], uint64_t total, uint32_t cs,
		       char hex[65])
{
	uint64_t n = pecgpu_chunk_count(total, cs);
	uint8_t *rec = malloc(n * 56 + 1);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = i * cs;
		put_le64(rec + i * 56, off);
		put_le64(rec + i * 56 + 8, total - off < cs ? total - off : cs);
		put_le64(rec + i * 56 + 16, 0);
		memcpy(rec + i * 56 + 24, dig[i], PECGPU_DIGEST_LEN);
	}
	uint8_t d[32];
	SHA256(rec, n * 56, d);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	free(rec);
}

/* Chunks of buf that a sharded save of world ranks leaves to ranks other than rank: the owner is
 * named by the chunk's SHA-256, its first 8 bytes big-endian modulo world (pecgpu.h). */
static uint64_t chunks_owned_elsewhere(const uint8_t *buf, uint64_t total, uint32_t cs, unsigned rank,
				       unsigned world)
{
	uint64_t n = 0;
	for (uint64_t off = 0; off < total; off += cs) {
		uint8_t d[32];
		uint64_t v = 0;
		SHA256(buf + off, total - off < cs ? total - off : cs, d);
		for (int i = 0; i < 8; i++)
			v = v << 8 | d[i];
		n += v % world != rank;
	}
	return n;
}

/* Reads path back and compares bytes, size and user.pec.digest with what the library hashed. */
static void verify_file(const char *path, const uint8_t *buf, uint64_t total, uint32_t cs,
			const struct layout *l)
{
	struct stat st;
	check(stat(path, &st) == 0 && (uint64_t)st.st_size == total, "%s: size %" PRIu64, path, total);
	uint8_t *got = malloc(total ? total : 1);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? pread(fd, got, total, 0) : -1;
	if (fd >= 0)
		close(fd);
	check(n == (ssize_t)total && memcmp(got, buf, total) == 0, "%s: bytes read back", path);
	free(got);

	uint64_t nch = pecgpu_chunk_count(total, cs);
	uint8_t (*dig)[PECGPU_DIGEST_LEN] = malloc((nch + 1) * PECGPU_DIGEST_LEN);
	int rc = pecgpu_digests(l->segs, l->nsegs, cs, 0, dig);
	int same = rc == 0;
	for (uint64_t i = 0; same && i < nch; i++) {
		uint8_t want[32];
		SHA256(buf + i * cs, total - i * cs < cs ? total - i * cs : cs, want);
		same = memcmp(want, dig[i], 32) == 0;
	}
	check(same, "%s: library digests (%s) equal SHA-256 of each chunk", path,
	      l->device ? "device" : "host");
	char want[65], have[80] = "";
	content_id(dig, total, cs, want);
	ssize_t x = getxattr(path, "user.pec.digest", have, sizeof(have) - 1);
	if (x >= 0)
		have[x] = '\0';
	check(x == 64 && strcmp(have, want) == 0, "%s: user.pec.digest %s", path, have);
	free(dig);
}

static struct pecgpu_save_stats save(struct pecgpu_ctx *c, const char *path, const struct layout *l,
				     int *rc)
{
	struct pecgpu_save_stats st;
	struct pecgpu_save *s = NULL;
	memset(&st, 0, sizeof(st));
	*rc = pecgpu_save_start(c, path, l->segs, l->nsegs, &s);
	if (*rc < 0)
		return st;
	*rc = pecgpu_save_wait_copied(s);
	int d = pecgpu_save_wait_durable(s);
	*rc = *rc ? *rc : d;
	if (*rc)
		fprintf(stderr, "pecgpu-check: %s\n", pecgpu_save_error(s));
	pecgpu_save_stats(s, &st);
	pecgpu_save_free(s);
	return st;
}

static void print_stats(const char *what, const struct pecgpu_save_stats *st)
{
	printf("     %s: %" PRIu64 " chunks, %" PRIu64 " linked (%" PRIu64 " after owner waits), %" PRIu64
	       " written, %" PRIu64 " bytes copied from device, %" PRIu64
	       " bytes written; digest %.3f s, copy %.3f s, write %.3f s, total %.3f s\n",
	       what, st->chunks, st->chunks_linked, st->chunks_owner_waits, st->chunks_written,
	       st->bytes_copied, st->bytes_written, st->digest_s, st->copy_s, st->write_s, st->total_s);
}

struct shard_arg {
	struct pecgpu_ctx *c;
	char path[512];
	const struct layout *l;
	struct pecgpu_save *s;
};

static void check_refs(const char *dir, uint32_t cs)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/refs", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0, "create %s", path);
	if (fd < 0)
		return;
	struct pecgpu_ref r[3];
	memset(r, 0, sizeof(r));
	r[0] = (struct pecgpu_ref){ .off = 0, .len = cs };  /* an all-zero digest nobody stored */
	memset(r[0].digest, 0, PECGPU_DIGEST_LEN);
	r[1] = (struct pecgpu_ref){ .off = 1, .len = cs };  /* misaligned */
	r[2] = (struct pecgpu_ref){ .off = cs, .len = 0 };  /* empty */
	long linked = pecgpu_ref(fd, r, 3);
	check(linked == 0 && r[0].result == -ENOENT && r[1].result == -EINVAL && r[2].result == -EINVAL,
	      "reference writes: unknown digest ENOENT, misaligned and empty EINVAL (%ld: %d %d %d)",
	      linked, r[0].result, r[1].result, r[2].result);
	close(fd);
}

/* A handle opened for writing before the seal gets EROFS for its reference writes; a new save too. */
static void check_sealed(const char *version, uint32_t cs)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/open-at-seal", version);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0, "create %s", path);
	int sealed = setxattr(version, "user.pec.seal", "1", 1, 0) == 0;
	check(sealed, "seal %s (%s)", version, sealed ? "ok" : strerror(errno));
	struct pecgpu_ref r = { .off = 0, .len = cs };
	long rc = fd >= 0 ? pecgpu_ref(fd, &r, 1) : 0;
	check(rc == -EROFS, "sealed: reference write refused with EROFS (%ld)", rc);
	if (fd >= 0)
		close(fd);
	struct pecgpu_ctx *c;
	struct pecgpu_save *s = NULL;
	uint8_t data[100] = { 0 };
	struct pecgpu_segment seg = { data, sizeof(data), PECGPU_HOST };
	snprintf(path, sizeof(path), "%s/after-seal", version);
	int src = pecgpu_ctx_new(NULL, &c);
	if (src == 0) {
		src = pecgpu_save_start(c, path, &seg, 1, &s);
		if (src == 0)
			pecgpu_save_free(s);
		pecgpu_ctx_free(c);
	}
	check(src == -EROFS, "sealed: a save is refused with EROFS (%d)", src);
}

int main(int argc, char **argv)
{
	int device = 0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cuda") == 0)
			device = 1;
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else
			dir = NULL, i = argc;
	}
	if (!dir) {
		fprintf(stderr, "usage: pecgpu-check [--cuda] VERSION (an open version; sealed at the end)\n");
		return 2;
	}
	printf("%s\n", pecgpu_version());
	if (device && !pecgpu_cuda_available()) {
		printf("skipped: no GPU (or built without CUDA)\n");
		return 77;
	}

	char path[512];
	snprintf(path, sizeof(path), "%s/.probe", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint32_t cs = 0;
	int rc = fd >= 0 ? pecgpu_chunk_size(fd, &cs) : -errno;
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	check(rc == 0, "chunk size of the mount: %u (%s)", cs, rc ? strerror(-rc) : "ok");
	if (rc)
		return 1;
	check_refs(dir, cs);

	/* header (8 + odd), a tensor across chunk boundaries, an empty tensor, tensors, a tail */
	uint64_t total = 5 * (uint64_t)cs + 4097;
	uint64_t cuts[] = { 8, 8 + 523, 2 * (uint64_t)cs + 77, 2 * (uint64_t)cs + 77, 4 * (uint64_t)cs };
	uint8_t *buf = random_bytes(total, (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid());
	struct layout l;
	layout_make(&l, buf, total, cuts, 5, device);
	uint64_t chunks = pecgpu_chunk_count(total, cs);
	struct pecgpu_ctx *c;
	struct pecgpu_options opt = { .pool_bytes = 2 * (uint64_t)cs };
	if (pecgpu_ctx_new(&opt, &c) < 0)
		return 1;

	snprintf(path, sizeof(path), "%s/new.safetensors", dir);
	struct pecgpu_save_stats st = save(c, path, &l, &rc);
	print_stats("new content", &st);
	check(rc == 0 && st.chunks == chunks && st.chunks_linked == 0 && st.chunks_written == chunks &&
	      st.bytes_written == total, "new content: every chunk written");
	check(!device || st.bytes_copied == total - 8,
	      "new content: device bytes copied %" PRIu64, st.bytes_copied);
	verify_file(path, buf, total, cs, &l);

	snprintf(path, sizeof(path), "%s/again.safetensors", dir);
	st = save(c, path, &l, &rc);
	print_stats("same content", &st);
	check(rc == 0 && st.chunks_linked == chunks && st.chunks_written == 0 && st.bytes_written == 0 &&
	      st.bytes_copied == 0, "same content: every chunk linked, nothing copied or written");
	verify_file(path, buf, total, cs, &l);
	layout_free(&l);

	/* one byte changed in chunk 3: that chunk alone is new */
	buf[3 * (uint64_t)cs + 5] ^= 0xff;
	layout_make(&l, buf, total, cuts, 5, device);
	snprintf(path, sizeof(path), "%s/changed.safetensors", dir);
	st = save(c, path, &l, &rc);
	print_stats("one chunk changed", &st);
	check(rc == 0 && st.chunks_linked == chunks - 1 && st.chunks_written == 1 && st.bytes_written == cs,
	      "one chunk changed: one written, the rest linked");
	verify_file(path, buf, total, cs, &l);

	/* a file of the run, outside any version: no reference writes, every chunk written */
	snprintf(path, sizeof(path), "%s/../pecgpu-check-outside-%d", dir, (int)getpid());
	st = save(c, path, &l, &rc);
	print_stats("outside a version", &st);
	check(rc == 0 && st.chunks_linked == 0 && st.chunks_written == chunks,
	      "outside a version: every chunk written");
	verify_file(path, buf, total, cs, &l);
	unlink(path);
	layout_free(&l);
	pecgpu_ctx_free(c);

	/* more chunks than one ioctl carries: the reference writes go in several batches */
	if (cs <= (256u << 10)) {
		uint64_t many = (2 * PECFS_REF_MAX + 3) * (uint64_t)cs + 1;
		uint8_t *mbuf = random_bytes(many, (uint64_t)time(NULL) * 13u + (uint64_t)getpid() + 3);
		uint64_t mcut[1] = { 8 };
		layout_make(&l, mbuf, many, mcut, 1, device);
		if (pecgpu_ctx_new(&opt, &c) < 0)
			return 1;
		uint64_t mch = pecgpu_chunk_count(many, cs);
		for (int k = 0; k < 2; k++) {
			snprintf(path, sizeof(path), "%s/many-%d.bin", dir, k);
			st = save(c, path, &l, &rc);
			print_stats(k ? "many chunks again" : "many chunks", &st);
			check(rc == 0 && st.chunks == mch && st.chunks_linked == (k ? mch : 0) &&
			      st.chunks_written == (k ? 0 : mch),
			      "%" PRIu64 " chunks (over %d per call): %s", mch, PECFS_REF_MAX,
			      k ? "all linked" : "all written");
			verify_file(path, mbuf, many, cs, &l);
		}
		pecgpu_ctx_free(c);
		layout_free(&l);
		free(mbuf);
	} else {
		printf("     (chunks of %u bytes: the many-chunks case needs 256 KiB or less)\n", cs);
	}

	/* two ranks save new identical content at once: each writes the chunks it owns */
	uint8_t *sbuf = random_bytes(total, (uint64_t)time(NULL) * 7919u + (uint64_t)getpid() + 1);
	layout_make(&l, sbuf, total, cuts, 5, device);
	struct pecgpu_ctx *rc_ctx[2];
	struct pecgpu_save *rs[2];
	char rpath[2][512];
	for (unsigned r = 0; r < 2; r++) {
		struct pecgpu_options o = { .pool_bytes = 2 * (uint64_t)cs, .rank = r, .world = 2,
					    .owner_wait_ms = 20000 };
		if (pecgpu_ctx_new(&o, &rc_ctx[r]) < 0)
			return 1;
		snprintf(rpath[r], sizeof(rpath[r]), "%s/rank%u.safetensors", dir, r);
		rc = pecgpu_save_start(rc_ctx[r], rpath[r], l.segs, l.nsegs, &rs[r]);
		check(rc == 0, "sharded: rank %u started", r);
		if (rc)
			return 1;
	}
	uint64_t written = 0;
	for (unsigned r = 0; r < 2; r++) {
		rc = pecgpu_save_wait_durable(rs[r]);
		if (rc)
			fprintf(stderr, "pecgpu-check: %s\n", pecgpu_save_error(rs[r]));
		pecgpu_save_stats(rs[r], &st);
		print_stats(r ? "sharded rank 1" : "sharded rank 0", &st);
		check(rc == 0 && st.chunks_linked + st.chunks_written == chunks,
		      "sharded rank %u: every chunk linked or written", r);
		written += st.chunks_written;
		pecgpu_save_free(rs[r]);
		pecgpu_ctx_free(rc_ctx[r]);
	}
	check(written == chunks, "sharded: each chunk written once across ranks (%" PRIu64 " of %" PRIu64
	      ")", written, chunks);
	for (unsigned r = 0; r < 2; r++)
		verify_file(rpath[r], sbuf, total, cs, &l);
	layout_free(&l);

	/* rank 1 of 3 alone with new content: it waits owner_wait_ms for ranks 0 and 2, then writes
	 * their chunks itself. The content is drawn until ranks 0 or 2 own a chunk of it (one draw in
	 * 729 would give rank 1 all six, and nothing to wait for). */
	for (uint64_t seed = (uint64_t)time(NULL) * 31u + (uint64_t)getpid() + 2;; seed++) {
		check_fill(sbuf, total, seed);
		if (chunks_owned_elsewhere(sbuf, total, cs, 1, 3) > 0)
			break;
	}
	layout_make(&l, sbuf, total, cuts, 5, device);
	struct pecgpu_options lone = { .pool_bytes = 2 * (uint64_t)cs, .rank = 1, .world = 3,
				       .owner_wait_ms = 300 };
	if (pecgpu_ctx_new(&lone, &c) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/lone-rank.safetensors", dir);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = save(c, path, &l, &rc);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_stats("sharded rank alone", &st);
	check(rc == 0 && st.chunks_written == chunks && st.chunks_owner_waits == 0 && took >= 0.3,
	      "sharded rank alone: every chunk written after waiting %.2f s for absent owners", took);
	verify_file(path, sbuf, total, cs, &l);
	pecgpu_ctx_free(c);
	layout_free(&l);
	free(sbuf);
	free(buf);

	check_sealed(dir, cs);
	printf("%s\n", check_failures ? "FAILED" : "all checks passed");
	return check_failures ? 1 : 0;
}

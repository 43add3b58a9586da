/* pecgpu_digest_bench.c - pecgpu-digest-bench [GIB [CHUNK_MIB [THREADS]]]: host digest throughput of
 * libpecgpu (OpenSSL SHA-256 on threads) over a multi-segment buffer, best of three runs, in GB/s.
 *
 * Host memory only; the device figure comes from pecgpu-cudatest --bench on a GPU machine.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pecgpu.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double gib = argc > 1 ? atof(argv[1]) : 1.0;
	unsigned mib = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
	unsigned threads = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
	if (gib <= 0 || mib == 0 || mib > 64) {
		fprintf(stderr, "usage: pecgpu-digest-bench [GIB [CHUNK_MIB [THREADS]]]\n");
		return 2;
	}
	uint64_t total = (uint64_t)(gib * (double)(1ull << 30));
	uint32_t cs = mib << 20;
	uint8_t *buf = malloc(total);
	if (!buf) {
		fprintf(stderr, "pecgpu-digest-bench: cannot allocate %" PRIu64 " bytes\n", total);
		return 1;
	}
	for (uint64_t i = 0; i < total; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	/* a header and tensors of odd sizes, as a safetensors file */
	struct pecgpu_segment segs[4] = {
		{ buf, 8 + 4093, PECGPU_HOST },
		{ buf + 4101, total / 3, PECGPU_HOST },
		{ buf + 4101 + total / 3, total / 3 + 1, PECGPU_HOST },
		{ buf + 4102 + 2 * (total / 3), total - 4102 - 2 * (total / 3), PECGPU_HOST },
	};
	uint64_t n = pecgpu_chunk_count(total, cs);
	uint8_t (*dig)[PECGPU_DIGEST_LEN] = malloc(n * PECGPU_DIGEST_LEN);
	double best = 1e30;
	for (int r = 0; r < 3; r++) {
		double t0 = now_s();
		int rc = pecgpu_digests(segs, 4, cs, threads, dig);
		double t = now_s() - t0;
		if (rc) {
			fprintf(stderr, "pecgpu-digest-bench: %s\n", strerror(-rc));
			return 1;
		}
		best = t < best ? t : best;
	}
	printf("host digests (%s): %.2f GiB in %" PRIu64 " chunks of %u MiB, %s threads: %.3f s, %.2f GB/s\n",
	       pecgpu_version(), (double)total / (1ull << 30), n, mib, threads ? argv[3] : "all", best,
	       (double)total / best / 1e9);
	free(dig);
	free(buf);
	return 0;
}

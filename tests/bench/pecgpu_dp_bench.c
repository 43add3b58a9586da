/* pecgpu_dp_bench.c - pecgpu-dp-bench MOUNT [RANKS [MIB]]: RANKS processes (data-parallel ranks)
 * save the same MIB of new bytes into one version of MOUNT, first with plain write(2)s, then with
 * libpecgpu's sharded saves; prints wall time and the bytes that went through FUSE (the daemon's
 * bytes_written in MOUNT/.pec/stats) for each, and their ratio (issue 10's target: <= 1.05 / RANKS).
 *
 * Host memory only (a CPU trainer's view; device copies are measured by pecgpu-cudatest --bench).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pecgpu.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One integer field of MOUNT/.pec/stats (flat JSON written by the daemon). */
static int stats_field(const char *mount, const char *key, uint64_t *out)
{
	char path[512], buf[8192], pat[64];
	snprintf(path, sizeof(path), "%s/.pec/stats", mount);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	char *p = strstr(buf, pat);
	if (!p)
		return -ENOENT;
	*out = strtoull(p + strlen(pat), NULL, 10);
	return 0;
}

static int plain_rank(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	for (uint64_t off = 0; off < len;) {
		size_t n = len - off < (1u << 20) ? (size_t)(len - off) : (1u << 20);
		ssize_t w = write(fd, buf + off, n);
		if (w <= 0) {
			close(fd);
			return 1;
		}
		off += (uint64_t)w;
	}
	int bad = fsync(fd) != 0;
	return close(fd) != 0 || bad;
}

static int pecgpu_rank(const char *path, const uint8_t *buf, uint64_t len, unsigned rank,
		       unsigned world)
{
	struct pecgpu_options o = { .rank = rank, .world = world };
	struct pecgpu_segment seg = { buf, len, PECGPU_HOST };
	struct pecgpu_ctx *c;
	struct pecgpu_save *s;
	if (pecgpu_ctx_new(&o, &c) < 0)
		return 1;
	int rc = pecgpu_save_start(c, path, &seg, 1, &s);
	if (rc == 0) {
		rc = pecgpu_save_wait_durable(s);
		if (rc)
			fprintf(stderr, "pecgpu-dp-bench: rank %u: %s\n", rank, pecgpu_save_error(s));
		pecgpu_save_free(s);
	}
	pecgpu_ctx_free(c);
	return rc != 0;
}

/* Runs ranks processes of one kind into dir and returns the wall time, or -1. */
static double run_ranks(int use_pecgpu, const char *dir, const uint8_t *buf, uint64_t len,
			unsigned ranks)
{
	double t0 = now_s();
	for (unsigned r = 0; r < ranks; r++) {
		pid_t pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0) {
			char path[1300];
			snprintf(path, sizeof(path), "%s/rank%u.bin", dir, r);
			_exit(use_pecgpu ? pecgpu_rank(path, buf, len, r, ranks) : plain_rank(path, buf, len));
		}
	}
	int failed = 0, status;
	for (unsigned r = 0; r < ranks; r++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	return failed ? -1 : now_s() - t0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pecgpu-dp-bench MOUNT [RANKS [MIB]]\n");
		return 2;
	}
	const char *mount = argv[1];
	unsigned ranks = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
	uint64_t len = (argc > 3 ? (uint64_t)atoll(argv[3]) : 1024) << 20;
	if (ranks == 0 || len == 0) {
		fprintf(stderr, "usage: pecgpu-dp-bench MOUNT [RANKS [MIB]]\n");
		return 2;
	}
	uint8_t *buf = malloc(len);
	if (!buf)
		return 1;
	char run[512], dir[2][600];
	snprintf(run, sizeof(run), "%s/pecgpu-dp-bench", mount);
	mkdir(run, 0755);
	double wall[2];
	uint64_t written[2], linked[2];
	for (int k = 0; k < 2; k++) {
		/* new bytes each round, so neither round links what the other stored */
		uint64_t x = (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid() * 40503u + (uint64_t)k;
		for (uint64_t i = 0; i < len; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
		}
		snprintf(dir[k], sizeof(dir[k]), "%s/%s-%d", run, k ? "pecgpu" : "plain", (int)getpid());
		if (mkdir(dir[k], 0755) != 0) {
			fprintf(stderr, "pecgpu-dp-bench: mkdir %s: %s\n", dir[k], strerror(errno));
			return 1;
		}
		uint64_t w0, w1, l0, l1;
		if (stats_field(mount, "bytes_written", &w0) || stats_field(mount, "bytes_linked", &l0)) {
			fprintf(stderr, "pecgpu-dp-bench: %s/.pec/stats has no bytes_written/bytes_linked\n",
				mount);
			return 1;
		}
		wall[k] = run_ranks(k, dir[k], buf, len, ranks);
		if (wall[k] < 0 || stats_field(mount, "bytes_written", &w1) ||
		    stats_field(mount, "bytes_linked", &l1)) {
			fprintf(stderr, "pecgpu-dp-bench: the %s round failed\n", k ? "pecgpu" : "plain");
			return 1;
		}
		written[k] = w1 - w0;
		linked[k] = l1 - l0;
		printf("%-7s %u ranks x %" PRIu64 " MiB: %.2f s, %" PRIu64 " MiB through FUSE, %" PRIu64
		       " MiB linked\n", k ? "pecgpu" : "plain", ranks, len >> 20, wall[k], written[k] >> 20,
		       linked[k] >> 20);
	}
	double ratio = (double)written[1] / (double)(written[0] ? written[0] : 1);
	printf("bytes through FUSE: pecgpu/plain = %.4f (%.1f %%; target <= %.4f), wall time %.2fx\n", ratio,
	       (ratio - 1) * 100, 1.05 / ranks, wall[1] / wall[0]);
	free(buf);
	return ratio <= 1.05 / ranks ? 0 : 1;
}

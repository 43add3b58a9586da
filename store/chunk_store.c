/* chunk_store.c - the chunk store's folder layout, durable puts, deletes and listing.
 *
 * A put writes header and payload to a temporary file, fdatasyncs it, renames it into
 * chunks/<hex[0:2]>/<hex> and fsyncs that directory: once it returns, the chunk survives a crash.
 * Reads and verification are in chunk_read.c. Directory fds stay open for the store's lifetime.
 */
#include "chunk_store_impl.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

static int mkdir_if_missing(int dirfd, const char *path)
{
	if (mkdirat(dirfd, path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/* Removes every file in tmp/: temporaries of puts that never finished (crash, failure). */
static int chunk_store_clear_tmp(struct chunk_store *cs)
{
	int fd = openat(cs->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dir;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(cs->tmp_fd, de->d_name, 0) != 0 && errno != ENOENT)
			chunk_store_log("cannot remove temporary file %s/tmp/%s: %s", cs->dir, de->d_name,
					strerror(errno));
	}
	closedir(dir);
	return 0;
}

int chunk_store_open(const char *dir, uint64_t reserve_free_bytes, struct chunk_store **out)
{
	struct chunk_store *cs;
	int dirfd = -1, rc;

	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->tmp_fd = -1;
	for (int i = 0; i < 256; i++)
		cs->subdir_fd[i] = -1;
	pthread_mutex_init(&cs->lock, NULL);
	cs->reserve_free_bytes = reserve_free_bytes;
	atomic_init(&cs->tmp_seq, 0);
	cs->dir = strdup(dir);
	if (!cs->dir) {
		rc = -ENOMEM;
		goto out_err;
	}
	rc = mkdir_if_missing(AT_FDCWD, dir);
	if (rc)
		goto out_err_msg;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		goto out_err_msg;
	}
	for (int i = 0; i < 256; i++) {
		char name[3];

		snprintf(name, sizeof(name), "%02x", i);
		rc = mkdir_if_missing(dirfd, name);
		if (rc)
			goto out_err_msg;
		cs->subdir_fd[i] = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cs->subdir_fd[i] < 0) {
			rc = -errno;
			goto out_err_msg;
		}
	}
	rc = mkdir_if_missing(dirfd, "tmp");
	if (rc)
		goto out_err_msg;
	cs->tmp_fd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->tmp_fd < 0) {
		rc = -errno;
		goto out_err_msg;
	}
	/* The new subdirectories must survive a crash before any chunk is renamed into them. */
	if (fsync(dirfd) != 0) {
		rc = -errno;
		goto out_err_msg;
	}
	close(dirfd);
	dirfd = -1;
	rc = chunk_store_clear_tmp(cs);
	if (rc)
		goto out_err_msg;
	*out = cs;
	return 0;

out_err_msg:
	chunk_store_log("cannot open %s: %s", dir, strerror(-rc));
out_err:
	if (dirfd >= 0)
		close(dirfd);
	chunk_store_close(cs);
	return rc;
}

void chunk_store_close(struct chunk_store *cs)
{
	if (!cs)
		return;
	chunk_cache_clear(cs);
	for (int i = 0; i < 256; i++)
		if (cs->subdir_fd[i] >= 0)
			close(cs->subdir_fd[i]);
	if (cs->tmp_fd >= 0)
		close(cs->tmp_fd);
	pthread_mutex_destroy(&cs->lock);
	free(cs->dir);
	free(cs);
}

uint64_t chunk_store_free_bytes(struct chunk_store *cs)
{
	struct statvfs sv;

	if (fstatvfs(cs->tmp_fd, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static int write_error(int err)
{
	return (err == ENOSPC || err == EDQUOT) ? -ENOSPC : -EIO;
}

/* Writes every byte of iov (at most 2 entries) at offset 0, resuming after short writes. */
static int write_all(int fd, struct iovec *iov, int iovcnt, off_t off)
{
	while (iovcnt > 0) {
		ssize_t n = pwritev(fd, iov, iovcnt, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
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

/* Payloads from page-aligned buffers (the write path's pool) are written with O_DIRECT: a new chunk
 * is rarely read back soon, and copying it into freshly allocated page-cache pages cost more CPU
 * than hashing it (measured: over half of the daemon's write-path time). The unaligned tail, if
 * any, goes through the page cache; a file system without O_DIRECT (tmpfs) gets buffered writes. */
#define CHUNK_DIRECT_ALIGN 4096u

static int write_chunk_file(int fd, const uint8_t *hdr, const void *data, size_t len, bool direct)
{
	size_t head = direct ? len & ~(size_t)(CHUNK_DIRECT_ALIGN - 1) : len;
	struct iovec iov[2] = { { (void *)hdr, CHUNK_HDR_SIZE }, { (void *)data, head } };
	int rc = write_all(fd, iov, head ? 2 : 1, 0);

	if (rc == 0 && head < len) {
		struct iovec tail = { (char *)data + head, len - head };
		if (direct && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) != 0)
			return -errno;
		rc = write_all(fd, &tail, 1, (off_t)(CHUNK_HDR_SIZE + head));
	}
	return rc;
}

int chunk_store_put(struct chunk_store *cs, const struct digest *d, const void *data, size_t len)
{
	char hex[DIGEST_HEX_LEN + 1], tmp[DIGEST_HEX_LEN + 48];
	int sub = cs->subdir_fd[d->b[0]];
	_Alignas(CHUNK_DIRECT_ALIGN) uint8_t hdr[CHUNK_HDR_SIZE];
	bool direct = ((uintptr_t)data & (CHUNK_DIRECT_ALIGN - 1)) == 0 &&
		      !atomic_load(&cs->no_direct_io);
	int fd = -1, rc;

	assert(len <= CHUNK_MAX_SIZE);
	if (len > CHUNK_MAX_SIZE)
		return -EINVAL;
	digest_to_hex(d, hex);
	if (faccessat(sub, hex, F_OK, 0) == 0)
		return 0;
	if (chunk_store_free_bytes(cs) < cs->reserve_free_bytes + CHUNK_HDR_SIZE + len)
		return -ENOSPC;

	chunk_header_encode(hdr, d, data, len);
	for (;;) {
		snprintf(tmp, sizeof(tmp), "%s.%ld.%llu", hex, (long)getpid(),
			 (unsigned long long)atomic_fetch_add(&cs->tmp_seq, 1));
		fd = openat(cs->tmp_fd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | (direct ? O_DIRECT : 0),
			    0400);
		if (fd >= 0)
			break;
		if (errno == EINVAL && direct) {  /* no O_DIRECT on this file system */
			atomic_store(&cs->no_direct_io, true);
			direct = false;
			continue;
		}
		if (errno != EEXIST) {
			rc = write_error(errno);
			chunk_store_log("cannot create %s/tmp/%s: %s", cs->dir, tmp, strerror(errno));
			return rc;
		}
	}
	rc = write_chunk_file(fd, hdr, data, len, direct);
	if (rc == -EINVAL && direct) {  /* O_DIRECT accepted at open, refused at write */
		atomic_store(&cs->no_direct_io, true);
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) == 0)
			rc = write_chunk_file(fd, hdr, data, len, false);
	}
	if (rc)
		goto out_write_err;
	if (fdatasync(fd) != 0) {
		rc = -errno;
		goto out_write_err;
	}
	close(fd);
	fd = -1;
	if (renameat(cs->tmp_fd, tmp, sub, hex) != 0) {
		rc = -errno;
		goto out_write_err;
	}
	/* The rename itself is durable only once the directory is synced. */
	if (fsync(sub) != 0) {
		rc = -errno;
		chunk_store_log("cannot sync directory of chunk %s: %s", hex, strerror(-rc));
		/* The chunk may or may not survive a crash: make sure nobody records it. */
		unlinkat(sub, hex, 0);
		return write_error(-rc);
	}
	return 0;

out_write_err:
	if (-rc != ENOSPC && -rc != EDQUOT)
		chunk_store_log("cannot write chunk %s: %s", hex, strerror(-rc));
	if (fd >= 0)
		close(fd);
	unlinkat(cs->tmp_fd, tmp, 0);
	return write_error(-rc);
}

int chunk_store_delete(struct chunk_store *cs, const struct digest *d)
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(d, hex);
	chunk_cache_drop(cs, d);
	if (unlinkat(cs->subdir_fd[d->b[0]], hex, 0) != 0) {
		if (errno == ENOENT)
			return -ENOENT;
		chunk_store_log("cannot remove chunk %s: %s", hex, strerror(errno));
		return -EIO;
	}
	return 0;
}

int chunk_store_mtime(struct chunk_store *cs, const struct digest *d, int64_t *mtime_ns)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct stat st;

	digest_to_hex(d, hex);
	if (fstatat(cs->subdir_fd[d->b[0]], hex, &st, 0) != 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	*mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

int chunk_store_foreach(struct chunk_store *cs,
			int (*cb)(const struct digest *d, uint64_t file_bytes, void *arg), void *arg)
{
	int rc = 0;

	for (int i = 0; i < 256 && rc == 0; i++) {
		/* A fresh descriptor: its read position is this scan's alone. */
		int fd = openat(cs->subdir_fd[i], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *de;
		DIR *dir;

		if (fd < 0)
			return -errno;
		dir = fdopendir(fd);
		if (!dir) {
			close(fd);
			return -errno;
		}
		while (rc == 0 && (de = readdir(dir)) != NULL) {
			struct digest d;
			struct stat st;

			if (digest_from_hex(de->d_name, &d) != 0 || d.b[0] != i)
				continue;
			if (fstatat(cs->subdir_fd[i], de->d_name, &st, 0) != 0)
				continue;  /* removed meanwhile */
			rc = cb(&d, (uint64_t)st.st_size, arg);
		}
		closedir(dir);
	}
	return rc;
}

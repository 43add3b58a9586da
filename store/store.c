/* store.c - opening and closing a data folder: the LOCK file, creating the layout, superblock and
 * root directory of a new folder, refusing folders that are not ours, then mount-time recovery.
 *
 * Chunk references and puts are in store_chunks.c, recovery in store_recover.c, garbage
 * collection and checking in store_gc.c / store_fsck.c.
 */
#include "store_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_MIN_CHUNK_SIZE (4u << 10)

/* Takes DATA_DIR/LOCK and writes our pid into it; -EBUSY with the holder's pid otherwise. */
static int store_lock(struct store *st, pid_t *busy_pid)
{
	char path[PATH_MAX], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/LOCK", st->data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "pecfs: cannot open %s: %s\n", path, strerror(errno));
		return errno == EACCES ? -EACCES : -EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;

		if (err == EWOULDBLOCK) {
			n = (int)pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			if (busy_pid)
				*busy_pid = (pid_t)atol(buf);
			fprintf(stderr, "pecfs: %s is in use by process %ld\n", st->data_dir, atol(buf));
			close(fd);
			return -EBUSY;
		}
		fprintf(stderr, "pecfs: cannot lock %s: %s\n", path, strerror(err));
		close(fd);
		return -EIO;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		fprintf(stderr, "pecfs: cannot write %s: %s\n", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	st->lock_fd = fd;
	return 0;
}

/* True if the folder holds anything besides what a data folder (or a fresh file system) has. */
static int store_has_foreign_entries(const char *dir, bool *foreign, bool *has_meta)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	*foreign = false;
	*has_meta = false;
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK") || !strcmp(n, "chunks") ||
		    !strcmp(n, "lost+found"))
			continue;
		if (!strcmp(n, "meta"))
			*has_meta = true;
		else
			*foreign = true;
	}
	closedir(d);
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes the superblock and the root directory of a new data folder, synced. */
static int store_format(struct store *st, uint32_t chunk_size)
{
	struct meta_super sb = { 0 };
	struct meta_inode root = { 0 };
	struct meta_batch *b;
	int rc;

	sb.format_version = META_FORMAT_VERSION;
	sb.chunk_size = chunk_size;
	sb.next_ino = META_ROOT_INO + 1;
	sb.next_seq = 1;
	if (getrandom(sb.node_id, sizeof(sb.node_id), 0) != (ssize_t)sizeof(sb.node_id)) {
		fprintf(stderr, "pecfs: cannot draw a random node id: %s\n", strerror(errno));
		return -EIO;
	}
	root.ino = META_ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.uid = getuid();
	root.gid = getgid();
	root.nlink = 2;
	root.atime_ns = root.mtime_ns = root.ctime_ns = now_ns();

	b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	meta_batch_put_super(b, &sb);
	meta_batch_put_inode(b, &root);
	rc = meta_batch_commit(st->meta, b, true);
	meta_batch_free(b);
	if (!rc)
		st->chunk_size = chunk_size;
	return rc;
}

/* fsync of a directory: makes the entries created in it durable. */
static int store_sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fsync(fd) != 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc)
		fprintf(stderr, "pecfs: cannot sync folder %s: %s\n", path, strerror(-rc));
	return rc;
}

static int store_check_chunk_size(uint32_t cs)
{
	if (cs < STORE_MIN_CHUNK_SIZE || cs > CHUNK_MAX_SIZE || cs % 4096 != 0) {
		fprintf(stderr, "pecfs: chunk size %u must be a multiple of 4 KiB between 4 KiB and 64 MiB\n", cs);
		return -EINVAL;
	}
	return 0;
}

/* The data folder holds every checkpoint's bytes in plain chunk files, behind none of the mount's
 * permission checks: it must not be open to other users. A folder that is gets its group and other
 * bits cleared, with a message; one that cannot be changed (another owner) is refused. */
static int store_make_private(const char *data_dir)
{
	struct stat sb;

	if (stat(data_dir, &sb) != 0) {
		fprintf(stderr, "pecfs: cannot read data folder %s: %s\n", data_dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "pecfs: data folder %s is not a directory\n", data_dir);
		return -ENOTDIR;
	}
	if ((sb.st_mode & 077) == 0)
		return 0;
	if (chmod(data_dir, sb.st_mode & 07700) != 0) {
		int e = errno;
		fprintf(stderr, "pecfs: data folder %s is open to other users (mode %04o) and cannot be made private: "
			"%s; run chmod go= on it\n", data_dir, (unsigned)(sb.st_mode & 07777), strerror(e));
		return -EACCES;
	}
	fprintf(stderr, "pecfs: data folder %s was open to other users (mode %04o): made it %04o, since its "
		"chunk files hold every checkpoint's bytes\n", data_dir, (unsigned)(sb.st_mode & 07777),
		(unsigned)(sb.st_mode & 07700));
	return 0;
}

int store_open(const char *data_dir, const struct store_options *opt, struct store **out, pid_t *busy_pid)
{
	uint32_t chunk_size = opt && opt->chunk_size ? opt->chunk_size : STORE_DEFAULT_CHUNK_SIZE;
	char path[PATH_MAX];
	struct meta_super sb;
	bool foreign, has_meta;
	struct store *st;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_mutex_init(&st->maint_lock, NULL);
	atomic_init(&st->corrupt_reads, 0);
	st->data_dir = strdup(data_dir);
	if (!st->data_dir || store_index_init(&st->index) != 0) {
		rc = -ENOMEM;
		goto out_err;
	}
	if (strlen(data_dir) > PATH_MAX - 64) {
		fprintf(stderr, "pecfs: data folder path is too long: %s\n", data_dir);
		rc = -ENAMETOOLONG;
		goto out_err;
	}
	rc = store_check_chunk_size(chunk_size);
	if (rc)
		goto out_err;
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "pecfs: cannot create data folder %s: %s\n", data_dir, strerror(errno));
		goto out_err;
	}
	rc = store_make_private(data_dir);
	if (rc)
		goto out_err;
	rc = store_has_foreign_entries(data_dir, &foreign, &has_meta);
	if (rc) {
		fprintf(stderr, "pecfs: cannot read data folder %s: %s\n", data_dir, strerror(-rc));
		goto out_err;
	}
	if (foreign && !has_meta) {
		fprintf(stderr, "pecfs: %s is not a pecfs data folder (it is not empty and has no metadata)\n",
			data_dir);
		rc = -EINVAL;
		goto out_err;
	}
	rc = store_lock(st, busy_pid);
	if (rc)
		goto out_err;
	snprintf(path, sizeof(path), "%s/meta", data_dir);
	rc = meta_open(path, &st->meta);
	if (rc)
		goto out_err;
	rc = meta_get_super(st->meta, &sb);
	if (rc == -ENOENT) {
		if (foreign) {
			fprintf(stderr, "pecfs: %s is not a pecfs data folder (no superblock)\n", data_dir);
			rc = -EINVAL;
			goto out_err;
		}
		rc = store_format(st, chunk_size);
	} else if (rc == 0) {
		if (sb.format_version != META_FORMAT_VERSION) {
			fprintf(stderr, "pecfs: %s has metadata format %u; this pecfs reads format %u\n",
				data_dir, sb.format_version, META_FORMAT_VERSION);
			rc = -EINVAL;
			goto out_err;
		}
		rc = store_check_chunk_size(sb.chunk_size);
		st->chunk_size = sb.chunk_size;
	}
	if (rc)
		goto out_err;
	snprintf(path, sizeof(path), "%s/chunks", data_dir);
	rc = chunk_store_open(path, opt ? opt->reserve_free_bytes : 0, &st->chunks);
	if (rc)
		goto out_err;
	/* meta/ and chunks/ are entries of the data folder: until it is synced, a power cut may take
	 * them, and everything synced below them, away. RocksDB syncs meta/ but not its parent. */
	rc = store_sync_dir(data_dir);
	if (rc)
		goto out_err;
	rc = store_recover(st);
	if (rc)
		goto out_err;
	meta_logical_bytes(st->meta);  /* counted now, while nothing else writes; commits keep it */
	*out = st;
	return 0;

out_err:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	chunk_store_close(st->chunks);
	if (st->meta) {
		meta_sync(st->meta);
		meta_close(st->meta);
	}
	if (st->lock_fd >= 0) {
		/* Clear the pid first so a stale file never names a live unrelated process. */
		if (ftruncate(st->lock_fd, 0) != 0)
			fprintf(stderr, "pecfs: cannot clear %s/LOCK: %s\n", st->data_dir, strerror(errno));
		close(st->lock_fd);
	}
	store_index_free(&st->index);
	pthread_mutex_destroy(&st->maint_lock);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	free(st->data_dir);
	free(st);
}

struct meta *store_meta(struct store *st)
{
	return st->meta;
}

struct chunk_store *store_chunks(struct store *st)
{
	return st->chunks;
}

uint32_t store_chunk_size(struct store *st)
{
	return st->chunk_size;
}

const char *store_data_dir(struct store *st)
{
	return st->data_dir;
}

int store_inode_path(struct store *st, uint64_t ino, char *buf, size_t size)
{
	char *end, *p;
	int depth = 0;

	if (size < 2)
		return -ERANGE;
	/* Built right to left at the end of buf, then moved to the front. */
	end = buf + size - 1;
	*end = '\0';
	p = end;
	while (ino != META_ROOT_INO) {
		struct meta_inode in;
		size_t n;
		int rc = meta_get_inode(st->meta, ino, &in);

		if (rc)
			return rc;
		n = strlen(in.name);
		if ((size_t)(p - buf) < n + 1)
			return -ERANGE;
		p -= n;
		memcpy(p, in.name, n);
		*--p = '/';
		/* A loop in parent pointers is corruption; never spin on it. */
		if (++depth > 4096 || in.parent == 0)
			return -ENOENT;
		ino = in.parent;
	}
	if (p == end)
		*--p = '/';
	memmove(buf, p, (size_t)(end - p) + 1);
	return 0;
}

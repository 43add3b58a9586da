/* ops_file.c - open files: create, open, read, write, flush, release, fsync.
 *
 * Opens for writing use direct I/O (the data module buffers whole chunks; the page cache would only
 * add a copy), and may still be mapped shared when the kernel allows it (fuse_init_ext.c); else O_RDWR
 * opens use the page cache so that they can be mapped. Pages stored through a mapping arrive as
 * ordinary writes, possibly after close() and until munmap: the handle lives until its release.
 * Read-only opens of sealed files use direct I/O as well when the kernel lets such files be mapped:
 * their bytes are then cached once, in the chunk files, which identical files share, instead of a
 * second time under each file; sequential readers have the next chunk files read ahead
 * (read_pattern.h). Other read-only opens use the page cache, and sealed files keep it across opens
 * when they use it (sealed-direct-io off), since they never change. The record (size, mtime) is
 * written back on flush, release, fsync and truncate. Closing a written tracker file directly in a
 * run seals the versions it names, and creating the first file of a newer version may seal older
 * ones; both fail with the seal's error when it fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "version_name.h"
#include "thread_buf.h"
#include "ctx.h"

#define TRACKER_MAX 4096  /* tracker files hold a name or a number */
#define LOCAL_AHEAD_CHUNKS 2  /* chunks a sequential reader's read-ahead starts from the local disk */

static struct fs_file *file_of(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

/* Opens ind (referenced by the caller; the handle takes its own reference). */
static int open_inode(struct fs_ctx *ctx, fuse_req_t req, struct fs_inode *ind, struct fuse_file_info *fi,
		      bool created)
{
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct fs_file *fh;
	int rc;

	if (S_ISDIR(ind->mi.mode))
		return -EISDIR;
	if (!S_ISREG(ind->mi.mode))
		return -EINVAL;
	uint64_t vino = ind->mi.version_ino;
	int state = vino ? fs_version_state(ctx, vino) : META_VERSION_OPEN;
	bool sealed = state > 0;
	if (sealed && (writable || (fi->flags & O_TRUNC)))
		return -EROFS;
	fh = calloc(1, sizeof(*fh));
	if (!fh)
		return -ENOMEM;
	if ((fi->flags & O_TRUNC) && !created) {
		pthread_mutex_lock(&ctx->ns_lock);
		rc = fs_version_check_writable(ctx, ind->mi.version_ino);
		if (rc == 0)
			rc = fs_inode_truncate_locked(ctx, ind, 0);
		pthread_mutex_unlock(&ctx->ns_lock);
		if (rc == 0) {
			struct meta_inode mi;
			fs_inode_snapshot(ind, &mi);
			fs_setid_drop(ctx, ind, fs_setid_to_drop(req, &mi));  /* no setattr tells the kernel */
		}
		if (rc < 0) {
			free(fh);
			return rc;
		}
	}
	pthread_mutex_lock(&ind->lock);
	if (ind->freed) {
		pthread_mutex_unlock(&ind->lock);
		free(fh);
		return -ENOENT;
	}
	fs_inode_open_data_locked(ctx, ind, created);
	if (!ind->df) {
		pthread_mutex_unlock(&ind->lock);
		free(fh);
		return -ENOMEM;
	}
	ind->open_count++;
	ind->write_count += writable;
	fh->next = ind->handles;
	if (fh->next)
		fh->next->prev = fh;
	ind->handles = fh;
	pthread_mutex_unlock(&ind->lock);

	fs_inode_ref(ctx, ind);
	fh->ind = ind;
	fh->version_ino = vino;
	fh->writable = writable;
	fs_version_handles(ctx, vino, +1);
	fi->fh = (uint64_t)(uintptr_t)fh;
	/* Writers use direct I/O; the kernel can map such files shared only when it granted
	 * FUSE_DIRECT_IO_ALLOW_MMAP. Without that, an O_RDWR open (the only kind that can map a file
	 * shared and writable) goes through the page cache instead, and O_WRONLY keeps direct I/O.
	 * Readers of sealed files use direct I/O under the same grant (a read-only open may map the
	 * file shared too). */
	if (writable)
		fi->direct_io = ctx->direct_io_mmap || (fi->flags & O_ACCMODE) == O_WRONLY;
	else
		fi->direct_io = sealed && ctx->direct_io_mmap && ctx->cfg->sealed_direct_io;
	fi->keep_cache = !writable && sealed && !fi->direct_io;
	return 0;
}

/* Takes fh off its inode's list of handles. Caller holds ind->lock. */
static void unlink_handle(struct fs_inode *ind, struct fs_file *fh)
{
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		ind->handles = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
}

static void close_handle(struct fs_ctx *ctx, struct fs_file *fh)
{
	struct fs_inode *ind = fh->ind;
	pthread_mutex_lock(&ind->lock);
	ind->open_count--;
	ind->write_count -= fh->writable;
	unlink_handle(ind, fh);
	pthread_mutex_unlock(&ind->lock);
	fs_version_handles(ctx, fh->version_ino, -1);
	fs_inode_reap(ctx, ind);
	fs_inode_put(ctx, ind);
	free(fh);
}

void fs_file_free_unreleased(struct fs_ctx *ctx, struct fs_inode *ind)
{
	pthread_mutex_lock(&ind->lock);
	struct fs_file *fh = ind->handles;
	ind->handles = NULL;
	ind->open_count = 0;
	ind->write_count = 0;
	pthread_mutex_unlock(&ind->lock);
	while (fh) {
		struct fs_file *next = fh->next;
		fs_version_handles(ctx, fh->version_ino, -1);
		fs_inode_put(ctx, ind);
		free(fh);
		fh = next;
	}
}

/* How long the first create of a version waits for the releases of files closed in older ones. */
#define CREATE_IDLE_WAIT_S 1

/* The open version a new file in pind goes into, when seal_on_next_version applies to it; else 0. */
static uint64_t create_seal_version(struct fs_ctx *ctx, struct fs_inode *pind)
{
	struct meta_inode pmi;

	if (!ctx->cfg->seal_on_next_version)
		return 0;
	fs_inode_snapshot(pind, &pmi);
	uint64_t vino = fs_mi_content_version(&pmi);
	if (vino == 0 || fs_version_check_writable(ctx, vino) < 0)
		return 0;  /* not in a version, or a sealed one: fs_ns_make answers */
	return vino;
}

/* seal_on_next_version: before the first file of an open version is created, the older versions it
 * supersedes are sealed. A seal that fails fails the create, which then creates nothing: a trainer
 * must not go on to its next checkpoint believing the previous one durable.
 *
 * Only versions with no open files are sealed. close() returns before the kernel's RELEASE of the
 * file reaches the daemon, so a trainer that closes the last file of step N and creates the first of
 * step N+1 can find step N still counted open. The first create therefore waits, before it takes
 * ns_lock, up to CREATE_IDLE_WAIT_S for those releases; a version still held after that stays open. */
static void create_wait_older_idle(struct fs_ctx *ctx, struct fs_inode *pind)
{
	uint64_t vino = create_seal_version(ctx, pind);
	if (vino != 0)
		fs_version_wait_older_idle(ctx, vino, CREATE_IDLE_WAIT_S);
}

/* The seal itself (see create_wait_older_idle). Caller holds ns_lock. */
static int create_seal_older_locked(struct fs_ctx *ctx, struct fs_inode *pind)
{
	uint64_t vino = create_seal_version(ctx, pind);
	return vino ? fs_version_seal_older_locked(ctx, vino) : 0;
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *pind, *ind;
	struct fuse_entry_param e;
	int rc = fs_inode_get(ctx, parent, &pind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	create_wait_older_idle(ctx, pind);
	pthread_mutex_lock(&ctx->ns_lock);
	rc = create_seal_older_locked(ctx, pind);
	if (rc == 0)
		rc = fs_ns_make(ctx, req, pind, name, S_IFREG | (mode & 07777), 0, NULL, &ind);
	pthread_mutex_unlock(&ctx->ns_lock);
	fs_inode_put(ctx, pind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = open_inode(ctx, req, ind, fi, true);
	if (rc < 0) {
		fs_inode_put(ctx, ind);
		fuse_reply_err(req, -rc);
		return;
	}
	fs_inode_entry(ctx, ind, &e);
	fs_inode_lookup_inc(ctx, ind);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_inode_forget(ctx, ind->ino, 1);
		close_handle(ctx, file_of(fi));
	}
	fs_inode_put(ctx, ind);
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	if (pec_is_virtual(ino)) {
		pec_open(req, ino, fi);
		return;
	}
	int rc = fs_inode_get(ctx, ino, &ind);
	if (rc == 0) {
		rc = open_inode(ctx, req, ind, fi, false);
		fs_inode_put(ctx, ind);
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		close_handle(ctx, file_of(fi));
}

/* Reads until size bytes or the end of the file: a direct-I/O read may come back short only at EOF. */
static ssize_t read_full(struct data_file *df, char *buf, size_t size, uint64_t off)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = data_read(df, buf + got, size - got, off + got);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Read replies are built in a buffer per request thread (see thread_buf.h for why). */
static struct thread_buf read_reply_buf = THREAD_BUF_INIT;

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (pec_is_virtual(ino)) {
		pec_read(req, size, off, fi);
		return;
	}
	struct fs_file *fh = file_of(fi);
	char *buf = thread_buf_get(&read_reply_buf, size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct data_ahead ahead = { .n = 0 };
	uint64_t entered;
	if (!fh->writable && read_pattern_note(&fh->ra, (uint64_t)off, size, ctx->chunk_size, &entered)) {
		/* Sealed files may be remote only (evicted, or imported by mount --from): let the tier
		 * fetch ahead of a sequential reader while this read is served. */
		tier_readahead(ctx->tier, fh->ind->ino, (uint64_t)off);
		data_ahead_plan(fh->ind->df, (entered + 1) * ctx->chunk_size,
				LOCAL_AHEAD_CHUNKS * (uint64_t)ctx->chunk_size, &ahead);
	}
	ssize_t n = read_full(fh->ind->df, buf, size, (uint64_t)off);
	fs_inode_touch_atime(ctx, fh->ind);
	if (n < 0) {
		pecfs_log_error("read of inode %llu at %lld: %s", (unsigned long long)ino, (long long)off, strerror((int)-n));
		fuse_reply_err(req, (int)-n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	/* After the reply, so the reader goes on meanwhile (and without fh, which a release may have
	 * freed by now): start the disk on the chunk files of the next chunks of the file. Each chunk
	 * is a file of its own, so the kernel's read-ahead in one ends at its end, and the first read
	 * of the next would wait for the disk. */
	data_ahead_start(ctx->dc, &ahead);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	ssize_t n;

	if (pec_is_virtual(ino)) {
		int rc = pec_write(fi, buf, size, off);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_write(req, (size_t)rc);
		return;
	}
	struct fs_file *fh = file_of(fi);
	struct fs_inode *ind = fh->ind;
	if (!fh->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&ind->lock);
	uint64_t vino = ind->mi.version_ino, gate;
	pthread_mutex_unlock(&ind->lock);
	int rc = fs_version_write_begin(ctx, vino, &gate);
	if (rc == 0) {
		n = data_write(ind->df, buf, size, (uint64_t)off);
		fs_version_write_end(ctx, gate);
	} else {
		n = rc;
	}
	if (n < 0) {
		if (n != -EROFS)
			pecfs_log_error("write of inode %llu at %lld: %s", (unsigned long long)ino, (long long)off,
			       strerror((int)-n));
		fuse_reply_err(req, (int)-n);
		/* A page stored through a mapping after its version was sealed: the kernel keeps the
		 * page it failed to write back, clean, and readers of the sealed file would see bytes the
		 * file does not have. Drop it now that the reply ended its write-back (invalidating
		 * before the reply would wait for that write-back: a deadlock). */
		if (n == -EROFS && fi->writepage)
			fuse_lowlevel_notify_inval_inode(ctx->se, ino, off, (off_t)size);
		return;
	}
	fs_file_wrote(ctx, req, fh);
	fuse_reply_write(req, (size_t)n);
}

void fs_file_wrote(struct fs_ctx *ctx, fuse_req_t req, struct fs_file *fh)
{
	struct fs_inode *ind = fh->ind;
	struct meta_inode mi;

	pthread_mutex_lock(&ind->lock);
	ind->mi.mtime_ns = ind->mi.ctime_ns = fs_now_ns();
	ind->meta_dirty = true;
	bool setid = ind->mi.mode & (S_ISUID | S_ISGID);
	if (setid)  /* rare: every write pays for one test, not a copy of the record */
		mi = ind->mi;
	pthread_mutex_unlock(&ind->lock);
	fh->wrote = true;
	if (setid)
		fs_setid_drop(ctx, ind, fs_setid_to_drop(req, &mi));
}

/* Stores the file's buffered bytes and writes its record. */
static int file_commit(struct fs_ctx *ctx, struct fs_inode *ind, bool sync)
{
	int rc = data_flush(ind->df);
	if (rc < 0) {
		pecfs_log_error("cannot store inode %llu: %s", (unsigned long long)ind->ino, strerror(-rc));
		return rc;
	}
	return fs_inode_persist(ctx, ind, sync);
}

/* seal_on_tracker: a written tracker file directly in a run names the versions to seal. 0, or the
 * error of a seal it triggered (or of reading the tracker back), which close() then returns. */
static int tracker_check(struct fs_ctx *ctx, struct fs_inode *ind)
{
	struct meta_inode mi, pmi;
	char content[TRACKER_MAX];
	fs_inode_snapshot(ind, &mi);
	if (mi.nlink == 0 || !version_name_is_tracker(mi.name) || meta_get_inode(ctx->meta, mi.parent, &pmi) < 0 ||
	    !fs_mi_is_run(&pmi))
		return 0;
	ssize_t n = read_full(ind->df, content, sizeof(content), 0);
	if (n < 0)
		return (int)n;
	return fs_version_seal_by_tracker(ctx, pmi.ino, mi.name, content, (size_t)n);
}

/* Runs at every close(), which waits for it (release comes later, asynchronously): so the tracker
 * seal happens here, and the version is sealed when the framework's close of `latest` returns; if
 * it cannot be, that close() fails with the seal's error (the tracker keeps what was written). */
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	int rc = 0;
	if (pec_is_virtual(ino)) {
		rc = pec_flush(ctx, fi);
	} else {
		struct fs_file *fh = file_of(fi);
		/* Only writers store at close: readers see buffered bytes anyway, and storing another
		 * writer's partial chunk early would only cost a read-modify-write later. Every close
		 * of a handle open for writing reports bytes of the file that were lost. */
		if (fh->wrote)
			rc = file_commit(ctx, fh->ind, false);
		else if (fh->writable)
			rc = data_file_error(fh->ind->df);
		if (rc == 0 && fh->wrote && ctx->cfg->seal_on_tracker)
			rc = tracker_check(ctx, fh->ind);
	}
	fuse_reply_err(req, -rc);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	if (pec_is_virtual(ino)) {
		pec_release(fi);
		fuse_reply_err(req, 0);
		return;
	}
	struct fs_file *fh = file_of(fi);
	/* Errors were reported by flush; release has no one to report to. */
	if (fh->wrote)
		file_commit(ctx, fh->ind, false);
	close_handle(ctx, fh);
	fuse_reply_err(req, 0);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	(void)datasync;
	int rc = 0;
	if (!pec_is_virtual(ino)) {
		/* Chunks are durable once stored; what is left is the extents and the record, whose
		 * commits the synced log makes durable. */
		rc = file_commit(ctx, file_of(fi)->ind, true);
	}
	fuse_reply_err(req, -rc);
}

/* Writes zeros over [off, end) of fh's file, a chunk-sized piece at a time: a zero chunk is stored
 * once, so this costs hashing, not disk. Caller holds no lock. */
static int write_zeros(struct fs_ctx *ctx, struct fs_file *fh, uint64_t off, uint64_t end)
{
	size_t piece = ctx->chunk_size;
	char *zeros = calloc(1, piece);
	int rc = zeros ? 0 : -ENOMEM;

	uint64_t gate = 0;  /* ending no gate does nothing */

	if (rc == 0)
		rc = fs_version_write_begin(ctx, fh->version_ino, &gate);
	while (rc == 0 && off < end) {
		size_t n = end - off < piece ? (size_t)(end - off) : piece;
		ssize_t w = data_write(fh->ind->df, zeros, n, off);
		rc = w < 0 ? (int)w : 0;
		off += n;
	}
	fs_version_write_end(ctx, gate);
	free(zeros);
	return rc;
}

/* fallocate(2) and posix_fallocate(3). Mode 0 extends the file to offset + length (zeros, as a
 * truncate would) and FALLOC_FL_KEEP_SIZE alone changes nothing; the promise behind them, that later
 * writes of that range find space, holds as far as free disk can tell: the bytes must fit above
 * reserve-free now (chunks are only stored when written, and deduplicated). FALLOC_FL_PUNCH_HOLE
 * (with KEEP_SIZE, as Linux requires) and FALLOC_FL_ZERO_RANGE make the range read as zeros (written
 * as zeros: a zero chunk is stored once). The other modes (collapse, insert, unshare) are
 * EOPNOTSUPP, which tools expect and fall back from. */
void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct statvfs sv;
	bool punch = mode & FALLOC_FL_PUNCH_HOLE, zero = mode & FALLOC_FL_ZERO_RANGE;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int rc = 0;

	if (pec_is_virtual(ino) || (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) ||
	    (punch && zero)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	struct fs_file *fh = file_of(fi);
	struct fs_inode *ind = fh->ind;
	if (offset < 0 || length <= 0 || offset > INT64_MAX - length || (punch && !keep)) {
		fuse_reply_err(req, offset >= 0 && length > 0 && offset > INT64_MAX - length ? EFBIG : EINVAL);
		return;
	}
	if (!fh->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	uint64_t end = (uint64_t)offset + (uint64_t)length;
	struct meta_inode mi;
	fs_inode_snapshot(ind, &mi);
	uint64_t size = mi.size;
	rc = fs_version_check_writable(ctx, mi.version_ino);
	if (rc == 0 && !punch && end > size && statvfs(store_data_dir(ctx->st), &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < ctx->cfg->reserve_free_bytes + (end - size))
		rc = -ENOSPC;
	if (rc == 0 && (punch || zero) && (uint64_t)offset < size)
		rc = write_zeros(ctx, fh, (uint64_t)offset, end < size ? end : size);
	if (rc == 0 && !keep) {
		pthread_mutex_lock(&ctx->ns_lock);
		if (end > size) {
			rc = fs_inode_truncate_locked(ctx, ind, end);
		} else {  /* nothing to extend, yet the file counts as modified, as on ext4 */
			pthread_mutex_lock(&ind->lock);
			ind->mi.mtime_ns = ind->mi.ctime_ns = fs_now_ns();
			ind->meta_dirty = true;
			pthread_mutex_unlock(&ind->lock);
		}
		pthread_mutex_unlock(&ctx->ns_lock);
	}
	if (rc == 0)  /* every mode counts as a change of the file, as on ext4 */
		fs_file_wrote(ctx, req, fh);
	fuse_reply_err(req, -rc);
}

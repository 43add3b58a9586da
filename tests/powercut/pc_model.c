/* pc_model.c - nodes, directory tables, undo logs, syncs and the restore after a power cut.
 *
 * The durable state is never stored apart from the live one: a file's durable bytes are its object
 * with the undo log written back and cut to durable_size, a directory's are its durable table. So a
 * sync costs nothing but dropping an undo log or copying a table, and the files that programs append
 * to and sync (logs, chunk files written once) cost no copy at all. Each directory also lists its
 * entry changes since its last sync, in order, for restores that let a prefix of them survive.
 * See README.md for the model.
 */
#include "pc_model.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void object_name(char *buf, size_t size, uint64_t ino)
{
	snprintf(buf, size, "%llu", (unsigned long long)ino);
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* ---- directory tables ---- */

/* Index of name in d, or where it would go (*found false). */
static size_t dir_search(const struct pc_dir *d, const char *name, bool *found)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct pc_dirent *pc_dir_find(struct pc_dir *d, const char *name)
{
	bool found;
	size_t i = dir_search(d, name, &found);

	return found ? &d->v[i] : NULL;
}

static int dir_insert(struct pc_dir *d, const char *name, uint64_t ino)
{
	bool found;
	size_t i = dir_search(d, name, &found);
	char *copy;

	assert(!found);
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct pc_dirent *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	memmove(&d->v[i + 1], &d->v[i], (d->n - i) * sizeof(*d->v));
	d->v[i].name = copy;
	d->v[i].ino = ino;
	d->n++;
	return 0;
}

static void dir_clear(struct pc_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static int dir_copy(struct pc_dir *dst, const struct pc_dir *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	dst->cap = src->n;
	for (; dst->n < src->n; dst->n++) {
		dst->v[dst->n].name = strdup(src->v[dst->n].name);
		if (!dst->v[dst->n].name) {
			dir_clear(dst);
			return -ENOMEM;
		}
		dst->v[dst->n].ino = src->v[dst->n].ino;
	}
	return 0;
}

/* Entries that differ between two sorted tables: names in one only, or naming other nodes. */
static uint64_t dir_difference(const struct pc_dir *a, const struct pc_dir *b)
{
	size_t i = 0, j = 0;
	uint64_t diff = 0;

	while (i < a->n || j < b->n) {
		int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i].name, b->v[j].name);

		if (c == 0) {
			diff += a->v[i].ino != b->v[j].ino;
			i++;
			j++;
		} else if (c < 0) {
			diff++;
			i++;
		} else {
			diff++;
			j++;
		}
	}
	return diff;
}

/* ---- entry changes since a directory's last sync ---- */

static void change_ref(struct pc_fs *fs, uint64_t ino, int delta)
{
	if (ino)
		fs->nodes[ino]->change_refs += delta;
}

/* Logs that name names ino from now on in d (0: removed), and name2 ino2 in the same step. */
static int change_log(struct pc_fs *fs, struct pc_node *d, const char *name, uint64_t ino,
		      const char *name2, uint64_t ino2)
{
	struct pc_change c = { .ino = ino, .ino2 = ino2 };

	if (d->nchanges == d->capchanges) {
		size_t cap = d->capchanges ? d->capchanges * 2 : 8;
		struct pc_change *v = realloc(d->changes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->changes = v;
		d->capchanges = cap;
	}
	c.name = strdup(name);
	c.name2 = name2 ? strdup(name2) : NULL;
	if (!c.name || (name2 && !c.name2)) {
		free(c.name);
		free(c.name2);
		return -ENOMEM;
	}
	d->changes[d->nchanges++] = c;
	change_ref(fs, ino, 1);
	change_ref(fs, ino2, 1);
	return 0;
}

static void change_free(struct pc_fs *fs, struct pc_change *c, bool release)
{
	free(c->name);
	free(c->name2);
	if (!release)
		return;
	change_ref(fs, c->ino, -1);
	change_ref(fs, c->ino2, -1);
}

/* Takes back the last change logged in d (its operation failed after all). */
static void change_unlog(struct pc_fs *fs, struct pc_node *d)
{
	change_free(fs, &d->changes[--d->nchanges], true);
}

/* Empties d's change list; release: give back the references (a restore recounts them instead). */
static void changes_clear(struct pc_fs *fs, struct pc_node *d, bool release)
{
	struct pc_change *v = d->changes;
	size_t n = d->nchanges;

	d->changes = NULL;
	d->nchanges = d->capchanges = 0;
	for (size_t i = 0; i < n; i++) {
		change_free(fs, &v[i], release);
		if (release && v[i].ino)
			pc_node_release_if_unused(fs, fs->nodes[v[i].ino]);
		if (release && v[i].ino2 && v[i].ino2 != v[i].ino)
			pc_node_release_if_unused(fs, fs->nodes[v[i].ino2]);
	}
	free(v);
}

/* ---- nodes ---- */

int pc_fs_init(struct pc_fs *fs, const char *backing)
{
	struct pc_node *root;
	struct dirent *de;
	DIR *dir;
	int fd;

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->power_changed, NULL);
	fs->power = PC_ON;
	fs->backing_fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->backing_fd < 0)
		return -errno;
	/* Objects are named by node number: leftovers of an earlier run would be taken for ours. */
	fd = dup(fs->backing_fd);
	dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			closedir(dir);
			return -ENOTEMPTY;
		}
	}
	closedir(dir);
	fs->next_ino = PC_ROOT_INO;
	root = pc_node_new(fs, S_IFDIR | 0755, getuid(), getgid());
	if (!root)
		return -errno;
	assert(root->ino == PC_ROOT_INO);
	return 0;
}

static void node_free(struct pc_fs *fs, struct pc_node *n);

void pc_fs_destroy(struct pc_fs *fs)
{
	for (uint64_t i = 0; i < fs->next_ino; i++) {
		struct pc_node *n = fs->nodes[i];

		if (n) {
			dir_clear(&n->live);
			dir_clear(&n->durable);
			changes_clear(fs, n, false);
			n->live_links = n->durable_links = n->change_refs = 0;
		}
	}
	for (uint64_t i = 0; i < fs->next_ino; i++)
		if (fs->nodes[i])
			node_free(fs, fs->nodes[i]);
	free(fs->nodes);
	if (fs->backing_fd >= 0)
		close(fs->backing_fd);
	pthread_cond_destroy(&fs->power_changed);
	pthread_mutex_destroy(&fs->lock);
}

struct pc_node *pc_node_get(struct pc_fs *fs, uint64_t ino)
{
	if (ino >= fs->next_ino)
		return NULL;
	return fs->nodes[ino];
}

struct pc_node *pc_node_new(struct pc_fs *fs, mode_t mode, uid_t uid, gid_t gid)
{
	struct pc_node *n;

	if (fs->next_ino % 1024 == 0 || !fs->nodes) {
		/* Room for the next 1024 numbers; number 0 is never used. */
		struct pc_node **v = realloc(fs->nodes, (fs->next_ino / 1024 + 1) * 1024 * sizeof(*v));

		if (!v) {
			errno = ENOMEM;
			return NULL;
		}
		if (!fs->nodes)
			v[0] = NULL;
		fs->nodes = v;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		errno = ENOMEM;
		return NULL;
	}
	n->ino = fs->next_ino;
	n->mode = mode;
	n->uid = uid;
	n->gid = gid;
	now(&n->mtime);
	n->atime = n->ctime = n->mtime;
	if (S_ISREG(mode)) {
		char name[32];
		int fd;

		object_name(name, sizeof(name), n->ino);
		fd = openat(fs->backing_fd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			int err = errno;

			free(n);
			errno = err;
			return NULL;
		}
		close(fd);
	}
	fs->nodes[fs->next_ino++] = n;
	return n;
}

int pc_node_open_object(struct pc_fs *fs, struct pc_node *n, int flags)
{
	char name[32];
	int fd;

	assert(S_ISREG(n->mode) && !n->gone);
	object_name(name, sizeof(name), n->ino);
	fd = openat(fs->backing_fd, name, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void undo_clear(struct pc_node *n)
{
	for (size_t i = 0; i < n->nundo; i++)
		free(n->undo[i].bytes);
	free(n->undo);
	n->undo = NULL;
	n->nundo = n->capundo = 0;
}

/* Frees n, its object and its tables, giving back the references its tables held. */
static void node_free(struct pc_fs *fs, struct pc_node *n)
{
	struct pc_dir live = n->live, durable = n->durable;

	changes_clear(fs, n, true);
	fs->nodes[n->ino] = NULL;
	if (S_ISREG(n->mode)) {
		char name[32];

		object_name(name, sizeof(name), n->ino);
		if (unlinkat(fs->backing_fd, name, 0) != 0 && errno != ENOENT)
			fprintf(stderr, "pecfs-powercut: cannot remove object %s: %s\n", name, strerror(errno));
	}
	undo_clear(n);
	free(n);
	for (size_t i = 0; i < live.n; i++) {
		struct pc_node *t = fs->nodes[live.v[i].ino];

		t->live_links--;
		pc_node_release_if_unused(fs, t);
	}
	for (size_t i = 0; i < durable.n; i++) {
		struct pc_node *t = fs->nodes[durable.v[i].ino];

		t->durable_links--;
		pc_node_release_if_unused(fs, t);
	}
	dir_clear(&live);
	dir_clear(&durable);
}

void pc_node_release_if_unused(struct pc_fs *fs, struct pc_node *n)
{
	if (n->ino == PC_ROOT_INO || n->nlookup || n->nopen || n->live_links || n->durable_links ||
	    n->change_refs)
		return;
	node_free(fs, n);
}

/* ---- names ---- */

/* Removes name (present) from d; returns the node it named. */
static uint64_t dir_remove(struct pc_dir *d, const char *name)
{
	bool found;
	size_t i = dir_search(d, name, &found);
	uint64_t ino;

	assert(found);
	ino = d->v[i].ino;
	free(d->v[i].name);
	memmove(&d->v[i], &d->v[i + 1], (d->n - i - 1) * sizeof(*d->v));
	d->n--;
	return ino;
}

static void dir_touch(struct pc_node *d)
{
	now(&d->mtime);
	d->ctime = d->mtime;
}

int pc_link(struct pc_fs *fs, struct pc_node *dir, const char *name, struct pc_node *n)
{
	int rc = change_log(fs, dir, name, n->ino, NULL, 0);

	if (rc)
		return rc;
	rc = dir_insert(&dir->live, name, n->ino);
	if (rc) {
		change_unlog(fs, dir);
		return rc;
	}
	n->live_links++;
	dir_touch(dir);
	return 0;
}

int pc_unlink(struct pc_fs *fs, struct pc_node *dir, const char *name)
{
	struct pc_node *t;
	int rc = change_log(fs, dir, name, 0, NULL, 0);

	if (rc)
		return rc;
	t = fs->nodes[dir_remove(&dir->live, name)];
	dir_touch(dir);
	t->live_links--;
	pc_node_release_if_unused(fs, t);
	return 0;
}

int pc_rename(struct pc_fs *fs, struct pc_node *d1, const char *n1, struct pc_node *d2, const char *n2)
{
	struct pc_dirent *e1 = pc_dir_find(&d1->live, n1), *e2 = pc_dir_find(&d2->live, n2);
	struct pc_node *s, *old = NULL;
	int rc;

	assert(e1);
	s = fs->nodes[e1->ino];
	if (e2)
		old = fs->nodes[e2->ino];
	assert(old != s);
	/* Within one directory a rename is one change; across two, one in each, durable apart. */
	rc = change_log(fs, d2, n2, s->ino, d1 == d2 ? n1 : NULL, 0);
	if (rc == 0 && d1 != d2 && (rc = change_log(fs, d1, n1, 0, NULL, 0)) != 0)
		change_unlog(fs, d2);
	if (rc)
		return rc;
	/* The new name first, so that s keeps a link throughout. */
	if (e2) {
		e2->ino = s->ino;
	} else if ((rc = dir_insert(&d2->live, n2, s->ino)) != 0) {
		if (d1 != d2)
			change_unlog(fs, d1);
		change_unlog(fs, d2);
		return rc;
	}
	dir_remove(&d1->live, n1);
	dir_touch(d1);
	dir_touch(d2);
	if (old) {
		old->live_links--;
		pc_node_release_if_unused(fs, old);
	}
	return 0;
}

int pc_exchange(struct pc_fs *fs, struct pc_node *d1, const char *n1, struct pc_node *d2, const char *n2)
{
	struct pc_dirent *e1 = pc_dir_find(&d1->live, n1), *e2 = pc_dir_find(&d2->live, n2);
	uint64_t ino1;
	int rc;

	assert(e1 && e2);
	ino1 = e1->ino;
	if (d1 == d2) {
		rc = change_log(fs, d1, n1, e2->ino, n2, ino1);
	} else {
		rc = change_log(fs, d1, n1, e2->ino, NULL, 0);
		if (rc == 0 && (rc = change_log(fs, d2, n2, ino1, NULL, 0)) != 0)
			change_unlog(fs, d1);
	}
	if (rc)
		return rc;
	e1->ino = e2->ino;
	e2->ino = ino1;
	dir_touch(d1);
	dir_touch(d2);
	return 0;
}

/* ---- file content ---- */

/* Saves the object's bytes [off, off+len) as undo entry i (they are still the durable ones). */
static int undo_insert(struct pc_node *n, size_t i, int fd, uint64_t off, uint64_t len)
{
	uint8_t *bytes = malloc(len);
	uint64_t got = 0;

	if (!bytes)
		return -ENOMEM;
	while (got < len) {
		ssize_t r = pread(fd, bytes + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			/* The object is shorter than the durable size without the bytes saved: the
			 * model's invariant is broken, and the durable content with it. */
			fprintf(stderr, "pecfs-powercut: object %llu: cannot save durable bytes at %llu: %s\n",
				(unsigned long long)n->ino, (unsigned long long)(off + got),
				r < 0 ? strerror(errno) : "end of file");
			free(bytes);
			return -EIO;
		}
		got += (uint64_t)r;
	}
	if (n->nundo == n->capundo) {
		size_t cap = n->capundo ? n->capundo * 2 : 4;
		struct pc_undo *v = realloc(n->undo, cap * sizeof(*v));

		if (!v) {
			free(bytes);
			return -ENOMEM;
		}
		n->undo = v;
		n->capundo = cap;
	}
	memmove(&n->undo[i + 1], &n->undo[i], (n->nundo - i) * sizeof(*n->undo));
	n->undo[i] = (struct pc_undo){ .off = off, .len = len, .bytes = bytes };
	n->nundo++;
	return 0;
}

int pc_file_before_change(struct pc_node *n, int fd, uint64_t off, uint64_t len)
{
	uint64_t end = off + len > n->durable_size ? n->durable_size : off + len;
	uint64_t cur = off;
	size_t i = 0;

	/* Bytes at or past the durable size need nothing: the restore cuts the file there. */
	while (cur < end) {
		uint64_t gap_end = end;
		int rc;

		while (i < n->nundo && n->undo[i].off + n->undo[i].len <= cur)
			i++;
		if (i < n->nundo && n->undo[i].off < end) {
			if (n->undo[i].off <= cur) {  /* saved already */
				cur = n->undo[i].off + n->undo[i].len;
				i++;
				continue;
			}
			gap_end = n->undo[i].off;
		}
		rc = undo_insert(n, i, fd, cur, gap_end - cur);
		if (rc)
			return rc;
		i++;
		cur = gap_end;
	}
	return 0;
}

void pc_file_sync(struct pc_fs *fs, struct pc_node *n)
{
	undo_clear(n);
	n->durable_size = n->size;
	fs->stats.file_syncs++;
}

int pc_dir_sync(struct pc_fs *fs, struct pc_node *d)
{
	struct pc_dir copy, old = d->durable;
	int rc = dir_copy(&copy, &d->live);

	if (rc)
		return rc;
	/* References of the new table first, so that a node named in both is never freed between. */
	for (size_t i = 0; i < copy.n; i++)
		fs->nodes[copy.v[i].ino]->durable_links++;
	d->durable = copy;
	for (size_t i = 0; i < old.n; i++) {
		struct pc_node *t = fs->nodes[old.v[i].ino];

		t->durable_links--;
		pc_node_release_if_unused(fs, t);
	}
	dir_clear(&old);
	changes_clear(fs, d, true);
	fs->stats.dir_syncs++;
	return 0;
}

/* ---- the power cut ---- */

/* Marks every node reachable from the root through durable entries. */
static int mark_durable(struct pc_fs *fs)
{
	struct pc_node **stack;
	size_t top = 0;

	for (uint64_t i = 0; i < fs->next_ino; i++)
		if (fs->nodes[i])
			fs->nodes[i]->mark = false;
	stack = malloc((fs->next_ino + 1) * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	fs->nodes[PC_ROOT_INO]->mark = true;
	stack[top++] = fs->nodes[PC_ROOT_INO];
	while (top > 0) {
		struct pc_node *d = stack[--top];

		for (size_t i = 0; i < d->durable.n; i++) {
			struct pc_node *t = fs->nodes[d->durable.v[i].ino];

			if (t->mark)
				continue;
			t->mark = true;
			if (S_ISDIR(t->mode))
				stack[top++] = t;  /* each node is pushed once: the stack cannot overflow */
		}
	}
	free(stack);
	return 0;
}

/* Writes the undo log back and cuts the object to the durable size, or past it to keep_to (bytes
 * appended since the last sync that survive). The file's durable state is then its live one. */
static int revert_file(struct pc_fs *fs, struct pc_node *n, uint64_t keep_to)
{
	int fd, rc = 0;

	if (keep_to < n->durable_size || keep_to > n->size)
		keep_to = n->durable_size;
	if (n->nundo == 0 && n->size == keep_to) {
		fs->stats.bytes_kept += keep_to - n->durable_size;
		n->durable_size = keep_to;
		return 0;
	}
	fd = pc_node_open_object(fs, n, O_WRONLY);
	if (fd < 0)
		return fd;
	for (size_t i = 0; i < n->nundo && rc == 0; i++) {
		const struct pc_undo *u = &n->undo[i];

		if (pwrite(fd, u->bytes, u->len, (off_t)u->off) != (ssize_t)u->len)
			rc = -EIO;
		fs->stats.bytes_undone += u->len;
	}
	if (rc == 0 && ftruncate(fd, (off_t)keep_to) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0) {
		if (n->size > keep_to)
			fs->stats.bytes_undone += n->size - keep_to;
		fs->stats.bytes_kept += keep_to - n->durable_size;
		fs->stats.files_reverted++;
		undo_clear(n);
		n->size = n->durable_size = keep_to;
	}
	return rc;
}

/* Sets name to ino in d's durable table (0: removes it). */
static int durable_set(struct pc_node *d, const char *name, uint64_t ino)
{
	struct pc_dirent *e = pc_dir_find(&d->durable, name);

	if (e && ino)
		e->ino = ino;
	else if (e)
		dir_remove(&d->durable, name);
	else if (ino)
		return dir_insert(&d->durable, name, ino);
	return 0;
}

/* Applies d's first count changes to its durable table: they reached the disk. */
static int changes_persist(struct pc_fs *fs, struct pc_node *d, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct pc_change *c = &d->changes[i];
		int rc = durable_set(d, c->name, c->ino);

		if (rc == 0 && c->name2)
			rc = durable_set(d, c->name2, c->ino2);
		if (rc)
			return rc;
		fs->stats.names_kept++;
	}
	return 0;
}

/* A number in [0, 1) drawn for node ino from seed (splitmix64): the same for the same pair. */
static double draw(uint64_t seed, uint64_t ino)
{
	uint64_t z = seed + ino * 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return (double)(z >> 11) / (double)(1ull << 53);
}

/* Where a file's kept appended bytes end: the part frac of them, down to a 4 KiB boundary. */
static uint64_t keep_end(const struct pc_node *n, double frac)
{
	uint64_t end;

	if (frac <= 0 || n->size <= n->durable_size)
		return n->durable_size;
	end = n->durable_size + (uint64_t)(frac * (double)(n->size - n->durable_size));
	end &= ~(uint64_t)4095;
	return end > n->durable_size ? end : n->durable_size;
}

int pc_fs_restore(struct pc_fs *fs, double keep, uint64_t seed)
{
	int rc = 0;

	/* The entry changes that reached the disk first: they decide what is reachable. (The nodes
	 * they name are alive: change_refs.) Link counts are rebuilt below. */
	for (uint64_t i = 0; i < fs->next_ino && rc == 0 && keep > 0; i++) {
		struct pc_node *d = fs->nodes[i];

		if (d && S_ISDIR(d->mode))
			rc = changes_persist(fs, d, (size_t)(keep * draw(seed, i) * (double)d->nchanges + 0.5));
	}
	if (rc == 0)
		rc = mark_durable(fs);
	if (rc)
		return rc;
	for (uint64_t i = 0; i < fs->next_ino && rc == 0; i++) {
		struct pc_node *n = fs->nodes[i];

		if (!n)
			continue;
		if (n->mark && S_ISREG(n->mode)) {
			rc = revert_file(fs, n, keep_end(n, keep * draw(seed, i)));
		} else if (n->mark && S_ISDIR(n->mode)) {
			struct pc_dir copy;

			fs->stats.names_reverted += dir_difference(&n->live, &n->durable);
			rc = dir_copy(&copy, &n->durable);
			if (rc == 0) {
				dir_clear(&n->live);
				n->live = copy;
			}
		} else if (!n->mark) {
			/* Gone with the power: tables emptied (counts are rebuilt below), object removed. */
			if (!n->gone)
				fs->stats.nodes_dropped++;
			n->gone = true;
			dir_clear(&n->live);
			dir_clear(&n->durable);
			if (S_ISREG(n->mode)) {
				char name[32];

				object_name(name, sizeof(name), n->ino);
				if (unlinkat(fs->backing_fd, name, 0) != 0 && errno != ENOENT)
					rc = -errno;
			}
			undo_clear(n);
			n->size = n->durable_size = 0;
		}
	}
	if (rc)
		return rc;
	/* Every directory's live table is its durable one now: no change is pending anywhere. */
	for (uint64_t i = 0; i < fs->next_ino; i++) {
		struct pc_node *n = fs->nodes[i];

		if (n) {
			changes_clear(fs, n, false);
			n->live_links = n->durable_links = n->change_refs = 0;
		}
	}
	for (uint64_t i = 0; i < fs->next_ino; i++) {
		struct pc_node *d = fs->nodes[i];

		if (!d || !d->mark)
			continue;
		for (size_t j = 0; j < d->durable.n; j++) {
			struct pc_node *t = fs->nodes[d->durable.v[j].ino];

			t->live_links++;
			t->durable_links++;
		}
	}
	for (uint64_t i = 0; i < fs->next_ino; i++)
		if (fs->nodes[i] && fs->nodes[i]->gone)
			pc_node_release_if_unused(fs, fs->nodes[i]);
	fs->epoch++;
	return 0;
}

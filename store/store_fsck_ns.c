/* store_fsck_ns.c - the namespace checks of store_fsck.
 *
 * Every directory entry points at an existing inode of its type whose recorded name, or one of whose
 * other names (`N` records, hard links), it is; every inode but the root (and orphans, nlink 0) is
 * named by its entries; a directory's link count is 2 + its subdirectories, anything else's the
 * number of its names. A symlink has its target; a target, an xattr or an orphan key belongs to an
 * inode that exists (of the right kind: an orphan key on a named inode would delete it at the next
 * mount). Point lookups and per-inode scans only, so memory stays flat.
 */
#include "store_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct ns_ctx {
	struct store *st;
	FILE *out;
	struct store_fsck_report *r;
	uint64_t last_parent;  /* last parent proven to be a directory */
};

static void ns_path(struct ns_ctx *c, uint64_t ino, char *buf, size_t size)
{
	if (store_inode_path(c->st, ino, buf, size) != 0)
		snprintf(buf, size, "inode %llu", (unsigned long long)ino);
}

static int ns_check_dirent(uint64_t parent, const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct ns_ctx *c = arg;
	char path[PATH_MAX];
	struct meta_inode in;
	int rc;

	if (parent != c->last_parent) {
		rc = meta_get_inode(c->st->meta, parent, &in);
		if (rc && rc != -ENOENT)
			return rc;
		if (rc == -ENOENT || !S_ISDIR(in.mode)) {
			fprintf(c->out, "entry \"%s\" in inode %llu, which is not a directory\n", name,
				(unsigned long long)parent);
			c->r->namespace_errors++;
			return 0;
		}
		c->last_parent = parent;
	}
	rc = meta_get_inode(c->st->meta, ino, &in);
	if (rc && rc != -ENOENT)
		return rc;
	ns_path(c, parent, path, sizeof(path));
	if (rc == -ENOENT) {
		fprintf(c->out, "dangling entry %s/%s: inode %llu does not exist\n", path, name,
			(unsigned long long)ino);
		c->r->namespace_errors++;
	} else if ((in.parent != parent || strcmp(in.name, name) != 0) &&
		   (S_ISDIR(in.mode) || meta_get_link(c->st->meta, ino, parent, name) != 0)) {
		fprintf(c->out, "entry %s/%s names inode %llu, which says it is \"%s\" in inode %llu\n", path,
			name, (unsigned long long)ino, in.name, (unsigned long long)in.parent);
		c->r->namespace_errors++;
	} else if ((in.mode & S_IFMT) != (mode & S_IFMT)) {
		fprintf(c->out, "entry %s/%s has the wrong file type\n", path, name);
		c->r->namespace_errors++;
	}
	return 0;
}

static int ns_count_subdir(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	(void)name, (void)ino;
	if (S_ISDIR(mode))
		(*(uint64_t *)arg)++;
	return 0;
}

struct ns_links {
	struct ns_ctx *c;
	const struct meta_inode *in;
	uint64_t n;
};

static int ns_check_link(uint64_t parent, const char *name, void *arg)
{
	struct ns_links *l = arg;
	uint64_t ino;
	uint32_t mode;
	int rc = meta_get_dirent(l->c->st->meta, parent, name, &ino, &mode);

	if (rc && rc != -ENOENT)
		return rc;
	l->n++;
	if (rc == -ENOENT || ino != l->in->ino) {
		fprintf(l->c->out, "inode %llu has a link record for \"%s\" in inode %llu without that entry\n",
			(unsigned long long)l->in->ino, name, (unsigned long long)parent);
		l->c->r->namespace_errors++;
	}
	return 0;
}

static int ns_check_inode(const struct meta_inode *in, void *arg)
{
	struct ns_ctx *c = arg;
	char path[PATH_MAX];
	uint64_t ino, subdirs = 0;
	uint32_t mode;
	int rc;

	c->r->inodes++;
	if (S_ISLNK(in->mode)) {
		char target[PATH_MAX + 1];
		rc = meta_get_symlink(c->st->meta, in->ino, target, sizeof(target));
		if (rc == -ENOENT) {
			fprintf(c->out, "symlink inode %llu (\"%s\" in inode %llu) has no target\n",
				(unsigned long long)in->ino, in->name, (unsigned long long)in->parent);
			c->r->namespace_errors++;
		} else if (rc < 0) {
			return rc;
		}
	}
	if (in->ino == META_ROOT_INO) {
		if (!S_ISDIR(in->mode)) {
			fprintf(c->out, "the root inode is not a directory\n");
			c->r->namespace_errors++;
			return 0;
		}
	} else if (in->nlink == 0) {
		return 0;  /* unlinked while open: an orphan, deleted at the next mount */
	} else {
		rc = meta_get_dirent(c->st->meta, in->parent, in->name, &ino, &mode);
		if (rc && rc != -ENOENT)
			return rc;
		if (rc == -ENOENT || ino != in->ino) {
			fprintf(c->out, "inode %llu (\"%s\" in inode %llu) has no directory entry\n",
				(unsigned long long)in->ino, in->name, (unsigned long long)in->parent);
			c->r->namespace_errors++;
			return 0;
		}
	}
	if (S_ISDIR(in->mode)) {
		rc = meta_list_dir(c->st->meta, in->ino, NULL, ns_count_subdir, &subdirs);
		if (rc)
			return rc;
		if (in->nlink != 2 + subdirs) {
			ns_path(c, in->ino, path, sizeof(path));
			fprintf(c->out, "directory %s has link count %u, expected %llu\n", path, in->nlink,
				(unsigned long long)(2 + subdirs));
			c->r->namespace_errors++;
		}
	}
	struct ns_links l = { .c = c, .in = in };
	rc = meta_list_links(c->st->meta, in->ino, ns_check_link, &l);
	if (rc)
		return rc;
	if (S_ISDIR(in->mode) && l.n > 0) {
		ns_path(c, in->ino, path, sizeof(path));
		fprintf(c->out, "directory %s has hard link records\n", path);
		c->r->namespace_errors++;
	} else if (!S_ISDIR(in->mode) && in->nlink != 1 + l.n) {
		ns_path(c, in->ino, path, sizeof(path));
		fprintf(c->out, "%s has link count %u, expected %llu (its names)\n", path, in->nlink,
			(unsigned long long)(1 + l.n));
		c->r->namespace_errors++;
	}
	return 0;
}

/* The inode that owns a record of one kind: it must exist, be a symlink for a target, and have no
 * names for an orphan key. */
enum ns_kind { NS_SYMLINK, NS_XATTRS, NS_ORPHAN };

struct ns_owned {
	struct ns_ctx *c;
	enum ns_kind kind;
};

static int ns_check_owner(uint64_t ino, void *arg)
{
	static const char *const what[] = { "a symlink target", "xattrs", "an orphan key" };
	struct ns_owned *o = arg;
	struct meta_inode in;
	int rc = meta_get_inode(o->c->st->meta, ino, &in);

	if (rc && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT)
		fprintf(o->c->out, "%s of inode %llu, which does not exist\n", what[o->kind],
			(unsigned long long)ino);
	else if (o->kind == NS_SYMLINK && !S_ISLNK(in.mode))
		fprintf(o->c->out, "%s of inode %llu, which is not a symlink\n", what[o->kind],
			(unsigned long long)ino);
	else if (o->kind == NS_ORPHAN && in.nlink != 0)
		fprintf(o->c->out, "%s of inode %llu, whose link count is %u: the next mount would delete it\n",
			what[o->kind], (unsigned long long)ino, in.nlink);
	else
		return 0;
	o->c->r->namespace_errors++;
	return 0;
}

int store_fsck_namespace(struct store *st, FILE *out, struct store_fsck_report *r)
{
	struct ns_ctx c = { .st = st, .out = out, .r = r, .last_parent = 0 };
	struct meta_inode root;
	int rc;

	rc = meta_get_inode(st->meta, META_ROOT_INO, &root);
	if (rc == -ENOENT) {
		fprintf(out, "the root directory inode is missing\n");
		r->namespace_errors++;
	} else if (rc) {
		return rc;
	}
	rc = meta_foreach_dirent(st->meta, ns_check_dirent, &c);
	if (rc)
		return rc;
	rc = meta_foreach_inode(st->meta, ns_check_inode, &c);
	if (rc)
		return rc;
	struct ns_owned o = { .c = &c, .kind = NS_SYMLINK };
	rc = meta_foreach_symlink_owner(st->meta, ns_check_owner, &o);
	if (rc)
		return rc;
	o.kind = NS_XATTRS;
	rc = meta_foreach_xattr_owner(st->meta, ns_check_owner, &o);
	if (rc)
		return rc;
	o.kind = NS_ORPHAN;
	return meta_foreach_orphan(st->meta, ns_check_owner, &o);
}

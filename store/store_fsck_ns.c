/* store_fsck_ns.c - the namespace checks of store_fsck.
 *
 * Every directory entry points at an existing inode whose parent, name and type agree with it;
 * every inode but the root (and orphans, nlink 0) is named by its entry; a directory's link count
 * is 2 + its subdirectories, a file's or symlink's is 1. Point lookups only, so memory stays flat.
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
	} else if (in.parent != parent || strcmp(in.name, name) != 0) {
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

static int ns_check_inode(const struct meta_inode *in, void *arg)
{
	struct ns_ctx *c = arg;
	char path[PATH_MAX];
	uint64_t ino, subdirs = 0;
	uint32_t mode;
	int rc;

	c->r->inodes++;
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
	} else if (in->nlink != 1) {
		ns_path(c, in->ino, path, sizeof(path));
		fprintf(c->out, "%s has link count %u, expected 1\n", path, in->nlink);
		c->r->namespace_errors++;
	}
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
	return meta_foreach_inode(st->meta, ns_check_inode, &c);
}

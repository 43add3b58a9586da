/* setid.c - which set-user-ID and set-group-ID bits a change of a file's content drops, decided as
 * Linux decides it for a local file system (should_remove_suid and setattr_should_drop_sgid): a
 * caller without CAP_FSETID loses S_ISUID, and S_ISGID when the file is group-executable or the
 * caller is not in the file's group; a caller with CAP_FSETID (root, as a rule) keeps both.
 *
 * The kernel does this itself for truncate, ftruncate and chown (the cleared mode arrives in the
 * same setattr); it does not for direct-I/O writes, reference writes and open(O_TRUNC), which is
 * where pecfs asks. Only files with a set-id bit pay for the look at /proc.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ctx.h"

#define CAP_FSETID_BIT 4

/* True if the calling thread has CAP_FSETID in its effective set. Unknown (the caller is gone, or
 * a page written back with no caller to speak of) reads as no. */
static bool caller_has_fsetid(pid_t pid)
{
	char path[64], line[256];
	bool has = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = pid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			has = caps & (1ull << CAP_FSETID_BIT);
			break;
		}
	}
	fclose(f);
	return has;
}

static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	gid_t groups[64];

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	int n = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])), groups);
	for (int i = 0; i < n && i < (int)(sizeof(groups) / sizeof(groups[0])); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

mode_t fs_setid_to_drop(fuse_req_t req, const struct meta_inode *mi)
{
	mode_t drop = 0;

	if (!S_ISREG(mi->mode) || !(mi->mode & (S_ISUID | S_ISGID)))
		return 0;
	if (caller_has_fsetid(fuse_req_ctx(req)->pid))
		return 0;
	if (mi->mode & S_ISUID)
		drop |= S_ISUID;
	if ((mi->mode & S_ISGID) && ((mi->mode & S_IXGRP) || !caller_in_group(req, mi->gid)))
		drop |= S_ISGID;
	return drop;
}

void fs_setid_drop(struct fs_ctx *ctx, struct fs_inode *ind, mode_t drop)
{
	if (!drop)
		return;
	pthread_mutex_lock(&ind->lock);
	ind->mi.mode &= ~drop;
	ind->meta_dirty = true;
	pthread_mutex_unlock(&ind->lock);
	/* The kernel keeps the mode it cached; the write that changed it did not tell it. */
	fuse_lowlevel_notify_inval_inode(ctx->se, ind->ino, -1, 0);
}

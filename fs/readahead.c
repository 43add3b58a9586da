/* readahead.c - the kernel's read-ahead window for the mount.
 *
 * FUSE caps a mount's read-ahead at the smaller of what the file system asks for in INIT and the
 * kernel's default of 128 KiB, so a sequential reader of a sealed checkpoint (a restart) gets
 * 128 KiB requests in a shallow pipeline. Measured here, a 4 MiB window reads a 2 GiB sealed file
 * 1.3-1.4x faster, as it does for any FUSE file system. The only way to widen it is the mount's
 * backing-device setting, /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, which root may write. The device
 * number comes from /proc/self/mountinfo: a stat of the mount point would ask this very daemon,
 * which is not serving requests yet (so is the caller's realpath of it, made before mounting). It is
 * set before the loop answers the kernel's INIT, whose reply's max_readahead the kernel applies as a
 * cap on this setting (fs_op_init asks for all of it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"

/* mountinfo escapes space, tab, newline and backslash in paths as \ooo: undo it in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; w++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w = *r++;
		}
	}
	*w = '\0';
}

/* The device number ("MAJOR:MINOR") of the last mount at mountpoint (an absolute path). */
static int mount_device(const char *mountpoint, char *dev, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char id[32], mp[4096];
		/* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ... */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", id, mp) != 2)
			continue;
		unescape(mp);
		if (strcmp(mp, mountpoint) == 0 && strlen(id) < size) {
			strcpy(dev, id);
			rc = 0;  /* keep looking: a later line is a mount over this one */
		}
	}
	fclose(f);
	return rc;
}

void fs_set_read_ahead(const char *mountpoint, uint64_t bytes)
{
	char dev[32], path[96], val[32];

	if (bytes == 0)
		return;  /* the kernel's own */
	if (mount_device(mountpoint, dev, sizeof(dev)) < 0) {
		pecfs_log_warn("read-ahead: cannot find the mount of %s; the kernel's 128 KiB stays", mountpoint);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	int n = snprintf(val, sizeof(val), "%llu", (unsigned long long)(bytes / 1024));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)n) != n) {
		pecfs_log_warn("read-ahead: cannot set %s to %s KiB (%s); the kernel's 128 KiB stays", path, val,
			       strerror(errno));
	} else {
		pecfs_log_debug("read-ahead of %s set to %s KiB", mountpoint, val);
	}
	if (fd >= 0)
		close(fd);
}

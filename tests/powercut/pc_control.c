/* pc_control.c - the power switch: a thread that serves cut, down, restore and stats on a Unix
 * socket, one command per connection, so a test can cut the power at the instant it chooses and
 * know, when the answer comes, that no operation after that instant took effect.
 */
#include "pc_control.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void stats_line(const struct pc_fs *fs, char *buf, size_t size)
{
	const struct pc_stats *s = &fs->stats;

	snprintf(buf, size,
		 "file_syncs=%llu dir_syncs=%llu cuts=%llu files_reverted=%llu bytes_undone=%llu "
		 "names_reverted=%llu nodes_dropped=%llu names_kept=%llu bytes_kept=%llu",
		 (unsigned long long)s->file_syncs, (unsigned long long)s->dir_syncs,
		 (unsigned long long)s->cuts, (unsigned long long)s->files_reverted,
		 (unsigned long long)s->bytes_undone, (unsigned long long)s->names_reverted,
		 (unsigned long long)s->nodes_dropped, (unsigned long long)s->names_kept,
		 (unsigned long long)s->bytes_kept);
}

/* Carries out one command; writes the answer line (without newline) into reply. */
static void control_command(struct pc_fs *fs, const char *cmd, char *reply, size_t size)
{
	char stats[512];
	unsigned long long seed = 0;
	double keep = 0;
	int rc, used = 0;

	/* "restore keep=F seed=S": some unsynced changes survive (pc_fs_restore). */
	if (strncmp(cmd, "restore ", 8) == 0) {
		if (sscanf(cmd, "restore keep=%lf seed=%llu%n", &keep, &seed, &used) != 2 || cmd[used] ||
		    !(keep >= 0 && keep <= 1)) {
			snprintf(reply, size, "error: restore takes keep=F (0 to 1) seed=N");
			return;
		}
		cmd = "restore";
	}
	pthread_mutex_lock(&fs->lock);
	if (strcmp(cmd, "cut") == 0) {
		/* Holding the lock means no operation is half done: the cut falls between two. */
		if (fs->power == PC_ON)
			fs->stats.cuts++;
		if (fs->power != PC_DOWN)
			fs->power = PC_CUT;
		snprintf(reply, size, "ok");
	} else if (strcmp(cmd, "down") == 0) {
		fs->power = PC_DOWN;
		pthread_cond_broadcast(&fs->power_changed);
		snprintf(reply, size, "ok");
	} else if (strcmp(cmd, "restore") == 0) {
		if (fs->power == PC_ON) {
			snprintf(reply, size, "error: the power is on (cut first)");
		} else {
			/* Operations still waiting for power must fail before anything changes. */
			fs->power = PC_DOWN;
			pthread_cond_broadcast(&fs->power_changed);
			while (fs->waiting > 0)
				pthread_cond_wait(&fs->power_changed, &fs->lock);
			rc = pc_fs_restore(fs, keep, seed);
			if (rc == 0) {
				fs->power = PC_ON;
				stats_line(fs, stats, sizeof(stats));
				snprintf(reply, size, "ok %s", stats);
			} else {
				snprintf(reply, size, "error: restore failed: %s", strerror(-rc));
			}
			pthread_cond_broadcast(&fs->power_changed);
		}
	} else if (strcmp(cmd, "stats") == 0) {
		stats_line(fs, stats, sizeof(stats));
		snprintf(reply, size, "ok %s", stats);
	} else {
		snprintf(reply, size, "error: unknown command (cut, down, restore [keep=F seed=N], stats)");
	}
	pthread_mutex_unlock(&fs->lock);
}

static void *control_thread(void *arg)
{
	struct pc_control *c = arg;

	for (;;) {
		char cmd[64], reply[640];
		ssize_t n;
		size_t len;
		int conn = accept(c->fd, NULL, NULL);

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;  /* shut down by pc_control_stop */
		}
		n = read(conn, cmd, sizeof(cmd) - 1);
		if (n > 0) {
			cmd[n] = '\0';
			cmd[strcspn(cmd, "\r\n")] = '\0';
			control_command(c->fs, cmd, reply, sizeof(reply) - 1);
			len = strlen(reply);
			reply[len++] = '\n';
			if (write(conn, reply, len) != (ssize_t)len)
				fprintf(stderr, "pecfs-powercut: cannot answer %s: %s\n", cmd, strerror(errno));
		}
		close(conn);
	}
	return NULL;
}

int pc_control_start(struct pc_control *c, struct pc_fs *fs, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int rc;

	c->fd = -1;
	c->fs = fs;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "pecfs-powercut: control socket path too long: %s\n", path);
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto out_err;
	unlink(path);
	if (bind(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(c->fd, 4) != 0)
		goto out_err;
	rc = pthread_create(&c->thread, NULL, control_thread, c);
	if (rc) {
		errno = rc;
		goto out_err;
	}
	return 0;

out_err:
	fprintf(stderr, "pecfs-powercut: control socket %s: %s\n", path, strerror(errno));
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return -1;
}

void pc_control_stop(struct pc_control *c)
{
	if (c->fd < 0)
		return;
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->fd);
	unlink(c->path);
	c->fd = -1;
}

/* ctl.c - the control socket: the daemon's listener thread, the command runner, the client.
 *
 * A data folder path may be longer than sun_path (108 bytes); the socket is then reached through the
 * folder's descriptor as /proc/self/fd/N/ctl.sock. gc and fsck run one at a time, each on a thread
 * of its own (each scans the whole store: two at once would only make both slower); "ping" is
 * answered by the listener itself, so a liveness probe gets its answer while a long gc runs.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

#define CTL_REQUEST_MAX 64
#define CTL_RECV_TIMEOUT_S 5
#define CTL_SEND_TIMEOUT_S 60

struct ctl_server {
	struct store *st;
	int dir_fd;        /* the data folder, for a socket path of any length */
	int listen_fd;
	int stop_pipe[2];  /* written by ctl_server_stop to wake the thread */
	pthread_t thread;
	pthread_mutex_t run_lock;  /* held by the request running a command */
	pthread_mutex_t lock;
	pthread_cond_t idle;       /* workers dropped to 0 */
	unsigned workers;          /* protected by lock: request threads not yet finished */
};

struct ctl_job {
	struct ctl_server *cs;
	int fd;
	char request[CTL_REQUEST_MAX];
};

/* The lines of a text report (one finding each) as a JSON array, but its "fsck: ..." summary. */
static json_t *ctl_lines(const char *text, size_t len)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - text - i) : len - i;
		if (n > 0 && strncmp(text + i, "fsck: ", 6) != 0)
			json_array_append_new(a, json_stringn(text + i, n));
		i += n + 1;
	}
	return a;
}

/* o as one line of out, and frees it. */
static int ctl_json_out(json_t *o, FILE *out)
{
	int rc = o && json_dumpf(o, out, JSON_COMPACT) == 0 ? 0 : -ENOMEM;

	fputc('\n', out);
	json_decref(o);
	return rc;
}

static int ctl_fsck(struct store *st, FILE *out, bool as_json, const struct ctl_progress *progress)
{
	struct store_fsck_report fr;
	char *text = NULL;
	size_t len = 0;
	FILE *lines = as_json ? open_memstream(&text, &len) : out;
	int rc;

	if (!lines)
		return -ENOMEM;
	rc = store_fsck_progress(st, lines, &fr, progress ? progress->fn : NULL, progress ? progress->ctx : NULL);
	if (!as_json)
		return rc < 0 ? rc : fr.problems == 0 ? 0 : 1;
	fclose(lines);
	if (rc == 0) {
		/* the findings, without the summary line that ends the text report */
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "check", "local",
				      "data_dir", store_data_dir(st), "inodes", (json_int_t)fr.inodes, "extents",
				      (json_int_t)fr.extents, "chunks", (json_int_t)fr.chunks, "corrupt_chunks",
				      (json_int_t)fr.corrupt_chunks, "missing_chunks", (json_int_t)fr.missing_chunks,
				      "namespace_errors", (json_int_t)fr.namespace_errors, "extent_errors",
				      (json_int_t)fr.extent_errors, "unreferenced_chunks",
				      (json_int_t)fr.unreferenced_chunks, "problems", (json_int_t)fr.problems,
				      "report", ctl_lines(text, len));
		rc = ctl_json_out(o, out);
	}
	free(text);
	return rc < 0 ? rc : fr.problems == 0 ? 0 : 1;
}

/* Server side of a client's progress: "progress DONE TOTAL" lines between the report's. */
static void ctl_progress_line(void *ctx, uint64_t done, uint64_t total)
{
	FILE *out = ctx;

	fprintf(out, "progress %llu %llu\n", (unsigned long long)done, (unsigned long long)total);
	fflush(out);
}

int ctl_execute(struct store *st, const char *cmd, FILE *out, const struct ctl_progress *progress)
{
	struct store_gc_report gr;
	int rc;

	/* "fsck" and "gc" with the words "json" and "progress" after them, in that order */
	if (strncmp(cmd, "fsck", 4) == 0 && (!strcmp(cmd + 4, "") || !strcmp(cmd + 4, " json") ||
					     !strcmp(cmd + 4, " progress") || !strcmp(cmd + 4, " json progress")))
		return ctl_fsck(st, out, strstr(cmd, "json") != NULL, progress);
	if (strcmp(cmd, "ping") == 0) {
		fprintf(out, "serving %s\n", store_data_dir(st));
		return 0;
	}
	if (strncmp(cmd, "gc", 2) == 0 && (!strcmp(cmd + 2, "") || !strcmp(cmd + 2, " json") ||
					   !strcmp(cmd + 2, " progress") || !strcmp(cmd + 2, " json progress"))) {
		rc = store_gc_progress(st, &gr, progress ? progress->fn : NULL, progress ? progress->ctx : NULL);
		if (rc < 0)
			return rc;
		if (strstr(cmd, "json"))
			return ctl_json_out(json_pack("{s:s, s:I, s:I, s:I, s:I}", "data_dir", store_data_dir(st),
						      "chunks_removed", (json_int_t)gr.chunks_removed, "bytes_removed",
						      (json_int_t)gr.bytes_removed, "files_removed",
						      (json_int_t)gr.files_removed, "chunks_kept", (json_int_t)gr.chunks_kept),
					    out);
		fprintf(out, "gc: removed %llu unreferenced chunks (%llu bytes, %.1f MiB) and %llu stray chunk files; "
			"%llu chunks kept\n",
			(unsigned long long)gr.chunks_removed, (unsigned long long)gr.bytes_removed,
			gr.bytes_removed / 1048576.0, (unsigned long long)gr.files_removed,
			(unsigned long long)gr.chunks_kept);
		return 0;
	}
	return -EINVAL;
}

/* Fills sa with the socket's address: the plain path when it fits, else via /proc/self/fd/dir_fd. */
static int ctl_address(const char *data_dir, int dir_fd, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", data_dir, CTL_SOCKET_NAME);
	if (n > 0 && (size_t)n < sizeof(sa->sun_path))
		return 0;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dir_fd, CTL_SOCKET_NAME);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -ENAMETOOLONG;
}

/* Reads one request line (without its newline) from fd; -EPROTO if it is not one. */
static int ctl_read_request(int fd, char *buf, size_t size)
{
	size_t used = 0;
	ssize_t n;
	char *nl;

	while (used < size - 1) {
		n = recv(fd, buf + used, size - 1 - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPROTO;
		used += (size_t)n;
		buf[used] = '\0';
		nl = strchr(buf, '\n');
		if (nl != NULL) {
			*nl = '\0';
			return 0;
		}
	}
	return -EPROTO;
}

/* Runs one request and answers it on fd (which the caller closes). */
static void ctl_answer(struct ctl_server *cs, int fd, const char *request)
{
	FILE *out;
	int rc, out_fd;

	out_fd = dup(fd);
	out = out_fd < 0 ? NULL : fdopen(out_fd, "w");
	if (out == NULL) {
		if (out_fd >= 0)
			close(out_fd);
		return;
	}
	if (strcmp(request, "ping") != 0)
		pecfs_log_info("control request '%s'", request);
	/* a client that asked for progress gets it as lines of the reply */
	struct ctl_progress lines = { ctl_progress_line, out };
	rc = ctl_execute(cs->st, request, out, strstr(request, "progress") ? &lines : NULL);
	if (rc == -EINVAL)
		fprintf(out, "error %d unknown request '%s' (expected fsck, gc or ping)\n", EINVAL, request);
	else if (rc < 0)
		fprintf(out, "error %d %s failed: %s\n", -rc, request, strerror(-rc));
	else
		fprintf(out, "ok %d\n", rc);
	if (fclose(out) != 0)
		pecfs_log_warn("control request '%s': the client went away before the reply", request);
}

static void *ctl_job_main(void *arg)
{
	struct ctl_job *job = arg;
	struct ctl_server *cs = job->cs;

	pthread_mutex_lock(&cs->run_lock);
	ctl_answer(cs, job->fd, job->request);
	pthread_mutex_unlock(&cs->run_lock);
	close(job->fd);
	free(job);
	pthread_mutex_lock(&cs->lock);
	if (--cs->workers == 0)
		pthread_cond_broadcast(&cs->idle);
	pthread_mutex_unlock(&cs->lock);
	return NULL;
}

/* Reads the request on fd; answers a ping here, hands anything else to a thread. Takes fd. */
static void ctl_serve_client(struct ctl_server *cs, int fd)
{
	struct timeval rcv = { .tv_sec = CTL_RECV_TIMEOUT_S }, snd = { .tv_sec = CTL_SEND_TIMEOUT_S };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct ctl_job *job = NULL;
	pthread_attr_t attr;
	pthread_t t;

	/* The socket's mode already keeps others out; checking the peer too costs nothing. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid()))
		goto out_close;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
	job = calloc(1, sizeof(*job));
	if (!job || ctl_read_request(fd, job->request, sizeof(job->request)) < 0)
		goto out_close;
	if (strcmp(job->request, "ping") == 0) {
		ctl_answer(cs, fd, job->request);
		goto out_close;
	}
	job->cs = cs;
	job->fd = fd;
	pthread_mutex_lock(&cs->lock);
	cs->workers++;
	pthread_mutex_unlock(&cs->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, ctl_job_main, job);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return;
	pthread_mutex_lock(&cs->lock);
	cs->workers--;
	pthread_mutex_unlock(&cs->lock);
	pecfs_log_error("control request '%s': cannot start a thread: %s", job->request, strerror(rc));
out_close:
	free(job);
	close(fd);
}

static void *ctl_thread(void *arg)
{
	struct ctl_server *cs = arg;
	struct pollfd pfd[2] = {
		{ .fd = cs->listen_fd, .events = POLLIN },
		{ .fd = cs->stop_pipe[0], .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pecfs_log_error("control socket: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if ((pfd[0].revents & POLLIN) == 0)
			continue;
		fd = accept4(cs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		ctl_serve_client(cs, fd);
	}
	return NULL;
}

int ctl_server_start(struct store *st, struct ctl_server **out)
{
	const char *data_dir = store_data_dir(st);
	struct ctl_server *cs;
	struct sockaddr_un sa;
	int rc;

	cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return -ENOMEM;
	cs->st = st;
	pthread_mutex_init(&cs->run_lock, NULL);
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->idle, NULL);
	cs->listen_fd = cs->stop_pipe[0] = cs->stop_pipe[1] = -1;
	cs->dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->dir_fd < 0)
		goto out_errno;
	rc = ctl_address(data_dir, cs->dir_fd, &sa);
	if (rc < 0)
		goto out_free;
	if (unlinkat(cs->dir_fd, CTL_SOCKET_NAME, 0) < 0 && errno != ENOENT)
		goto out_errno;
	cs->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cs->listen_fd < 0 || bind(cs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out_errno;
	/* Restrict before listen(): until then no one can connect, so there is no window. */
	if (fchmodat(cs->dir_fd, CTL_SOCKET_NAME, 0600, 0) < 0 || listen(cs->listen_fd, 4) < 0 ||
	    pipe2(cs->stop_pipe, O_CLOEXEC) < 0)
		goto out_errno;
	rc = pthread_create(&cs->thread, NULL, ctl_thread, cs);
	if (rc != 0) {
		rc = -rc;
		goto out_free;
	}
	*out = cs;
	return 0;

out_errno:
	rc = -errno;
out_free:
	pecfs_log_error("control socket %s/%s: %s", data_dir, CTL_SOCKET_NAME, strerror(-rc));
	if (cs->listen_fd >= 0) {
		close(cs->listen_fd);
		unlinkat(cs->dir_fd, CTL_SOCKET_NAME, 0);
	}
	if (cs->stop_pipe[0] >= 0) {
		close(cs->stop_pipe[0]);
		close(cs->stop_pipe[1]);
	}
	if (cs->dir_fd >= 0)
		close(cs->dir_fd);
	free(cs);
	return rc;
}

void ctl_server_stop(struct ctl_server *cs)
{
	if (cs == NULL)
		return;
	while (write(cs->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(cs->thread, NULL);
	pthread_mutex_lock(&cs->lock);
	while (cs->workers > 0)
		pthread_cond_wait(&cs->idle, &cs->lock);
	pthread_mutex_unlock(&cs->lock);
	unlinkat(cs->dir_fd, CTL_SOCKET_NAME, 0);
	close(cs->listen_fd);
	close(cs->stop_pipe[0]);
	close(cs->stop_pipe[1]);
	close(cs->dir_fd);
	free(cs);
}

/* Reads the reply: report lines go to out, the final line decides the exit code; -ECONNRESET when
 * the connection ends before it. */
static int ctl_read_reply(int fd, FILE *out, const struct ctl_progress *progress)
{
	FILE *in = fdopen(fd, "r");
	char *line = NULL, *msg;
	size_t cap = 0;
	ssize_t len;
	int rc = -1;

	if (in == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((len = getline(&line, &cap, in)) >= 0) {
		if (strncmp(line, "ok ", 3) == 0) {
			rc = atoi(line + 3);
			break;
		}
		if (strncmp(line, "progress ", 9) == 0) {
			unsigned long long done, total;
			if (progress && sscanf(line + 9, "%llu %llu", &done, &total) == 2)
				progress->fn(progress->ctx, done, total);
			continue;
		}
		if (strncmp(line, "error ", 6) == 0) {
			msg = strchr(line + 6, ' ');
			fprintf(stderr, "pecfs: %s", msg != NULL ? msg + 1 : line + 6);
			rc = 1;
			break;
		}
		fwrite(line, 1, (size_t)len, out);
	}
	if (rc < 0 && ferror(in) && (errno == EAGAIN || errno == EWOULDBLOCK))
		rc = -EAGAIN;       /* no answer within the caller's limit */
	else if (rc < 0)
		rc = -ECONNRESET;   /* the daemon hung up: it is exiting, or was killed */
	free(line);
	fclose(in);
	fflush(out);
	return rc;
}

int ctl_request(const char *data_dir, const char *cmd, FILE *out, const struct ctl_progress *progress)
{
	return ctl_request_timeout(data_dir, cmd, out, 0, progress);
}

int ctl_request_timeout(const char *data_dir, const char *cmd, FILE *out, unsigned timeout_ms,
			const struct ctl_progress *progress)
{
	struct sockaddr_un sa;
	char request[CTL_REQUEST_MAX];
	int dir_fd, fd = -1, rc, n;

	dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	rc = ctl_address(data_dir, dir_fd, &sa);
	if (rc < 0)
		goto out;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && timeout_ms) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	n = snprintf(request, sizeof(request), "%s\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(request)) {
		rc = -EINVAL;
		goto out;
	}
	errno = 0;
	if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n) {
		rc = errno != 0 ? -errno : -EIO;   /* a short send of a few bytes: the peer went away */
		goto out;
	}
	rc = ctl_read_reply(fd, out, progress);
	fd = -1;   /* closed by ctl_read_reply */
out:
	if (fd >= 0)
		close(fd);
	close(dir_fd);
	return rc;
}

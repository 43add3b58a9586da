/* metrics_http.c - the metrics-listen endpoint: GET /metrics answers the Prometheus text of
 * /.pec/metrics (metrics.c) over HTTP, from libmicrohttpd's own thread. It listens on one address,
 * "HOST:PORT" with HOST an IPv4 address or a bracketed IPv6 one ("127.0.0.1:9567", "[::1]:9567"):
 * a metrics port is not for the world, so there is no default of all interfaces. Anything but GET
 * (or HEAD) of /metrics gets 404 or 405.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "config.h"
#include "ctx.h"

struct metrics_http {
	struct MHD_Daemon *d;
	struct fs_ctx *ctx;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
			     size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_size, void **state)
{
	struct metrics_http *m = cls;
	char *body = NULL;
	size_t len = 0;

	(void)version;
	(void)upload_data;
	(void)upload_size;
	(void)state;
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found: try /metrics\n"), 24);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("GET only\n"), 9);
	int rc = pecgen_metrics(m->ctx, &body, &len);
	if (rc < 0) {
		char *msg = malloc(128);
		if (!msg)
			return MHD_NO;
		int n = snprintf(msg, 128, "metrics unavailable: %s\n", strerror(-rc));
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", msg, (size_t)n);
	}
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* "HOST:PORT" into sa; -EINVAL when it is not one. */
static int parse_listen(const char *listen, struct sockaddr_storage *sa, socklen_t *salen)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	char *end;

	if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host))
		return -EINVAL;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port == 0 || port > 65535)
		return -EINVAL;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	memset(sa, 0, sizeof(*sa));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		host[strlen(host) - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*salen = sizeof(*s6);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*salen = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

int metrics_http_validate(const char *listen)
{
	struct sockaddr_storage sa;
	socklen_t salen;

	return parse_listen(listen, &sa, &salen);
}

int metrics_http_start(struct fs_ctx *ctx, const char *listen, struct metrics_http **out)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	*out = NULL;
	if (!listen || !listen[0])
		return 0;
	if (parse_listen(listen, &sa, &salen) < 0)
		return -EINVAL;
	struct metrics_http *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctx = ctx;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				MHD_OPTION_END);
	if (!m->d) {
		int e = errno ? errno : EADDRINUSE;
		free(m);
		pecfs_log_error("metrics-listen %s: cannot listen: %s", listen, strerror(e));
		return -e;
	}
	pecfs_log_info("metrics at http://%s/metrics", listen);
	*out = m;
	return 0;
}

void metrics_http_stop(struct metrics_http *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}

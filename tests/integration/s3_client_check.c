/* s3_client_check.c - pecfs-s3check: runs the S3 client (store/s3/s3_client.h) from the command line, so
 * that tests/integration/test_s3_client.py can drive it against a real S3 server. One command per run;
 * on failure prints "error: MESSAGE" and exits with the errno (EEXIST = 17, EACCES = 13, ...). It always
 * ends with a "stats requests=N retries=N ..." line on stderr. Not installed; a test tool only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "s3_client.h"
#include "s3_creds.h"

struct check {
	struct s3_client *c;
	struct s3_result res;
	bool verbose;
};

static void check_log(void *ctx, enum s3_log_level level, const char *msg)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	struct check *k = ctx;

	if (k->verbose || level == S3_LOG_WARN)
		fprintf(stderr, "s3 %s: %s\n", names[level], msg);
}

static int fail(struct check *k, int rc)
{
	fprintf(stderr, "error: %s\n", k->res.message[0] ? k->res.message : strerror(-rc));
	return -rc;
}

static int read_file(const char *path, char **data, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 1 << 20, n = 0, got;
	char *buf = malloc(cap);

	if (!f || !buf) {
		free(buf);
		return -errno;
	}
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *p = realloc(buf, cap *= 2);

			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
	}
	if (f != stdin)
		fclose(f);
	*data = buf;
	*len = n;
	return 0;
}

static int cmd_put(struct check *k, int argc, char **argv)
{
	char *data;
	size_t len;
	int rc;

	if (argc < 2)
		return EINVAL;
	rc = read_file(argv[1], &data, &len);
	if (rc)
		return -rc;
	rc = s3_put(k->c, argv[0], data, len, NULL, argc > 2 && !strcmp(argv[2], "--if-absent") ? S3_PUT_IF_ABSENT : 0,
		    &k->res);
	free(data);
	return rc ? fail(k, rc) : 0;
}

static int cmd_get(struct check *k, int argc, char **argv)
{
	size_t got = 0, len;
	void *data = NULL;
	int rc;

	if (argc < 1)
		return EINVAL;
	if (argc >= 3) {
		len = strtoull(argv[2], NULL, 10);
		data = malloc(len ? len : 1);
		if (!data)
			return ENOMEM;
		rc = s3_get(k->c, argv[0], strtoull(argv[1], NULL, 10), len, data, &got, &k->res);
	} else {
		rc = s3_get_all(k->c, argv[0], (size_t)1 << 30, &data, &got, &k->res);
	}
	if (!rc)
		fwrite(data, 1, got, stdout);
	free(data);
	return rc ? fail(k, rc) : 0;
}

/* get-spans KEY OFF LEN...: one ranged GET laid out across spans of those lengths, each in a buffer
 * of its own with guard bytes after it; prints what the spans received, in order (got bytes). */
#define SPAN_GUARD 64
static int cmd_get_spans(struct check *k, int argc, char **argv)
{
	struct s3_span spans[16];
	size_t n = 0, got = 0;
	int rc = 0;

	if (argc < 3 || argc - 2 > 16)
		return EINVAL;
	for (int i = 2; i < argc; i++, n++) {
		size_t len = strtoull(argv[i], NULL, 10);
		spans[n] = (struct s3_span){ malloc(len + SPAN_GUARD), len };
		if (!spans[n].dst) {
			n++;
			rc = ENOMEM;
			break;
		}
		memset(spans[n].dst, 0xA5, len + SPAN_GUARD);
	}
	if (!rc) {
		rc = s3_get_spans(k->c, argv[0], strtoull(argv[1], NULL, 10), spans, n, &got, &k->res);
		rc = rc ? fail(k, rc) : 0;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *g = (const uint8_t *)spans[i].dst + spans[i].len;
		for (size_t j = 0; !rc && spans[i].dst && j < SPAN_GUARD; j++)
			if (g[j] != 0xA5) {
				fprintf(stderr, "error: span %zu written past its end\n", i);
				rc = EFAULT;
			}
		size_t out = got < spans[i].len ? got : spans[i].len;
		if (!rc)
			fwrite(spans[i].dst, 1, out, stdout);
		got -= out;
		free(spans[i].dst);
	}
	return rc;
}

static int cmd_head(struct check *k, int argc, char **argv)
{
	char etag[S3_ETAG_MAX];
	uint64_t size;
	int rc;

	if (argc < 1)
		return EINVAL;
	rc = s3_head(k->c, argv[0], &size, etag, &k->res);
	if (rc)
		return fail(k, rc);
	printf("size=%" PRIu64 " etag=%s\n", size, etag);
	return 0;
}

static int print_entry(void *ctx, const struct s3_object *o)
{
	(void)ctx;
	if (o->is_prefix)
		printf("PREFIX %s\n", o->key);
	else
		printf("%s %" PRIu64 "\n", o->key, o->size);
	return 0;
}

static int cmd_ls(struct check *k, int argc, char **argv)
{
	int rc = s3_list(k->c, argc > 0 ? argv[0] : "", argc > 2 ? argv[2] : NULL,
			 argc > 1 ? (unsigned)atoi(argv[1]) : 0, print_entry, NULL, &k->res);

	return rc ? fail(k, rc) : 0;
}

static int print_upload(void *ctx, const char *key, const char *upload_id)
{
	(void)ctx;
	printf("%s %s\n", key, upload_id);
	return 0;
}

static int cmd_uploads(struct check *k, int argc, char **argv)
{
	int rc = s3_mpu_list(k->c, argc > 0 ? argv[0] : "", print_upload, NULL, &k->res);

	return rc ? fail(k, rc) : 0;
}

static int cmd_mpu(struct check *k, int argc, char **argv)
{
	char *data;
	size_t len;
	int rc;

	if (argc < 4)
		return EINVAL;
	rc = read_file(argv[1], &data, &len);
	if (rc)
		return -rc;
	rc = s3_put_multipart(k->c, argv[0], data, len, strtoull(argv[2], NULL, 10), (unsigned)atoi(argv[3]),
			      &k->res);
	free(data);
	return rc ? fail(k, rc) : 0;
}

/* A multipart upload whose completion names a part that was never sent: the server refuses it, and
 * the upload is then aborted. Prints the completion's error; the test lists uploads afterwards. */
static int cmd_mpu_fail(struct check *k, int argc, char **argv)
{
	struct s3_part parts[2] = { { 1, "" }, { 2, "\"0123456789abcdef0123456789abcdef\"" } };
	size_t len = S3_PART_MIN;
	char *upload_id = NULL, *data;
	int rc, abort_rc;

	if (argc < 1)
		return EINVAL;
	data = calloc(1, len);
	if (!data)
		return ENOMEM;
	rc = s3_mpu_begin(k->c, argv[0], &upload_id, &k->res);
	if (!rc)
		rc = s3_mpu_put_part(k->c, argv[0], upload_id, 1, data, len, NULL, parts[0].etag, &k->res);
	if (!rc) {
		rc = s3_mpu_complete(k->c, argv[0], upload_id, parts, 2, &k->res);
		printf("complete: %d %s\n", rc, k->res.code);
		abort_rc = s3_mpu_abort(k->c, argv[0], upload_id, NULL);
		printf("abort: %d\n", abort_rc);
		rc = rc && !abort_rc ? 0 : (rc ? abort_rc : -EPROTO);
	}
	free(upload_id);
	free(data);
	return rc ? fail(k, rc) : 0;
}

struct fill_job {
	struct check *k;
	const char *prefix;
	unsigned n, next;
	int err;
	pthread_mutex_t lock;
};

static void *fill_worker(void *ud)
{
	struct fill_job *j = ud;

	for (;;) {
		char key[512], body[64];
		struct s3_result res;
		unsigned i;
		int rc;

		pthread_mutex_lock(&j->lock);
		i = j->err ? j->n : j->next++;
		pthread_mutex_unlock(&j->lock);
		if (i >= j->n)
			return NULL;
		snprintf(key, sizeof(key), "%s%05u", j->prefix, i);
		snprintf(body, sizeof(body), "object %u\n", i);
		rc = s3_put(j->k->c, key, body, strlen(body), NULL, 0, &res);
		if (rc) {
			pthread_mutex_lock(&j->lock);
			if (!j->err) {
				j->err = rc;
				j->k->res = res;
			}
			pthread_mutex_unlock(&j->lock);
		}
	}
}

/* Puts N small objects PREFIX00000.. from THREADS threads sharing the one client. */
static int cmd_fill(struct check *k, int argc, char **argv)
{
	struct fill_job j = { k, NULL, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER };
	pthread_t th[64];
	unsigned nth, t;

	if (argc < 3)
		return EINVAL;
	j.prefix = argv[0];
	j.n = (unsigned)atoi(argv[1]);
	nth = (unsigned)atoi(argv[2]);
	if (nth < 1 || nth > 64)
		return EINVAL;
	for (t = 0; t < nth; t++)
		if (pthread_create(&th[t], NULL, fill_worker, &j))
			break;
	nth = t;
	for (t = 0; t < nth; t++)
		pthread_join(th[t], NULL);
	return j.err ? fail(k, j.err) : 0;
}

/* Puts N objects of SIZE pseudo-random bytes, PAUSE_MS apart, then reads each back and compares:
 * run across a server outage, every call must get through by retrying. */
static int cmd_stress(struct check *k, int argc, char **argv)
{
	unsigned n, i, pause_ms;
	size_t size, got;
	char *buf, *back, key[256];
	int rc = 0;

	if (argc < 4)
		return EINVAL;
	n = (unsigned)atoi(argv[1]);
	size = strtoull(argv[2], NULL, 10);
	pause_ms = (unsigned)atoi(argv[3]);
	buf = malloc(size + 1);
	back = malloc(size + 1);
	if (!buf || !back) {
		free(buf);
		free(back);
		return ENOMEM;
	}
	for (i = 0; i < n && !rc; i++) {
		struct timespec ts = { pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L };

		for (size_t b = 0; b < size; b++)
			buf[b] = (char)(b * 31 + i * 7);
		snprintf(key, sizeof(key), "%s%05u", argv[0], i);
		rc = s3_put(k->c, key, buf, size, NULL, 0, &k->res);
		nanosleep(&ts, NULL);
	}
	for (i = 0; i < n && !rc; i++) {
		for (size_t b = 0; b < size; b++)
			buf[b] = (char)(b * 31 + i * 7);
		snprintf(key, sizeof(key), "%s%05u", argv[0], i);
		rc = s3_get(k->c, key, 0, size + 1, back, &got, &k->res);
		if (!rc && (got != size || memcmp(buf, back, size))) {
			snprintf(k->res.message, sizeof(k->res.message), "%s read back wrong (%zu bytes)", key, got);
			rc = -EIO;
		}
	}
	free(buf);
	free(back);
	return rc ? fail(k, rc) : 0;
}

static int cmd_mb(struct check *k)
{
	int rc = s3_bucket_create(k->c, &k->res);

	return rc ? fail(k, rc) : 0;
}

static int cmd_check(struct check *k)
{
	int rc = s3_bucket_check(k->c, &k->res);

	return rc ? fail(k, rc) : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pecfs-s3check [options] COMMAND [ARGS]\n"
		"options: --endpoint URL --bucket B --region R --path-style|--virtual-hosted --ca-file F\n"
		"         --creds-file F --profile P --attempts N --retry-base-ms N --retry-max-ms N\n"
		"         --connections N --connect-timeout-ms N --low-speed-time S --clock-offset S -v\n"
		"         (PECS3_ENDPOINT, PECS3_BUCKET, PECS3_REGION; credentials from AWS_* or --creds-file)\n"
		"commands: mb | check | put KEY FILE [--if-absent] | get KEY [OFF LEN] | get-spans KEY OFF LEN... |\n"
		"          head KEY | rm KEY | ls [PREFIX [PAGE [DELIM]]] | mpu KEY FILE PARTSIZE PARALLEL | mpu-fail KEY |\n"
		"          uploads [PREFIX] | fill PREFIX N THREADS | stress PREFIX N SIZE PAUSE_MS\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' }, { "bucket", required_argument, NULL, 'b' },
		{ "region", required_argument, NULL, 'r' }, { "path-style", no_argument, NULL, 'P' },
		{ "virtual-hosted", no_argument, NULL, 'V' }, { "ca-file", required_argument, NULL, 'C' },
		{ "creds-file", required_argument, NULL, 'f' }, { "profile", required_argument, NULL, 'p' },
		{ "attempts", required_argument, NULL, 'a' }, { "retry-base-ms", required_argument, NULL, 'B' },
		{ "retry-max-ms", required_argument, NULL, 'M' }, { "connections", required_argument, NULL, 'n' },
		{ "connect-timeout-ms", required_argument, NULL, 'T' },
		{ "low-speed-time", required_argument, NULL, 'L' }, { "clock-offset", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct s3_client_config cfg = { 0 };
	struct s3_credentials creds = { 0 };
	struct s3_client_stats st;
	struct check k = { 0 };
	const char *creds_file = NULL, *profile = NULL, *cmd;
	char err[512];
	int opt, rc;

	cfg.endpoint = getenv("PECS3_ENDPOINT");
	cfg.bucket = getenv("PECS3_BUCKET");
	cfg.region = getenv("PECS3_REGION");
	while ((opt = getopt_long(argc, argv, "+v", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': cfg.endpoint = optarg; break;
		case 'b': cfg.bucket = optarg; break;
		case 'r': cfg.region = optarg; break;
		case 'P': cfg.addressing = S3_ADDRESSING_PATH; break;
		case 'V': cfg.addressing = S3_ADDRESSING_VIRTUAL; break;
		case 'C': cfg.ca_file = optarg; break;
		case 'f': creds_file = optarg; break;
		case 'p': profile = optarg; break;
		case 'a': cfg.max_attempts = (unsigned)atoi(optarg); break;
		case 'B': cfg.retry_base_ms = (unsigned)atoi(optarg); break;
		case 'M': cfg.retry_max_ms = (unsigned)atoi(optarg); break;
		case 'n': cfg.max_connections = (unsigned)atoi(optarg); break;
		case 'T': cfg.connect_timeout_ms = (unsigned)atoi(optarg); break;
		case 'L': cfg.low_speed_time_s = (unsigned)atoi(optarg); break;
		case 'O': cfg.clock_offset_s = atol(optarg); break;
		case 'v': k.verbose = true; break;
		default: usage(); return EINVAL;
		}
	}
	if (optind >= argc) {
		usage();
		return EINVAL;
	}
	rc = creds_file ? s3_creds_from_file(creds_file, profile, &creds, err, sizeof(err))
			: s3_creds_load(NULL, profile, &creds, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "error: %s\n", err);
		return -rc;
	}
	cfg.creds = &creds;
	cfg.log = check_log;
	cfg.log_ctx = &k;
	rc = s3_client_new(&cfg, &k.c, err, sizeof(err));
	s3_creds_clear(&creds);
	if (rc) {
		fprintf(stderr, "error: %s\n", err);
		return -rc;
	}
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	if (!strcmp(cmd, "mb"))
		rc = cmd_mb(&k);
	else if (!strcmp(cmd, "check"))
		rc = cmd_check(&k);
	else if (!strcmp(cmd, "put"))
		rc = cmd_put(&k, argc, argv);
	else if (!strcmp(cmd, "get"))
		rc = cmd_get(&k, argc, argv);
	else if (!strcmp(cmd, "get-spans"))
		rc = cmd_get_spans(&k, argc, argv);
	else if (!strcmp(cmd, "head"))
		rc = cmd_head(&k, argc, argv);
	else if (!strcmp(cmd, "rm"))
		rc = argc < 1 ? EINVAL : (s3_delete(k.c, argv[0], &k.res) ? fail(&k, -EIO) : 0);
	else if (!strcmp(cmd, "ls"))
		rc = cmd_ls(&k, argc, argv);
	else if (!strcmp(cmd, "uploads"))
		rc = cmd_uploads(&k, argc, argv);
	else if (!strcmp(cmd, "mpu"))
		rc = cmd_mpu(&k, argc, argv);
	else if (!strcmp(cmd, "mpu-fail"))
		rc = cmd_mpu_fail(&k, argc, argv);
	else if (!strcmp(cmd, "fill"))
		rc = cmd_fill(&k, argc, argv);
	else if (!strcmp(cmd, "stress"))
		rc = cmd_stress(&k, argc, argv);
	else {
		usage();
		rc = EINVAL;
	}
	fflush(stdout);
	s3_client_get_stats(k.c, &st);
	fprintf(stderr, "stats requests=%" PRIu64 " retries=%" PRIu64 " failures=%" PRIu64 " sent=%" PRIu64
		" received=%" PRIu64 " connects=%" PRIu64 " attempts=%u\n", st.requests, st.retries, st.failures,
		st.bytes_sent, st.bytes_received, st.connects, k.res.attempts);
	s3_client_free(k.c);
	return rc;
}

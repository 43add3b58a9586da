/* cli_ping.c - `pecfs ping DATA_DIR`: is the daemon serving DATA_DIR alive? It asks on the control
 * socket, where the daemon answers pings at once even while a gc or fsck runs, so a liveness probe
 * (Kubernetes, a monitoring script) tells a hung or dead daemon from a busy one.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

void cli_help_ping(FILE *out)
{
	fprintf(out,
		"usage: pecfs ping [--timeout DURATION] DATA_DIR\n"
		"\n"
		"Asks the daemon serving DATA_DIR whether it is alive, on its control socket.\n"
		"\n"
		"options:\n"
		"  --timeout DURATION   how long to wait for the answer, 1s to 1h (default 5s): 10s, 2m\n"
		"  -h, --help           show this help\n"
		"\n"
		"exit status: 0 the daemon answered, 1 it did not (none runs, or it is stuck), 2 bad usage.\n"
		"\n"
		"example (a Kubernetes livenessProbe):\n"
		"  pecfs ping --timeout 10s /var/lib/pecfs\n");
}

static int ping_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	(void)o;
	return cli_duration("--timeout", arg, 1000000000, 3600 * (int64_t)1000000000, ctx);
}

int cli_ping(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "timeout", 0, CLI_ARG, 0 } };
	int64_t timeout_ns = 5 * (int64_t)1000000000;
	struct timespec t0, t1;
	struct cli_args pos;
	int rc = cli_parse_args("ping", argc, argv, opts, 1, cli_help_ping, ping_opt, &timeout_ns, &pos);

	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	const char *data_dir = pos.argc == 1 ? pos.argv[0] : NULL;
	if (pos.argc > 1)
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs ping DATA_DIR)", pos.argv[1]);
	else if (!data_dir)
		rc = cli_error(CLI_USAGE, "missing DATA_DIR (usage: pecfs ping [--timeout D] DATA_DIR)");
	cli_args_free(&pos);
	if (rc != 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	FILE *devnull = fopen("/dev/null", "w");
	if (!devnull)
		return cli_error(CLI_FAILED, "/dev/null: %s", strerror(errno));
	rc = ctl_request_timeout(data_dir, "ping", devnull, (unsigned)(timeout_ns / 1000000), NULL);
	fclose(devnull);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (rc == 0) {
		printf("%s: alive, pid %ld, answered in %.1f ms\n", data_dir, (long)cli_lock_pid(data_dir), ms);
		return CLI_OK;
	}
	if (rc == -EAGAIN)
		return cli_error(CLI_FAILED, "%s: the daemon did not answer within the timeout (stuck?)", data_dir);
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return cli_error(CLI_FAILED, "%s: no daemon serves this data folder", data_dir);
	return cli_error(CLI_FAILED, "%s: %s", data_dir, rc > 0 ? "the daemon answered with an error" : strerror(-rc));
}

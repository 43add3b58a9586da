/* cli_args.c - one command-line parser for every subcommand: getopt_long (`--opt value` and
 * `--opt=value`, options anywhere among the arguments, `--` ends them), one message for each kind of
 * mistake, and one parse for whole numbers and durations everywhere (`--threads 8x` is an error).
 */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int cli_no_options(void *ctx, const struct cli_opt *o, const char *arg)
{
	(void)ctx;
	(void)o;
	(void)arg;
	return 0;
}

int cli_flag_option(void *ctx, const struct cli_opt *o, const char *arg)
{
	(void)o;
	(void)arg;
	*(bool *)ctx = true;
	return 0;
}

void cli_args_free(struct cli_args *a)
{
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}

int cli_parse_args(const char *cmd, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
		   void (*help)(FILE *), int (*handle)(void *ctx, const struct cli_opt *o, const char *arg),
		   void *ctx, struct cli_args *pos)
{
	/* getopt permutes its argv: work on a copy whose slot 0 is the command's name */
	char **v = calloc((size_t)argc + 2, sizeof(*v));
	struct option *lo = calloc(nopts + 2, sizeof(*lo));
	char *so = calloc(2 * nopts + 4, 1);
	int rc = 0, c;

	pos->argv = NULL;
	pos->argc = 0;
	if (!v || !lo || !so) {
		rc = cli_error(CLI_FAILED, "out of memory");
		goto out;
	}
	v[0] = (char *)cmd;
	memcpy(v + 1, argv, (size_t)argc * sizeof(*v));
	size_t ns = 0;
	so[ns++] = ':';  /* a missing value is ':', an unknown option '?' */
	so[ns++] = 'h';
	for (size_t i = 0; i < nopts; i++) {
		int kind = opts[i].has_arg == CLI_ARG ? required_argument
			   : opts[i].has_arg == CLI_OPT_ARG ? optional_argument : no_argument;
		lo[i] = (struct option){ opts[i].name, kind, NULL, (int)(256 + i) };
		if (opts[i].short_name) {
			so[ns++] = (char)opts[i].short_name;
			if (opts[i].has_arg == CLI_ARG)
				so[ns++] = ':';
		}
	}
	lo[nopts] = (struct option){ "help", no_argument, NULL, 'h' };
	optind = 0;  /* glibc: start over (a previous parse may have run) */
	opterr = 0;
	while ((c = getopt_long(argc + 1, v, so, lo, NULL)) != -1) {
		const struct cli_opt *o = NULL;
		if (c == 'h') {
			help(stdout);
			rc = -1;
			goto out;
		}
		if (c == '?' || c == ':') {
			const char *bad = v[optind - 1];
			if (c == ':')
				rc = cli_error(CLI_USAGE, "option %s needs a value (see pecfs %s --help)", bad, cmd);
			else if (optopt && optopt < 256)
				rc = cli_error(CLI_USAGE, "unknown option -%c (see pecfs %s --help)", optopt, cmd);
			else
				rc = cli_error(CLI_USAGE, "unknown option %s (see pecfs %s --help)", bad, cmd);
			goto out;
		}
		if (c >= 256)
			o = &opts[c - 256];
		else
			for (size_t i = 0; i < nopts && !o; i++)
				if (opts[i].short_name == c)
					o = &opts[i];
		rc = handle(ctx, o, optarg);
		if (rc != 0)
			goto out;
	}
	pos->argc = argc + 1 - optind;
	pos->argv = v;
	memmove(v, v + optind, (size_t)pos->argc * sizeof(*v));
	v[pos->argc] = NULL;
	v = NULL;
out:
	free(v);
	free(lo);
	free(so);
	return rc;
}

int cli_number(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	const char *p = text;

	if (*p == '\0')
		goto bad;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10)
			goto bad;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (n < min || n > max)
		goto bad;
	*out = n;
	return 0;
bad:
	return cli_error(CLI_USAGE, "%s: '%s' is not a whole number from %llu to %llu", opt, text,
			 (unsigned long long)min, (unsigned long long)max);
}

int cli_duration(const char *opt, const char *text, int64_t min_ns, int64_t max_ns, int64_t *out)
{
	int64_t ns = cli_parse_duration(text);

	if (ns < min_ns || ns > max_ns)
		return cli_error(CLI_USAGE, "%s: '%s' is not a duration like 90s, 30m, 2h or 1d%s", opt, text,
				 ns >= 0 ? " in the allowed range" : "");
	*out = ns;
	return 0;
}

json_t *cli_json_lines(const char *text, size_t len)
{
	json_t *a = json_array();

	for (size_t i = 0; a && text && i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - text - i) : len - i;
		if (n > 0)
			json_array_append_new(a, json_stringn(text + i, n));
		i += n + 1;
	}
	return a;
}

int cli_json_print(json_t *o)
{
	int rc = o && json_dumpf(o, stdout, JSON_COMPACT) == 0 ? CLI_OK : cli_error(CLI_FAILED, "out of memory");

	putchar('\n');
	fflush(stdout);
	json_decref(o);
	return rc;
}

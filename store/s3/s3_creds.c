/* s3_creds.c - credentials from the environment or an owner-only INI file (see s3_creds.h).
 * Lines of the file are never echoed into messages: they may hold a secret. */
#include "s3_creds.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void s3_wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3_creds_clear(struct s3_credentials *c)
{
	s3_wipe_free(c->access_key);
	s3_wipe_free(c->secret_key);
	s3_wipe_free(c->session_token);
	c->access_key = c->secret_key = c->session_token = NULL;
}

int s3_creds_copy(struct s3_credentials *dst, const struct s3_credentials *src)
{
	struct s3_credentials c = { 0 };

	c.access_key = src->access_key ? strdup(src->access_key) : NULL;
	c.secret_key = src->secret_key ? strdup(src->secret_key) : NULL;
	c.session_token = src->session_token ? strdup(src->session_token) : NULL;
	c.expires_ns = src->expires_ns;
	if ((src->access_key && !c.access_key) || (src->secret_key && !c.secret_key) ||
	    (src->session_token && !c.session_token)) {
		s3_creds_clear(&c);
		return -ENOMEM;
	}
	*dst = c;
	return 0;
}

int64_t s3_creds_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t t;

	if (!p)
		return -1;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	t = (int64_t)timegm(&tm);
	/* nanoseconds since the epoch fit an int64 from 1970 to 2262: a time outside is not one */
	if (t < 86400 || t > INT64_MAX / 1000000000 - 86400)
		return -1;
	if (*p == 'Z' && p[1] == '\0')
		return t * 1000000000;
	if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) && p[3] == ':' &&
	    isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && p[6] == '\0') {
		int off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		return (t - (*p == '+' ? off : -off)) * 1000000000;
	}
	return -1;
}

int s3_creds_from_env(struct s3_credentials *out)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN"), *exp = getenv("AWS_CREDENTIAL_EXPIRATION");
	struct s3_credentials src = { (char *)ak, (char *)sk, (char *)tok, 0 };

	if (!ak || !*ak || !sk || !*sk)
		return -ENOENT;
	if (tok && !*tok)
		src.session_token = NULL;
	if (exp && *exp && (src.expires_ns = s3_creds_parse_time(exp)) < 0)
		return -EINVAL;
	return s3_creds_copy(out, &src);
}

static char *s3_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* "[default]" and "[profile default]" (the config-file spelling) both name profile "default". */
static bool s3_section_is(char *line, const char *profile)
{
	char *end = strchr(line, ']'), *name;

	if (!end)
		return false;
	*end = '\0';
	name = s3_trim(line + 1);
	if (!strncmp(name, "profile", 7) && isspace((unsigned char)name[7]))
		name = s3_trim(name + 8);
	return !strcmp(name, profile);
}

static int s3_set_field(char **field, const char *value)
{
	char *v = strdup(value);

	if (!v)
		return -ENOMEM;
	s3_wipe_free(*field);
	*field = v;
	return 0;
}

static int s3_creds_parse(FILE *f, const char *path, const char *profile, struct s3_credentials *c, char *err,
			  size_t errsz)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	bool in_profile = !strcmp(profile, "default");   /* keys before any section are [default] */
	int rc = 0;

	while (getline(&line, &cap, f) >= 0) {
		char *s = s3_trim(line), *eq, *key, *value;

		lineno++;
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			in_profile = s3_section_is(s, profile);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errsz, "%s:%u: not a `key = value` line", path, lineno);
			rc = -EINVAL;
			break;
		}
		if (!in_profile)
			continue;
		*eq = '\0';
		key = s3_trim(s);
		value = s3_trim(eq + 1);
		if (!strcmp(key, "aws_access_key_id"))
			rc = s3_set_field(&c->access_key, value);
		else if (!strcmp(key, "aws_secret_access_key"))
			rc = s3_set_field(&c->secret_key, value);
		else if (!strcmp(key, "aws_session_token"))
			rc = s3_set_field(&c->session_token, value);
		if (rc)
			break;
	}
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	return rc;
}

int s3_creds_from_file(const char *path, const char *profile, struct s3_credentials *out, char *err,
		       size_t errsz)
{
	struct s3_credentials c = { 0 };
	struct stat st;
	FILE *f;
	int fd, rc;

	if (!profile)
		profile = "default";
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return rc;
	}
	/* Checked on the open descriptor, so the file read is the file checked. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errsz, "%s: readable by group or others (mode %04o); run chmod 600 %s", path,
			 (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errsz, "%s: owned by uid %u, not by this user; refusing its credentials", path,
			 (unsigned)st.st_uid);
		close(fd);
		return -EPERM;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	rc = s3_creds_parse(f, path, profile, &c, err, errsz);
	fclose(f);
	if (!rc && (!c.access_key || !*c.access_key || !c.secret_key || !*c.secret_key)) {
		snprintf(err, errsz, "%s: profile [%s] has no aws_access_key_id and aws_secret_access_key", path,
			 profile);
		rc = -ENOENT;
	}
	if (rc) {
		s3_creds_clear(&c);
		return rc;
	}
	*out = c;
	return 0;
}

int s3_creds_load(const char *path, const char *profile, struct s3_credentials *out, char *err, size_t errsz)
{
	int rc = s3_creds_from_env(out);

	if (rc == -EINVAL)
		snprintf(err, errsz, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time like 2026-12-05T23:59:59Z");
	if (rc != -ENOENT)
		return rc;
	if (!path) {
		snprintf(err, errsz, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
				     "or give a credentials file");
		return -ENOENT;
	}
	return s3_creds_from_file(path, profile, out, err, errsz);
}

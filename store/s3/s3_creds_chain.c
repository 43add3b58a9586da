/* s3_creds_chain.c - credentials, region and endpoint found the way every AWS tool finds them.
 *
 * Credentials, first source that has them: the environment (AWS_ACCESS_KEY_ID, ...); pecfs's own
 * s3-credentials-file; web identity from the environment (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN,
 * STS AssumeRoleWithWebIdentity, as on EKS); the profile (AWS_PROFILE, else "default") in the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials); the profile in the config file
 * (AWS_CONFIG_FILE, ~/.aws/config): keys, credential_process, or web_identity_token_file + role_arn;
 * the EC2 instance metadata service, IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true). Temporary
 * credentials carry their expiration; the S3 client asks this chain again before it (s3_client.h).
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's region. Endpoint: AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, the profile's endpoint_url. CA bundle: AWS_CA_BUNDLE, the profile's ca_bundle.
 * Secrets are wiped from every buffer they pass through; messages name sources, never values.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "s3_buf.h"
#include "s3_creds.h"
#include "s3_xml.h"

#define CHAIN_BODY_MAX (256u << 10)   /* largest answer read from STS, IMDS or a credential process */
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 1000          /* off EC2 nothing answers: give up fast */
#define STS_TIMEOUT_MS 10000

/* $ENV, else $HOME/rel (HOME from the environment, else the password database). */
static const char *aws_file(const char *env, const char *rel, char *buf, size_t size)
{
	const char *v = getenv(env), *home = getenv("HOME");

	if (v && *v)
		return v;
	if (!home || !*home) {
		struct passwd *pw = getpwuid(geteuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || snprintf(buf, size, "%s/%s", home, rel) >= (int)size)
		return NULL;
	return buf;
}

static const char *chain_profile(const struct s3_chain *c)
{
	const char *p = c->profile && *c->profile ? c->profile : getenv("AWS_PROFILE");

	return p && *p ? p : "default";
}

/* Value of key in the profile's section of the AWS config file ("[default]" or "[profile NAME]");
 * -ENOENT when the file, the section or the key is missing. Nested settings ("s3 =" followed by
 * indented lines) are skipped. */
static int config_get(const char *profile, const char *key, char *out, size_t size)
{
	char buf[PATH_MAX], *line = NULL;
	const char *path = aws_file("AWS_CONFIG_FILE", ".aws/config", buf, sizeof(buf));
	size_t cap = 0;
	bool in = false;
	int rc = -ENOENT;
	FILE *f = path ? fopen(path, "re") : NULL;

	if (!f)
		return -ENOENT;
	while (getline(&line, &cap, f) >= 0) {
		char *s = line, *e, *eq;
		if (isspace((unsigned char)*s) && *s != '\n')
			continue;  /* a nested setting */
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *name = s + 1, *end = strchr(s, ']');
			if (!end)
				continue;
			*end = '\0';
			if (!strncmp(name, "profile ", 8))
				name += 8;
			while (isspace((unsigned char)*name))
				name++;
			in = !strcmp(name, profile);
			continue;
		}
		if (!in || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		for (e = eq; e > s && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		char *v = eq + 1;
		while (isspace((unsigned char)*v))
			v++;
		if (!strcmp(s, key)) {
			rc = snprintf(out, size, "%s", v) < (int)size ? 0 : -ENAMETOOLONG;
			break;
		}
	}
	OPENSSL_cleanse(line, cap);
	free(line);
	fclose(f);
	return rc;
}

static void first_of(char *out, size_t size, const char *const *envs, const char *profile, const char *key)
{
	out[0] = '\0';
	for (; *envs; envs++) {
		const char *v = getenv(*envs);
		if (v && *v) {
			snprintf(out, size, "%s", v);
			return;
		}
	}
	if (config_get(profile, key, out, size) < 0)
		out[0] = '\0';
}

void s3_chain_settings(struct s3_chain *c)
{
	static const char *const region[] = { "AWS_REGION", "AWS_DEFAULT_REGION", NULL };
	static const char *const endpoint[] = { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL };
	static const char *const ca[] = { "AWS_CA_BUNDLE", NULL };
	const char *profile = chain_profile(c);

	first_of(c->region, sizeof(c->region), region, profile, "region");
	first_of(c->endpoint_url, sizeof(c->endpoint_url), endpoint, profile, "endpoint_url");
	first_of(c->ca_bundle, sizeof(c->ca_bundle), ca, profile, "ca_bundle");
}

/* ---- HTTP for STS and IMDS ---- */

static size_t http_body(char *p, size_t size, size_t n, void *ud)
{
	struct s3_buf *b = ud;

	s3_buf_append(b, p, size * n);
	return s3_buf_error(b) ? 0 : size * n;
}

/* One request; *status the HTTP status, body in out (limit CHAIN_BODY_MAX). -EIO when it could not
 * be sent or answered, with why in err. */
static int http_call(const char *method, const char *url, struct curl_slist *headers, const char *body,
		     const char *ca, long timeout_ms, long *status, struct s3_buf *out, char *err, size_t errsz)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	CURLcode cc;

	if (!h)
		return -ENOMEM;
	out->limit = CHAIN_BODY_MAX;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	else if (!strcmp(method, "PUT"))
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "169.254.169.254");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK) {
		snprintf(err, errsz, "%s", *errbuf ? errbuf : curl_easy_strerror(cc));
		return -EIO;
	}
	return 0;
}

/* ---- JSON credentials (IMDS, credential_process) ---- */

/* {"AccessKeyId", "SecretAccessKey", token_key?, "Expiration"?} -> out. -EINVAL when malformed. */
static int creds_from_json(const char *text, size_t len, const char *token_key, struct s3_credentials *out)
{
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *ak = json_string_value(json_object_get(o, "AccessKeyId"));
	const char *sk = json_string_value(json_object_get(o, "SecretAccessKey"));
	const char *tok = json_string_value(json_object_get(o, token_key));
	json_t *exp = json_object_get(o, "Expiration");
	struct s3_credentials src = { (char *)ak, (char *)sk, (char *)tok, 0 };
	int rc = -EINVAL;

	if (!json_is_object(o) || !ak || !*ak || !sk || !*sk || (json_object_get(o, token_key) && !tok) ||
	    (exp && !json_is_string(exp)))
		goto out;
	if (exp && (src.expires_ns = s3_creds_parse_time(json_string_value(exp))) < 0)
		goto out;
	if (tok && !*tok)
		src.session_token = NULL;
	rc = s3_creds_copy(out, &src);
out:
	if (o && ak)  /* the secret is in jansson's copy too */
		OPENSSL_cleanse((char *)sk, sk ? strlen(sk) : 0);
	json_decref(o);
	return rc;
}

/* credential_process: runs cmd with the shell, reads its standard output (JSON, "Version": 1). */
static int creds_from_process(const char *cmd, const char *profile, struct s3_credentials *out, char *err,
			      size_t errsz)
{
	struct s3_buf b = S3_BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *p = popen(cmd, "re");
	int rc;

	if (!p) {
		snprintf(err, errsz, "profile %s: credential_process: %s", profile, strerror(errno));
		return -EIO;
	}
	b.limit = CHAIN_BODY_MAX;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		s3_buf_append(&b, chunk, n);
	OPENSSL_cleanse(chunk, sizeof(chunk));
	int st = pclose(p);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errsz, "profile %s: credential_process failed (%s %d)", profile,
			 st != -1 && WIFEXITED(st) ? "exit status" : "status", st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : st);
		rc = -EIO;
	} else if (s3_buf_error(&b)) {
		snprintf(err, errsz, "profile %s: credential_process printed too much", profile);
		rc = -EINVAL;
	} else {
		json_t *o = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
		json_t *ver = json_object_get(o, "Version");
		rc = json_is_integer(ver) && json_integer_value(ver) == 1 ? creds_from_json(b.p, b.len, "SessionToken", out)
									 : -EINVAL;
		json_decref(o);
		if (rc == -EINVAL)
			snprintf(err, errsz, "profile %s: credential_process did not print {\"Version\": 1, "
				 "\"AccessKeyId\", \"SecretAccessKey\", ...}", profile);
	}
	if (b.p)
		OPENSSL_cleanse(b.p, b.len);
	s3_buf_free(&b);
	return rc;
}

/* ---- STS AssumeRoleWithWebIdentity ---- */

static int read_token(const char *path, char **out, char *err, size_t errsz)
{
	struct s3_buf b = S3_BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f) {
		snprintf(err, errsz, "web identity token file %s: %s", path, strerror(errno));
		return -errno;
	}
	b.limit = 64u << 10;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		s3_buf_append(&b, chunk, n);
	fclose(f);
	while (b.len && isspace((unsigned char)b.p[b.len - 1]))
		b.len--;
	if (s3_buf_error(&b) || !b.len) {
		snprintf(err, errsz, "web identity token file %s: empty or too long", path);
		s3_buf_free(&b);
		return -EINVAL;
	}
	*out = strndup(b.p, b.len);
	OPENSSL_cleanse(b.p, b.len);
	s3_buf_free(&b);
	return *out ? 0 : -ENOMEM;
}

static int creds_from_web_identity(const char *token_file, const char *role_arn, const char *session,
				   const char *region, const char *ca, struct s3_credentials *out, char *err,
				   size_t errsz)
{
	const char *ep = getenv("AWS_ENDPOINT_URL_STS");
	char url[600], *token = NULL, *etoken = NULL, *erole = NULL, *esess = NULL, *body = NULL;
	struct s3_buf resp = S3_BUF_INIT;
	struct s3_xml_error xe;
	long status = 0;
	int rc;

	if (!ep || !*ep)
		ep = getenv("AWS_ENDPOINT_URL");
	if (ep && *ep)
		snprintf(url, sizeof(url), "%s", ep);
	else if (region && *region)
		snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com", region);
	else
		snprintf(url, sizeof(url), "https://sts.amazonaws.com");
	if ((rc = read_token(token_file, &token, err, errsz)) < 0)
		return rc;
	CURL *h = curl_easy_init();
	if (h) {
		etoken = curl_easy_escape(h, token, 0);
		erole = curl_easy_escape(h, role_arn, 0);
		esess = curl_easy_escape(h, session, 0);
		curl_easy_cleanup(h);
	}
	if (!etoken || !erole || !esess ||
	    asprintf(&body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&RoleSessionName=%s"
			    "&WebIdentityToken=%s", erole, esess, etoken) < 0) {
		body = NULL;
		rc = -ENOMEM;
		goto out;
	}
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	hd = hd ? curl_slist_append(hd, "Accept: application/xml") : NULL;
	rc = hd ? http_call("POST", url, hd, body, ca, STS_TIMEOUT_MS, &status, &resp, err, errsz) : -ENOMEM;
	curl_slist_free_all(hd);
	if (rc == -EIO) {
		char why[CURL_ERROR_SIZE + 64];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errsz, "STS %s: %s", url, why);
	}
	if (rc < 0)
		goto out;
	rc = s3_xml_parse_sts_credentials(resp.p, resp.len, out, &xe);
	if (rc < 0) {
		snprintf(err, errsz, "STS %s AssumeRoleWithWebIdentity for %s: HTTP %ld %s%s%s", url, role_arn, status,
			 xe.code[0] ? xe.code : "(no credentials in the answer)", xe.message[0] ? ": " : "", xe.message);
		s3_creds_clear(out);
		rc = status == 403 || status == 400 ? -EACCES : -EIO;
	}
out:
	if (token)
		OPENSSL_cleanse(token, strlen(token));
	if (etoken)
		OPENSSL_cleanse(etoken, strlen(etoken));
	if (body)
		OPENSSL_cleanse(body, strlen(body));
	free(token);
	curl_free(etoken);
	curl_free(erole);
	curl_free(esess);
	free(body);
	if (resp.p)
		OPENSSL_cleanse(resp.p, resp.len);
	s3_buf_free(&resp);
	return rc;
}

/* ---- EC2 instance metadata, IMDSv2 ---- */

static int creds_from_imds(const char *ca, struct s3_credentials *out, char *err, size_t errsz)
{
	const char *ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char url[600], hdr[256], role[256], why[512] = "";
	struct s3_buf tok = S3_BUF_INIT, roles = S3_BUF_INIT, cred = S3_BUF_INIT;
	struct curl_slist *h = NULL;
	long status = 0;
	int rc;

	if (!ep || !*ep)
		ep = IMDS_DEFAULT;
	/* 1. a session token (PUT, TTL header); 2. the role name; 3. its credentials */
	snprintf(url, sizeof(url), "%s/latest/api/token", ep);
	h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	rc = h ? http_call("PUT", url, h, NULL, ca, IMDS_TIMEOUT_MS, &status, &tok, why, sizeof(why)) : -ENOMEM;
	curl_slist_free_all(h);
	h = NULL;
	if (rc == 0 && (status != 200 || !tok.len || tok.len > 200))
		rc = -EIO;
	if (rc < 0) {
		snprintf(err, errsz, "instance metadata %s: no session token (%s)", ep, why[0] ? why : "refused");
		goto out;
	}
	snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %.*s", (int)tok.len, tok.p);
	h = curl_slist_append(NULL, hdr);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", ep);
	rc = h ? http_call("GET", url, h, NULL, ca, IMDS_TIMEOUT_MS, &status, &roles, why, sizeof(why)) : -ENOMEM;
	if (rc == 0 && status != 200)
		rc = -ENOENT;
	size_t n = 0;
	while (rc == 0 && n < roles.len && n < sizeof(role) - 1 && roles.p[n] != '\n' &&
	       (isalnum((unsigned char)roles.p[n]) || strchr("+=,.@_-", roles.p[n])))
		n++;
	if (rc == 0 && n == 0)
		rc = -ENOENT;
	if (rc < 0) {
		snprintf(err, errsz, "instance metadata %s: no IAM role attached to this instance", ep);
		goto out;
	}
	memcpy(role, roles.p, n);
	role[n] = '\0';
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", ep, role);
	rc = http_call("GET", url, h, NULL, ca, IMDS_TIMEOUT_MS, &status, &cred, why, sizeof(why));
	if (rc == 0 && status != 200)
		rc = -EIO;
	if (rc == 0) {
		json_t *o = json_loadb(cred.p ? cred.p : "", cred.len, 0, NULL);
		const char *code = json_string_value(json_object_get(o, "Code"));
		rc = code && !strcmp(code, "Success") ? creds_from_json(cred.p, cred.len, "Token", out) : -EINVAL;
		json_decref(o);
	}
	if (rc < 0)
		snprintf(err, errsz, "instance metadata %s: no credentials for role %s", ep, role);
out:
	curl_slist_free_all(h);
	if (tok.p)
		OPENSSL_cleanse(tok.p, tok.len);
	if (cred.p)
		OPENSSL_cleanse(cred.p, cred.len);
	s3_buf_free(&tok);
	s3_buf_free(&roles);
	s3_buf_free(&cred);
	return rc;
}

/* ---- the chain ---- */

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

int s3_chain_credentials(struct s3_chain *c, struct s3_credentials *out, char *err, size_t errsz)
{
	const char *profile = chain_profile(c);
	char path[PATH_MAX], v1[PATH_MAX], v2[512], v3[256];
	const char *file;
	int rc;

	s3_chain_settings(c);
	rc = s3_creds_from_env(out);
	if (rc == -EINVAL)
		snprintf(err, errsz, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time like 2026-12-05T23:59:59Z");
	if (rc != -ENOENT) {
		snprintf(c->source, sizeof(c->source), "environment");
		return rc;
	}
	if (c->credentials_file && *c->credentials_file) {
		snprintf(c->source, sizeof(c->source), "s3-credentials-file");
		return s3_creds_from_file(c->credentials_file, c->profile, out, err, errsz);
	}
	const char *tf = getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = getenv("AWS_ROLE_ARN");
	if (tf && *tf && arn && *arn) {
		const char *sess = getenv("AWS_ROLE_SESSION_NAME");
		snprintf(c->source, sizeof(c->source), "web identity (AWS_ROLE_ARN)");
		return creds_from_web_identity(tf, arn, sess && *sess ? sess : "pecfs", c->region, c->ca_bundle, out,
					       err, errsz);
	}
	file = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", path, sizeof(path));
	if (file && access(file, F_OK) == 0) {
		rc = s3_creds_from_file(file, profile, out, err, errsz);
		if (rc != -ENOENT) {
			snprintf(c->source, sizeof(c->source), "profile %s (%s)", profile, "credentials file");
			return rc;
		}
	}
	/* the config file's profile: keys, a credential process, or a role for a web identity */
	struct s3_credentials k = { 0 };
	if (config_get(profile, "aws_access_key_id", v2, sizeof(v2)) == 0 &&
	    config_get(profile, "aws_secret_access_key", v1, sizeof(v1)) == 0) {
		k.access_key = v2;
		k.secret_key = v1;
		k.session_token = config_get(profile, "aws_session_token", path, sizeof(path)) == 0 ? path : NULL;
		rc = s3_creds_copy(out, &k);
		OPENSSL_cleanse(v1, sizeof(v1));
		OPENSSL_cleanse(path, sizeof(path));
		snprintf(c->source, sizeof(c->source), "profile %s (config file)", profile);
		return rc;
	}
	if (config_get(profile, "credential_process", v1, sizeof(v1)) == 0) {
		snprintf(c->source, sizeof(c->source), "profile %s (credential_process)", profile);
		return creds_from_process(v1, profile, out, err, errsz);
	}
	if (config_get(profile, "web_identity_token_file", v1, sizeof(v1)) == 0 &&
	    config_get(profile, "role_arn", v2, sizeof(v2)) == 0) {
		if (config_get(profile, "role_session_name", v3, sizeof(v3)) < 0)
			snprintf(v3, sizeof(v3), "pecfs");
		snprintf(c->source, sizeof(c->source), "profile %s (web identity)", profile);
		return creds_from_web_identity(v1, v2, v3, c->region, c->ca_bundle, out, err, errsz);
	}
	if (!env_true("AWS_EC2_METADATA_DISABLED")) {
		snprintf(c->source, sizeof(c->source), "instance metadata (IMDSv2)");
		rc = creds_from_imds(c->ca_bundle, out, err, errsz);
		if (rc == 0)
			return 0;
	}
	char why[400];
	snprintf(why, sizeof(why), "%s", rc < 0 && err[0] ? err : "");
	snprintf(err, errsz, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, give "
		 "s3-credentials-file, a profile (AWS_PROFILE, ~/.aws/credentials or ~/.aws/config), a web identity "
		 "(AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), or run on an instance with a role%s%s",
		 why[0] ? "; last tried: " : "", why);
	c->source[0] = '\0';
	return -ENOENT;
}

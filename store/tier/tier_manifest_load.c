/* tier_manifest_load.c - reading version manifests from the bucket, for every reader of them:
 * restore, import (`mount --from`), bucket gc and `fsck --remote`. A manifest is bucket content and
 * so untrusted: besides parsing (tier_manifest_decode), it must name the place it is stored at,
 * runs/<run>/<version>/<node>.manifest, or a copy put elsewhere could pass for another version.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_impl.h"

#define MANIFEST_SUFFIX ".manifest"
#define MANIFEST_SUFFIX_LEN (sizeof(MANIFEST_SUFFIX) - 1)

/* Splits "...runs/<run>/<version>/<node>.manifest" into its three names (pointers into key, with
 * lengths). false when key does not have that shape. */
static bool manifest_key_split(const char *key, const char *name[3], size_t len[3])
{
	const char *end = key + strlen(key), *p;

	if ((size_t)(end - key) <= MANIFEST_SUFFIX_LEN || strcmp(end - MANIFEST_SUFFIX_LEN, MANIFEST_SUFFIX) != 0)
		return false;
	end -= MANIFEST_SUFFIX_LEN;
	for (int i = 2; i >= 0; i--) {  /* node, version, run: from the end */
		for (p = end; p > key && p[-1] != '/'; p--)
			;
		name[i] = p;
		len[i] = (size_t)(end - p);
		if (len[i] == 0 || (i > 0 && p == key))
			return false;
		end = p - 1;
	}
	return end - key >= 4 && strncmp(end - 4, "runs", 4) == 0 && (end - 4 == key || end[-5] == '/');
}

bool tier_manifest_key_ok(const char *key)
{
	const char *name[3];
	size_t len[3];

	return manifest_key_split(key, name, len);
}

static bool name_is(const char *s, const char *name, size_t len)
{
	return strlen(s) == len && strncmp(s, name, len) == 0;
}

int tier_manifest_parse(const char *key, const char *text, size_t len, struct tier_manifest *m, char *msg,
			size_t msgsz)
{
	const char *name[3];
	size_t nlen[3];
	char err[256];
	int rc;

	if (!manifest_key_split(key, name, nlen)) {
		snprintf(msg, msgsz, "not a manifest key (runs/RUN/VERSION/NODE.manifest)");
		return -EINVAL;
	}
	rc = tier_manifest_decode(text, len, m, err, sizeof(err));
	if (rc < 0) {
		snprintf(msg, msgsz, "manifest does not parse: %.200s", err);
		return rc;
	}
	if (!name_is(m->run, name[0], nlen[0]) || !name_is(m->version, name[1], nlen[1]) ||
	    !name_is(m->node, name[2], nlen[2])) {
		snprintf(msg, msgsz, "manifest names %.100s/%.100s of node %.64s, not the place it is stored at",
			 m->run, m->version, m->node);
		tier_manifest_free(m);
		return -EBADMSG;
	}
	return 0;
}

int tier_manifest_get(struct s3_client *c, const char *key, struct tier_manifest *m, char *msg, size_t msgsz)
{
	struct s3_result res = { 0 };
	char *text = NULL, why[320];
	size_t len;
	int rc = s3_get_all(c, key, TIER_MANIFEST_MAX_BYTES, (void **)&text, &len, &res);

	if (rc < 0) {
		snprintf(msg, msgsz, "%.300s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	rc = tier_manifest_parse(key, text, len, m, why, sizeof(why));
	free(text);
	if (rc < 0)
		snprintf(msg, msgsz, "%.300s: %s", key, why);
	return rc;
}

struct load {
	struct s3_client *c;
	struct tier_manifest_set *set;
	char *msg;
	size_t msgsz;
};

static int load_one(void *ctx, const struct s3_object *o)
{
	struct load *l = ctx;
	struct tier_manifest_set *set = l->set;
	struct tier_manifest *m;
	size_t klen = strlen(o->key);
	int rc;

	if (o->is_prefix || klen <= MANIFEST_SUFFIX_LEN || strcmp(o->key + klen - MANIFEST_SUFFIX_LEN, MANIFEST_SUFFIX))
		return 0;  /* COMMIT, the composition and other objects beside the manifests */
	m = realloc(set->m, (set->n + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	set->m = m;
	rc = tier_manifest_get(l->c, o->key, &set->m[set->n], l->msg, l->msgsz);
	if (rc < 0)
		return rc;
	set->n++;
	return 0;
}

int tier_manifests_load(struct s3_client *c, const char *prefix, const char *run, const char *version,
			struct tier_manifest_set *out, char *msg, size_t msgsz)
{
	struct load l = { .c = c, .set = out, .msg = msg, .msgsz = msgsz };
	struct s3_result res = { 0 };
	char key[TIER_PREFIX_MAX + 2 * 256 + 16];
	int rc;

	memset(out, 0, sizeof(*out));
	msg[0] = '\0';
	if ((size_t)snprintf(key, sizeof(key), "%s%sruns/%s/%s/", prefix, prefix[0] ? "/" : "", run, version) >=
	    sizeof(key)) {
		snprintf(msg, msgsz, "%.100s/%.100s: name too long", run, version);
		return -ENAMETOOLONG;
	}
	rc = s3_list(c, key, NULL, 0, load_one, &l, &res);
	if (rc < 0) {
		if (!msg[0])
			snprintf(msg, msgsz, "listing %.300s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
		tier_manifest_set_free(out);
	}
	return rc;
}

void tier_manifest_set_free(struct tier_manifest_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		tier_manifest_free(&s->m[i]);
	free(s->m);
	s->m = NULL;
	s->n = 0;
}

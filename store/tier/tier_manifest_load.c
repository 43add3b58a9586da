/* tier_manifest_load.c - reading version manifests and COMMITs from the bucket, for every reader of
 * them: restore, import (`mount --from`), the uploader's commit check, bucket gc and `fsck --remote`.
 * Both are bucket content and so untrusted: besides parsing (tier_manifest_decode, tier_commit_decode),
 * each must name the place it is stored at, runs/<run>/<version>/<node>.manifest or .../COMMIT, or a
 * copy put elsewhere could pass for another version. A committed version is the parts its COMMIT
 * names, each with the seal id COMMIT gives it, merged here by the one rule restore and import share:
 * the first part in node name order wins a path, and a path is never a directory in one part and
 * something else in another.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* ---- COMMIT ---- */

int tier_commit_parse(const char *run, const char *version, const char *text, size_t len, struct tier_commit *c,
		      char *msg, size_t msgsz)
{
	char err[256];
	int rc = tier_commit_decode(text, len, c, err, sizeof(err));

	if (rc < 0) {
		snprintf(msg, msgsz, "COMMIT does not parse: %s", err);
		return rc;
	}
	if (strcmp(c->run, run) != 0 || strcmp(c->version, version) != 0) {
		snprintf(msg, msgsz, "COMMIT names %.100s/%.100s, not the version it is stored under", c->run,
			 c->version);
		tier_commit_free(c);
		return -EBADMSG;
	}
	return 0;
}

int tier_commit_get(struct s3_client *c, const char *prefix, const char *run, const char *version,
		    struct tier_commit *out, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 2 * 256 + 16], *text = NULL, why[320];
	struct s3_result res = { 0 };
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = tier_gc_key(prefix, key, sizeof(key), "runs/%s/%s/COMMIT", run, version);
	if (rc == 0)
		rc = s3_get_all(c, key, TIER_COMMIT_MAX_BYTES, (void **)&text, &len, &res);
	if (rc < 0) {
		snprintf(msg, msgsz, "%.300s: %.200s", key, res.message[0] ? res.message : strerror(-rc));
		return rc == -EFBIG ? -EBADMSG : rc;
	}
	rc = tier_commit_parse(run, version, text, len, out, why, sizeof(why));
	free(text);
	if (rc < 0)
		snprintf(msg, msgsz, "%.300s: %s", key, why);
	return rc;
}

/* ---- a committed version ---- */

static int set_node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tier_manifest *)a)->node, ((const struct tier_manifest *)b)->node);
}

/* The manifests of the parts c names, each with the seal id c gives it. */
static int load_parts(struct s3_client *cl, const char *prefix, const struct tier_commit *c,
		      struct tier_manifest_set *out, char *msg, size_t msgsz)
{
	char key[TIER_PREFIX_MAX + 3 * 256 + 32];
	int rc;

	out->m = calloc(c->npart, sizeof(*out->m));
	if (!out->m)
		return -ENOMEM;
	for (size_t i = 0; i < c->npart; i++) {
		const struct tier_commit_part *p = &c->part[i];
		struct tier_manifest *m = &out->m[out->n];

		rc = tier_gc_key(prefix, key, sizeof(key), "runs/%s/%s/%s.manifest", c->run, c->version, p->node);
		if (rc == 0)
			rc = tier_manifest_get(cl, key, m, msg, msgsz);
		if (rc == -ENOENT) {
			snprintf(msg, msgsz, "%.300s: COMMIT names this part, but it is missing", key);
			return -EBADMSG;
		}
		if (rc < 0)
			return rc;
		out->n++;
		if (strcmp(m->seal_id, p->seal_id) != 0) {
			snprintf(msg, msgsz, "%.300s: a part of another upload (seal id '%s'), not the one COMMIT "
				 "names (seal id '%s')", key, m->seal_id, p->seal_id);
			return -EBADMSG;
		}
	}
	return 0;
}

int tier_version_load(struct s3_client *c, const char *prefix, const char *run, const char *version,
		      struct tier_commit *commit, struct tier_manifest_set *out, char *msg, size_t msgsz)
{
	int rc;

	memset(out, 0, sizeof(*out));
	msg[0] = '\0';
	if (!tier_manifest_name_ok(run) || !tier_manifest_name_ok(version)) {
		snprintf(msg, msgsz, "'%.100s/%.100s' is not a valid run and version name", run, version);
		memset(commit, 0, sizeof(*commit));
		return -EBADMSG;
	}
	rc = tier_commit_get(c, prefix, run, version, commit, msg, msgsz);
	if (rc < 0)
		return rc;
	if (commit->npart > 0) {
		rc = load_parts(c, prefix, commit, out, msg, msgsz);
	} else {
		/* Written before seal ids: every manifest beside it is a part, as readers took it then. */
		rc = tier_manifests_load(c, prefix, run, version, out, msg, msgsz);
		if (rc == 0 && out->n == 0) {
			snprintf(msg, msgsz, "%.100s/%.100s is committed but has no manifest", run, version);
			rc = -EBADMSG;
		}
		if (rc == 0)
			qsort(out->m, out->n, sizeof(*out->m), set_node_cmp);
	}
	if (rc < 0) {
		tier_manifest_set_free(out);
		tier_commit_free(commit);
	}
	return rc;
}

/* ---- merging the parts ---- */

struct merge_ref {
	const struct tier_manifest_entry *e;
	size_t part;
};

static int merge_ref_cmp(const void *a, const void *b)
{
	const struct merge_ref *x = a, *y = b;
	int c = tier_manifest_path_cmp(x->e->path, y->e->path);

	if (c)
		return c;
	return x->part < y->part ? -1 : x->part > y->part;
}

static const char *entry_kind(uint32_t mode)
{
	return S_ISDIR(mode) ? "directory" : S_ISLNK(mode) ? "symlink" : S_ISREG(mode) ? "file" : "special file";
}

int tier_version_merge(const struct tier_manifest_set *set, struct tier_merged *out, char *msg, size_t msgsz)
{
	struct merge_ref *refs;
	size_t total = 0, k = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < set->n; i++)
		total += set->m[i].n;
	refs = malloc((total ? total : 1) * sizeof(*refs));
	out->e = malloc((total ? total : 1) * sizeof(*out->e));
	if (!refs || !out->e) {
		free(refs);
		tier_merged_free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < set->n; i++)
		for (size_t j = 0; j < set->m[i].n; j++)
			refs[k++] = (struct merge_ref){ &set->m[i].entries[j], i };
	qsort(refs, k, sizeof(*refs), merge_ref_cmp);
	for (size_t i = 0; i < k;) {
		const struct merge_ref *first = &refs[i];
		for (i++; i < k && tier_manifest_path_cmp(refs[i].e->path, first->e->path) == 0; i++) {
			/* A hard link and the file it names come from one part, whole: a name that two
			 * parts list cannot be one of several names of a file, or link counts would lie. */
			if (first->e->link || first->e->nlinks > 1 || refs[i].e->link || refs[i].e->nlinks > 1) {
				snprintf(msg, msgsz, "'%.200s' is listed by the parts of nodes %.64s and %.64s and is "
					 "a name of a file with several names", first->e->path,
					 set->m[first->part].node, set->m[refs[i].part].node);
				free(refs);
				tier_merged_free(out);
				return -EBADMSG;
			}
			if (S_ISDIR(refs[i].e->mode) != S_ISDIR(first->e->mode)) {
				snprintf(msg, msgsz, "'%.200s' is a %s in the part of node %.64s and a %s in that of "
					 "node %.64s", first->e->path, entry_kind(first->e->mode), set->m[first->part].node,
					 entry_kind(refs[i].e->mode), set->m[refs[i].part].node);
				free(refs);
				tier_merged_free(out);
				return -EBADMSG;
			}
		}
		/* Each part lists every entry's directory before it as a directory (tier_manifest_decode),
		 * and the parts agree on which paths are directories, so every kept entry's directory is
		 * a kept directory entry. */
		out->e[out->n++] = first->e;
	}
	free(refs);
	return 0;
}

void tier_merged_free(struct tier_merged *m)
{
	free(m->e);
	m->e = NULL;
	m->n = 0;
}

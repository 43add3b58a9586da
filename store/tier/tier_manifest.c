/* tier_manifest.c - building, encoding and decoding version manifests and COMMIT objects (JSON via
 * jansson).
 *
 * Decoding treats the text as outside input (a bucket is writable by more than pecfs): duplicate JSON
 * keys are refused, every field is type-checked, names are single components other than "." ".."
 * and ".pec", paths may not escape the version, entries come in manifest order, each once and each
 * below a directory entry listed before it, and a file's extents must be in order, inside the file
 * and not overlapping. A decoded manifest is thus a well-formed tree that a restore or an import can
 * lay out without further checks of its shape.
 */
#include "tier_manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int tier_manifest_init(struct tier_manifest *m, const char *run, const char *version, const char *node)
{
	memset(m, 0, sizeof(*m));
	m->step = -1;
	m->run = strdup(run);
	m->version = strdup(version);
	m->node = strdup(node);
	if (!m->run || !m->version || !m->node) {
		tier_manifest_free(m);
		return -ENOMEM;
	}
	return 0;
}

void tier_manifest_free(struct tier_manifest *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->entries[i].path);
		free(m->entries[i].target);
		free(m->entries[i].source);
		free(m->entries[i].link);
		free(m->entries[i].ext);
	}
	free(m->entries);
	free(m->run);
	free(m->version);
	free(m->node);
	memset(m, 0, sizeof(*m));
}

int tier_manifest_add_entry(struct tier_manifest *m, const char *path, uint32_t mode, uint64_t size,
			  int64_t mtime_ns, const char *target, struct tier_manifest_entry **out)
{
	struct tier_manifest_entry *e;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		e = realloc(m->entries, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		m->entries = e;
		m->cap = cap;
	}
	e = &m->entries[m->n];
	memset(e, 0, sizeof(*e));
	e->path = strdup(path);
	e->target = target ? strdup(target) : NULL;
	if (!e->path || (target && !e->target)) {
		free(e->path);
		free(e->target);
		return -ENOMEM;
	}
	e->mode = mode;
	e->size = size;
	e->mtime_ns = mtime_ns;
	e->nlinks = 1;
	m->n++;
	if (out)
		*out = e;
	return 0;
}

int tier_manifest_add_extent(struct tier_manifest_entry *e, const struct tier_manifest_extent *x)
{
	if (e->next == e->ext_cap) {
		size_t cap = e->ext_cap ? e->ext_cap * 2 : 8;
		struct tier_manifest_extent *n = realloc(e->ext, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		e->ext = n;
		e->ext_cap = cap;
	}
	e->ext[e->next++] = *x;
	return 0;
}

int tier_manifest_set_link(struct tier_manifest *m, size_t target)
{
	struct tier_manifest_entry *e = &m->entries[m->n - 1], *t = &m->entries[target];

	if (m->n < 2 || target >= m->n - 1 || S_ISDIR(t->mode) || t->link || t->mode != e->mode)
		return -EINVAL;
	e->link = strdup(t->path);
	if (!e->link)
		return -ENOMEM;
	e->link_idx = target;
	e->nlinks = 0;
	e->size = 0;
	t->nlinks++;
	return 0;
}

int tier_manifest_set_extents(struct tier_manifest_entry *e, const struct tier_manifest_extent *x, size_t n)
{
	struct tier_manifest_extent *copy = malloc((n ? n : 1) * sizeof(*copy));

	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, x, n * sizeof(*copy));
	free(e->ext);
	e->ext = copy;
	e->next = e->ext_cap = n;
	return 0;
}

int tier_manifest_set_source(struct tier_manifest_entry *e, const char *source, int64_t staleness)
{
	char *copy = NULL;

	if (source && (!tier_manifest_name_ok(source) || staleness < 0))
		return -EINVAL;
	if (source && !(copy = strdup(source)))
		return -ENOMEM;
	free(e->source);
	e->source = copy;
	e->staleness = source ? staleness : 0;
	return 0;
}

/* Entry types by name, as the manifest spells them. */
static const struct {
	const char *name;
	uint32_t fmt;
} mf_types[] = {
	{ "file", S_IFREG }, { "dir", S_IFDIR }, { "symlink", S_IFLNK }, { "fifo", S_IFIFO },
	{ "socket", S_IFSOCK }, { "chardev", S_IFCHR }, { "blockdev", S_IFBLK },
};

static const char *mf_type(uint32_t mode)
{
	for (size_t i = 0; i < sizeof(mf_types) / sizeof(mf_types[0]); i++)
		if ((mode & S_IFMT) == mf_types[i].fmt)
			return mf_types[i].name;
	return "file";
}

static uint32_t mf_fmt(const char *type)
{
	for (size_t i = 0; i < sizeof(mf_types) / sizeof(mf_types[0]); i++)
		if (strcmp(type, mf_types[i].name) == 0)
			return mf_types[i].fmt;
	return 0;
}

static json_t *mf_entry_json(const struct tier_manifest_entry *e)
{
	json_t *o = json_object(), *xs;
	char hex[DIGEST_HEX_LEN + 1];

	if (!o)
		return NULL;
	json_object_set_new(o, "path", json_string(e->path));
	json_object_set_new(o, "type", json_string(mf_type(e->mode)));
	json_object_set_new(o, "mode", json_integer(e->mode & 07777));
	json_object_set_new(o, "mtime_ns", json_integer(e->mtime_ns));
	if (e->link) {
		json_object_set_new(o, "link", json_string(e->link));
		return o;
	}
	if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) {
		json_object_set_new(o, "rdev", json_pack("[I,I]", (json_int_t)e->rdev_major, (json_int_t)e->rdev_minor));
		return o;
	}
	if (S_ISLNK(e->mode)) {
		json_object_set_new(o, "target", json_string(e->target ? e->target : ""));
		return o;
	}
	if (!S_ISREG(e->mode))
		return o;
	json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	xs = json_array();
	for (size_t i = 0; i < e->next; i++) {
		const struct tier_manifest_extent *x = &e->ext[i];
		digest_to_hex(&x->digest, hex);
		if (x->loc.packed) {
			char phex[DIGEST_HEX_LEN + 1];
			digest_to_hex(&x->loc.pack, phex);
			json_array_append_new(xs, json_pack("[I,I,s,I,I,s,I]", (json_int_t)x->file_off, (json_int_t)x->len,
							    hex, (json_int_t)x->chunk_off, (json_int_t)x->chunk_len, phex,
							    (json_int_t)x->loc.off));
			continue;
		}
		json_array_append_new(xs, json_pack("[I,I,s,I,I]", (json_int_t)x->file_off, (json_int_t)x->len, hex,
						    (json_int_t)x->chunk_off, (json_int_t)x->chunk_len));
	}
	json_object_set_new(o, "extents", xs);
	if (e->source) {
		json_object_set_new(o, "source", json_string(e->source));
		json_object_set_new(o, "staleness", json_integer((json_int_t)e->staleness));
	}
	return o;
}

bool tier_manifest_packed(const struct tier_manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		for (size_t x = 0; x < m->entries[i].next; x++)
			if (m->entries[i].ext[x].loc.packed)
				return true;
	return false;
}

int tier_manifest_encode(const struct tier_manifest *m, char **out, size_t *len)
{
	json_t *root = json_object(), *arr = json_array();
	char *s;

	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return -ENOMEM;
	}
	json_object_set_new(root, "format", json_integer(tier_manifest_packed(m) ? TIER_MANIFEST_FORMAT_PACKS :
							 TIER_MANIFEST_FORMAT));
	json_object_set_new(root, "run", json_string(m->run));
	json_object_set_new(root, "version", json_string(m->version));
	json_object_set_new(root, "node", json_string(m->node));
	json_object_set_new(root, "step", m->step >= 0 ? json_integer(m->step) : json_null());
	json_object_set_new(root, "sealed_ns", json_integer(m->sealed_ns));
	json_object_set_new(root, "seal_seq", json_integer((json_int_t)m->seal_seq));
	json_object_set_new(root, "chunk_size", json_integer(m->chunk_size));
	if (m->seal_id[0])
		json_object_set_new(root, "seal_id", json_string(m->seal_id));
	if (m->job[0])
		json_object_set_new(root, "job", json_string(m->job));
	for (size_t i = 0; i < m->n; i++)
		json_array_append_new(arr, mf_entry_json(&m->entries[i]));
	json_object_set_new(root, "entries", arr);
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return -ENOMEM;
	*out = s;
	*len = strlen(s);
	return 0;
}

int tier_manifest_path_ok(const char *path)
{
	const char *p = path;

	if (*p == '\0' || *p == '/' || strlen(p) > TIER_PATH_MAX)
		return 0;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || n > 255 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
		if (slash && *p == '\0')
			return 0;
	}
	return 1;
}

int tier_manifest_name_ok(const char *name)
{
	return tier_manifest_path_ok(name) && !strchr(name, '/') && strcmp(name, ".pec") != 0;
}

/* A path byte's rank in manifest order: the end of the path, then '/', then every other byte. */
static int path_rank(unsigned char c)
{
	return c == '\0' ? 0 : c == '/' ? 1 : c + 2;
}

int tier_manifest_path_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x && *x == *y) {
		x++;
		y++;
	}
	return path_rank(*x) - path_rank(*y);
}

int tier_seal_id_ok(const char *s)
{
	size_t i;

	for (i = 0; i < TIER_SEAL_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[i] == '\0';
}

int tier_job_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@+=");

	return n >= 1 && n <= TIER_JOB_MAX && s[n] == '\0';
}

static int mf_fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int mf_fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int mf_decode_extents(json_t *xs, struct tier_manifest_entry *e, char *err, size_t errsz)
{
	uint64_t end = 0;
	size_t i;
	json_t *x;

	if (!json_is_array(xs))
		return mf_fail(err, errsz, "%s: extents is not an array", e->path);
	json_array_foreach(xs, i, x) {
		struct tier_manifest_extent ex = { 0 };
		json_int_t off, len, coff, clen, poff = 0;
		const char *hex, *phex = NULL;
		size_t nel = json_array_size(x);

		/* Five fields, or seven with the pack holding the chunk and its object's offset there. */
		if ((nel == 5 ? json_unpack(x, "[I,I,s,I,I]", &off, &len, &hex, &coff, &clen) :
		     nel == 7 ? json_unpack(x, "[I,I,s,I,I,s,I]", &off, &len, &hex, &coff, &clen, &phex, &poff) : -1) != 0 ||
		    off < 0 || len <= 0 || coff < 0 || clen <= 0 || digest_from_hex(hex, &ex.digest) != 0 ||
		    (phex && (digest_from_hex(phex, &ex.loc.pack) != 0 || poff < TIER_PACK_MIN_OFF ||
			      (uint64_t)poff > TIER_PACK_OFF_MAX)))
			return mf_fail(err, errsz, "%s: extent %zu is malformed", e->path, i);
		ex.loc.packed = phex != NULL;
		ex.loc.off = (uint64_t)poff;
		ex.file_off = (uint64_t)off;
		ex.len = (uint64_t)len;
		ex.chunk_off = (uint64_t)coff;
		ex.chunk_len = (uint64_t)clen;
		if (ex.file_off < end || ex.file_off + ex.len > e->size || ex.chunk_off + ex.len > ex.chunk_len ||
		    ex.chunk_len > (64u << 20))
			return mf_fail(err, errsz, "%s: extent %zu overlaps or lies outside its file or chunk", e->path, i);
		end = ex.file_off + ex.len;
		if (tier_manifest_add_extent(e, &ex) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The optional "source" and "staleness" of a file entry: both or neither, a version name and a
 * count of steps. */
static int mf_decode_source(json_t *o, struct tier_manifest_entry *e, char *err, size_t errsz)
{
	json_t *src = json_object_get(o, "source"), *stale = json_object_get(o, "staleness");

	if (!src && !stale)
		return 0;
	if (!S_ISREG(e->mode) || !json_is_string(src) || !json_is_integer(stale) ||
	    !tier_manifest_name_ok(json_string_value(src)) || json_integer_value(stale) < 0)
		return mf_fail(err, errsz, "%s: source must be a version name and staleness a count of steps, "
			       "both on a file entry", e->path);
	return tier_manifest_set_source(e, json_string_value(src), json_integer_value(stale));
}

static int mf_entry_cmp(const void *key, const void *elem)
{
	return tier_manifest_path_cmp(key, ((const struct tier_manifest_entry *)elem)->path);
}

/* Where path may stand after the entries decoded so far: after the last of them in manifest order
 * (so never twice), and below a directory entry already listed (top-level paths excepted). */
static int mf_check_place(const struct tier_manifest *m, const char *path, char *err, size_t errsz)
{
	const char *slash = strrchr(path, '/');
	const struct tier_manifest_entry *dir;
	char parent[TIER_PATH_MAX + 1];

	if (m->n > 0 && tier_manifest_path_cmp(m->entries[m->n - 1].path, path) >= 0)
		return mf_fail(err, errsz, "entry '%.200s' is listed twice or out of order (after '%.200s')", path,
			       m->entries[m->n - 1].path);
	if (!slash)
		return 0;
	memcpy(parent, path, (size_t)(slash - path));
	parent[slash - path] = '\0';
	dir = m->n ? bsearch(parent, m->entries, m->n, sizeof(*m->entries), mf_entry_cmp) : NULL;
	if (!dir)
		return mf_fail(err, errsz, "entry '%.200s' comes before its directory is listed", path);
	if (!S_ISDIR(dir->mode))
		return mf_fail(err, errsz, "entry '%.200s' lies under '%.200s', which is not a directory", path,
			       parent);
	return 0;
}

/* A hard link entry: names an earlier entry of m, not a directory or a link, of the same type and
 * mode, and carries nothing of its own. */
static int mf_decode_link(json_t *o, struct tier_manifest *m, const char *path, const char *link, char *err,
			  size_t errsz)
{
	/* Entries are in manifest order, so the earlier ones can be searched (the new one is last). */
	const struct tier_manifest_entry *hit = bsearch(link, m->entries, m->n - 1, sizeof(*m->entries), mf_entry_cmp);
	size_t t = hit ? (size_t)(hit - m->entries) : 0;

	if (json_object_get(o, "size") || json_object_get(o, "extents") || json_object_get(o, "target") ||
	    json_object_get(o, "rdev") || json_object_get(o, "source") || json_object_get(o, "staleness"))
		return mf_fail(err, errsz, "%.200s: a hard link carries no content of its own", path);
	if (!hit || S_ISDIR(hit->mode) || hit->link)
		return mf_fail(err, errsz, "%.200s: hard link to '%.200s', which is not an earlier file entry", path,
			       link);
	if (m->entries[t].mode != m->entries[m->n - 1].mode)
		return mf_fail(err, errsz, "%.200s: hard link to '%.200s' of another type or mode", path, link);
	return tier_manifest_set_link(m, t);
}

/* A device number: [major, minor] within the kernel's limits. */
static int mf_decode_rdev(json_t *o, struct tier_manifest_entry *e, char *err, size_t errsz)
{
	json_int_t major, minor;

	if (json_unpack(json_object_get(o, "rdev"), "[I,I]", &major, &minor) != 0 || major < 0 || minor < 0 ||
	    major > TIER_RDEV_MAJOR_MAX || minor > TIER_RDEV_MINOR_MAX || json_array_size(json_object_get(o, "rdev")) != 2)
		return mf_fail(err, errsz, "%.200s: a device needs \"rdev\": [major, minor] within %u and %u", e->path,
			       TIER_RDEV_MAJOR_MAX, TIER_RDEV_MINOR_MAX);
	e->rdev_major = (uint32_t)major;
	e->rdev_minor = (uint32_t)minor;
	return 0;
}

static int mf_decode_entry(json_t *o, struct tier_manifest *m, char *err, size_t errsz)
{
	const char *path = NULL, *type = NULL, *target = NULL, *link = NULL;
	json_int_t mode = 0, mtime = 0, size = 0;
	struct tier_manifest_entry *e;
	uint32_t fmt;
	int rc;

	if (json_unpack(o, "{s:s,s:s,s:I,s:I,s?I,s?s,s?s}", "path", &path, "type", &type, "mode", &mode, "mtime_ns",
			&mtime, "size", &size, "target", &target, "link", &link) != 0 || mode < 0 || mode > 07777 ||
	    size < 0)
		return mf_fail(err, errsz, "entry %zu is malformed", m->n);
	if (!tier_manifest_path_ok(path))
		return mf_fail(err, errsz, "entry path '%.200s' is not inside the version (or has an empty or "
			       "over-long name)", path);
	fmt = mf_fmt(type);
	if (!fmt || (fmt == S_IFLNK && !target && !link) || (fmt == S_IFDIR && link))
		return mf_fail(err, errsz, "%.200s: unknown type '%.32s'", path, type);
	rc = mf_check_place(m, path, err, errsz);
	if (rc < 0)
		return rc;
	if (link) {
		rc = tier_manifest_add_entry(m, path, fmt | (uint32_t)mode, 0, mtime, NULL, &e);
		return rc < 0 ? rc : mf_decode_link(o, m, path, link, err, errsz);
	}
	if (fmt == S_IFLNK && (target[0] == '\0' || strlen(target) > TIER_PATH_MAX))
		return mf_fail(err, errsz, "%.200s: a symlink target must be 1-%d bytes", path, TIER_PATH_MAX);
	/* Each field belongs to one type: a file's size and extents, a symlink's target, a device's
	 * number. Anything else would be read differently by different readers. */
	if ((fmt == S_IFREG) != (json_object_get(o, "size") != NULL) ||
	    (fmt == S_IFREG) != (json_object_get(o, "extents") != NULL) ||
	    (fmt != S_IFLNK && json_object_get(o, "target")) ||
	    (fmt != S_IFCHR && fmt != S_IFBLK && json_object_get(o, "rdev")))
		return mf_fail(err, errsz, "%.200s: fields of another entry type (a file has size and extents, a "
			       "symlink a target, a device rdev, a directory, fifo or socket none)", path);
	rc = tier_manifest_add_entry(m, path, fmt | (uint32_t)mode, (uint64_t)size, mtime,
				   fmt == S_IFLNK ? target : NULL, &e);
	if (rc < 0)
		return rc;
	if ((fmt == S_IFCHR || fmt == S_IFBLK) && (rc = mf_decode_rdev(o, e, err, errsz)) < 0)
		return rc;
	rc = mf_decode_source(o, e, err, errsz);
	if (rc == 0 && fmt == S_IFREG)
		rc = mf_decode_extents(json_object_get(o, "extents"), e, err, errsz);
	return rc;
}

int tier_manifest_decode(const char *text, size_t len, struct tier_manifest *m, char *err, size_t errsz)
{
	const char *run, *version, *node, *seal_id = NULL, *job = NULL;
	json_int_t format, sealed, seq = 0, csize;
	json_t *root, *entries, *step, *o;
	json_error_t jerr;
	size_t i;
	int rc;

	memset(m, 0, sizeof(*m));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return mf_fail(err, errsz, "not JSON: %s (line %d)", jerr.text, jerr.line);
	if (json_unpack(root, "{s:I,s:s,s:s,s:s,s:o,s:I,s?I,s:I,s:o,s?s,s?s}", "format", &format, "run", &run,
			"version", &version, "node", &node, "step", &step, "sealed_ns", &sealed, "seal_seq", &seq,
			"chunk_size", &csize, "entries", &entries, "seal_id", &seal_id, "job", &job) != 0 || !json_is_array(entries) ||
	    !((json_is_integer(step) && json_integer_value(step) >= 0) || json_is_null(step))) {
		rc = mf_fail(err, errsz, "not a pecfs manifest");
		goto out;
	}
	if (format != TIER_MANIFEST_FORMAT && format != TIER_MANIFEST_FORMAT_PACKS) {
		rc = mf_fail(err, errsz, "manifest format %lld is not supported", (long long)format);
		goto out;
	}
	if (!tier_manifest_name_ok(run) || !tier_manifest_name_ok(version) || !tier_manifest_name_ok(node)) {
		rc = mf_fail(err, errsz, "run, version or node name is not a valid name");
		goto out;
	}
	if (seal_id && !tier_seal_id_ok(seal_id)) {
		rc = mf_fail(err, errsz, "seal_id is not %d lowercase hex digits", TIER_SEAL_ID_LEN);
		goto out;
	}
	if (job && !tier_job_ok(job)) {
		rc = mf_fail(err, errsz, "job is not a job id (1-%d letters, digits or ._-:@+=)", TIER_JOB_MAX);
		goto out;
	}
	rc = tier_manifest_init(m, run, version, node);
	if (rc < 0)
		goto out;
	if (seal_id)
		memcpy(m->seal_id, seal_id, TIER_SEAL_ID_LEN + 1);
	if (job)
		memcpy(m->job, job, strlen(job) + 1);
	m->step = json_is_integer(step) ? json_integer_value(step) : -1;
	m->sealed_ns = sealed;
	m->seal_seq = (uint64_t)seq;
	m->chunk_size = (uint32_t)csize;
	json_array_foreach(entries, i, o) {
		rc = mf_decode_entry(o, m, err, errsz);
		if (rc < 0)
			goto out;
	}
	/* Format 2 is what a manifest naming packs says, so that a reader before packs refuses it. */
	if (format == TIER_MANIFEST_FORMAT && tier_manifest_packed(m))
		rc = mf_fail(err, errsz, "a format 1 manifest names a pack");
out:
	json_decref(root);
	if (rc < 0)
		tier_manifest_free(m);
	return rc;
}

/* ---- COMMIT ---- */

int tier_commit_encode(const struct tier_commit *c, char **out, size_t *len)
{
	json_t *root = json_object(), *parts = json_array();
	char *s;

	if (!root || !parts) {
		json_decref(root);
		json_decref(parts);
		return -ENOMEM;
	}
	json_object_set_new(root, "format", json_integer(1));
	json_object_set_new(root, "run", json_string(c->run));
	json_object_set_new(root, "version", json_string(c->version));
	json_object_set_new(root, "step", c->step >= 0 ? json_integer(c->step) : json_null());
	json_object_set_new(root, "sealed_ns", json_integer(c->sealed_ns));
	json_object_set_new(root, "node", json_string(c->node));
	json_object_set_new(root, "parts", json_integer((json_int_t)c->parts));
	if (c->job[0])
		json_object_set_new(root, "job", json_string(c->job));
	if (c->seal_id[0]) {
		json_object_set_new(root, "seal_id", json_string(c->seal_id));
		for (size_t i = 0; i < c->npart; i++)
			json_array_append_new(parts, json_pack("[s,o]", c->part[i].node, c->part[i].seal_id[0] ?
							      json_string(c->part[i].seal_id) : json_null()));
		json_object_set_new(root, "manifests", parts);
	} else {
		json_decref(parts);
	}
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return -ENOMEM;
	*out = s;
	*len = strlen(s);
	return 0;
}

void tier_commit_free(struct tier_commit *c)
{
	free(c->part);
	c->part = NULL;
	c->npart = 0;
}

const struct tier_commit_part *tier_commit_find(const struct tier_commit *c, const char *node)
{
	for (size_t i = 0; i < c->npart; i++)
		if (strcmp(c->part[i].node, node) == 0)
			return &c->part[i];
	return NULL;
}

/* "manifests": [[node, seal id or null], ...], strictly in node name byte order. */
static int commit_decode_parts(json_t *arr, struct tier_commit *c, char *err, size_t errsz)
{
	size_t i;
	json_t *x;

	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) != c->parts)
		return mf_fail(err, errsz, "\"manifests\" must list as many parts as \"parts\" counts");
	c->part = calloc(json_array_size(arr), sizeof(*c->part));
	if (!c->part)
		return -ENOMEM;
	json_array_foreach(arr, i, x) {
		struct tier_commit_part *p = &c->part[i];
		const char *node;
		json_t *id;

		if (json_unpack(x, "[s,o!]", &node, &id) != 0 || !tier_manifest_name_ok(node) ||
		    !(json_is_null(id) || (json_is_string(id) && tier_seal_id_ok(json_string_value(id)))))
			return mf_fail(err, errsz, "part %zu is not [node name, seal id or null]", i);
		if (i > 0 && strcmp(c->part[i - 1].node, node) >= 0)
			return mf_fail(err, errsz, "parts are not in node name order (or name node '%.100s' twice)", node);
		memcpy(p->node, node, strlen(node) + 1);  /* name_ok: at most TIER_NAME_MAX bytes */
		if (json_is_string(id))
			memcpy(p->seal_id, json_string_value(id), TIER_SEAL_ID_LEN + 1);
		c->npart++;
	}
	return 0;
}

int tier_commit_decode(const char *text, size_t len, struct tier_commit *c, char *err, size_t errsz)
{
	const char *run, *version, *node, *seal_id = NULL, *job = NULL;
	json_int_t format, sealed, parts = 1;
	json_t *root, *step, *manifests = NULL;
	const struct tier_commit_part *own;
	json_error_t jerr;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return mf_fail(err, errsz, "not JSON: %s (line %d)", jerr.text, jerr.line);
	if (json_unpack(root, "{s:I,s:s,s:s,s:o,s:I,s:s,s?I,s?s,s?o,s?s}", "format", &format, "run", &run, "version",
			&version, "step", &step, "sealed_ns", &sealed, "node", &node, "parts", &parts, "seal_id",
			&seal_id, "manifests", &manifests, "job", &job) != 0 ||
	    !((json_is_integer(step) && json_integer_value(step) >= 0) || json_is_null(step))) {
		rc = mf_fail(err, errsz, "not a pecfs COMMIT");
		goto out;
	}
	if (format != 1) {
		rc = mf_fail(err, errsz, "COMMIT format %lld is not supported", (long long)format);
		goto out;
	}
	if (!tier_manifest_name_ok(run) || !tier_manifest_name_ok(version) || !tier_manifest_name_ok(node)) {
		rc = mf_fail(err, errsz, "run, version or node name is not a valid name");
		goto out;
	}
	if (parts < 1) {
		rc = mf_fail(err, errsz, "bad \"parts\" count");
		goto out;
	}
	if (job && !tier_job_ok(job)) {
		rc = mf_fail(err, errsz, "job is not a job id (1-%d letters, digits or ._-:@+=)", TIER_JOB_MAX);
		goto out;
	}
	if (job)
		memcpy(c->job, job, strlen(job) + 1);
	memcpy(c->run, run, strlen(run) + 1);  /* name_ok: at most TIER_NAME_MAX bytes each */
	memcpy(c->version, version, strlen(version) + 1);
	memcpy(c->node, node, strlen(node) + 1);
	c->step = json_is_integer(step) ? json_integer_value(step) : -1;
	c->sealed_ns = sealed;
	c->parts = (uint64_t)parts;
	if (!seal_id && !manifests)
		goto out;  /* written before seal ids: every manifest beside it is a part */
	if (!seal_id || !tier_seal_id_ok(seal_id)) {
		rc = mf_fail(err, errsz, "a COMMIT with \"manifests\" needs a seal_id of %d lowercase hex digits",
			     TIER_SEAL_ID_LEN);
		goto out;
	}
	memcpy(c->seal_id, seal_id, TIER_SEAL_ID_LEN + 1);
	rc = commit_decode_parts(manifests, c, err, errsz);
	if (rc < 0)
		goto out;
	own = tier_commit_find(c, c->node);
	if (!own || strcmp(own->seal_id, c->seal_id) != 0)
		rc = mf_fail(err, errsz, "the creating node's part (%.100s, seal id %s) is not among its parts", c->node,
			     c->seal_id);
out:
	json_decref(root);
	if (rc < 0)
		tier_commit_free(c);
	return rc;
}

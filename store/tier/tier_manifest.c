/* tier_manifest.c - building, encoding and decoding version manifests (JSON via jansson).
 *
 * Decoding treats the text as outside input: every field is type-checked, paths may not escape the
 * version, and a file's extents must be in order, inside the file and not overlapping, so that a
 * restore can write them without further checks.
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

static const char *mf_type(uint32_t mode)
{
	if (S_ISDIR(mode))
		return "dir";
	if (S_ISLNK(mode))
		return "symlink";
	return "file";
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

int tier_manifest_encode(const struct tier_manifest *m, char **out, size_t *len)
{
	json_t *root = json_object(), *arr = json_array();
	char *s;

	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return -ENOMEM;
	}
	json_object_set_new(root, "format", json_integer(TIER_MANIFEST_FORMAT));
	json_object_set_new(root, "run", json_string(m->run));
	json_object_set_new(root, "version", json_string(m->version));
	json_object_set_new(root, "node", json_string(m->node));
	json_object_set_new(root, "step", m->step >= 0 ? json_integer(m->step) : json_null());
	json_object_set_new(root, "sealed_ns", json_integer(m->sealed_ns));
	json_object_set_new(root, "seal_seq", json_integer((json_int_t)m->seal_seq));
	json_object_set_new(root, "chunk_size", json_integer(m->chunk_size));
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

	if (*p == '\0' || *p == '/')
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
	return tier_manifest_path_ok(name) && !strchr(name, '/');
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
		struct tier_manifest_extent ex;
		json_int_t off, len, coff, clen;
		const char *hex;

		if (json_unpack(x, "[I,I,s,I,I]", &off, &len, &hex, &coff, &clen) != 0 || off < 0 || len <= 0 ||
		    coff < 0 || clen <= 0 || digest_from_hex(hex, &ex.digest) != 0)
			return mf_fail(err, errsz, "%s: extent %zu is malformed", e->path, i);
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

static int mf_decode_entry(json_t *o, struct tier_manifest *m, char *err, size_t errsz)
{
	const char *path = NULL, *type = NULL, *target = NULL;
	json_int_t mode = 0, mtime = 0, size = 0;
	struct tier_manifest_entry *e;
	uint32_t fmt;
	int rc;

	if (json_unpack(o, "{s:s,s:s,s:I,s:I,s?I,s?s}", "path", &path, "type", &type, "mode", &mode, "mtime_ns",
			&mtime, "size", &size, "target", &target) != 0 || mode < 0 || mode > 07777 || size < 0)
		return mf_fail(err, errsz, "entry %zu is malformed", m->n);
	if (!tier_manifest_path_ok(path))
		return mf_fail(err, errsz, "entry path '%.200s' is not inside the version", path);
	if (strcmp(type, "file") == 0)
		fmt = S_IFREG;
	else if (strcmp(type, "dir") == 0)
		fmt = S_IFDIR;
	else if (strcmp(type, "symlink") == 0 && target)
		fmt = S_IFLNK;
	else
		return mf_fail(err, errsz, "%s: unknown type '%.32s'", path, type);
	rc = tier_manifest_add_entry(m, path, fmt | (uint32_t)mode, (uint64_t)size, mtime,
				   fmt == S_IFLNK ? target : NULL, &e);
	if (rc < 0)
		return rc;
	rc = mf_decode_source(o, e, err, errsz);
	if (rc == 0 && fmt == S_IFREG)
		rc = mf_decode_extents(json_object_get(o, "extents"), e, err, errsz);
	return rc;
}

int tier_manifest_decode(const char *text, size_t len, struct tier_manifest *m, char *err, size_t errsz)
{
	const char *run, *version, *node;
	json_int_t format, sealed, seq = 0, csize;
	json_t *root, *entries, *step, *o;
	json_error_t jerr;
	size_t i;
	int rc;

	memset(m, 0, sizeof(*m));
	root = json_loadb(text, len, 0, &jerr);
	if (!root)
		return mf_fail(err, errsz, "not JSON: %s (line %d)", jerr.text, jerr.line);
	if (json_unpack(root, "{s:I,s:s,s:s,s:s,s:o,s:I,s?I,s:I,s:o}", "format", &format, "run", &run, "version",
			&version, "node", &node, "step", &step, "sealed_ns", &sealed, "seal_seq", &seq, "chunk_size",
			&csize, "entries", &entries) != 0 || !json_is_array(entries)) {
		rc = mf_fail(err, errsz, "not a pecfs manifest");
		goto out;
	}
	if (format != TIER_MANIFEST_FORMAT) {
		rc = mf_fail(err, errsz, "manifest format %lld is not supported", (long long)format);
		goto out;
	}
	rc = tier_manifest_init(m, run, version, node);
	if (rc < 0)
		goto out;
	m->step = json_is_integer(step) ? json_integer_value(step) : -1;
	m->sealed_ns = sealed;
	m->seal_seq = (uint64_t)seq;
	m->chunk_size = (uint32_t)csize;
	json_array_foreach(entries, i, o) {
		rc = mf_decode_entry(o, m, err, errsz);
		if (rc < 0)
			goto out;
	}
out:
	json_decref(root);
	if (rc < 0)
		tier_manifest_free(m);
	return rc;
}

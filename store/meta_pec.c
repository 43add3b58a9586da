/* meta_pec.c - the PEC record kinds: 'M' (a sealed version's fixed composition, the manifest JSON),
 * 'T' (the token report pending for a run), 'P' (the restarts of a run and the PLT they cost) and 'B'
 * (the upload of a run the next persist selection builds on). All are opaque JSON text to the store:
 * fs/ writes them in its seal, token, restart and persist batches and parses them. Values are the
 * record version byte followed by the text; the text is returned NUL-terminated.
 */
#include "meta_db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_codec.h"

static int meta_get_text(struct meta *m, char prefix, uint64_t id, char **out, size_t *len)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64(key, prefix, id), vlen;
	char *val, *text;
	int rc = meta_db_get(m, key, klen, &val, &vlen);

	if (rc)
		return rc;
	if (vlen < 1 || val[0] != META_RECORD_V1) {
		rocksdb_free(val);
		return -EIO;
	}
	text = malloc(vlen);
	if (!text) {
		rocksdb_free(val);
		return -ENOMEM;
	}
	memcpy(text, val + 1, vlen - 1);
	text[vlen - 1] = '\0';
	rocksdb_free(val);
	*out = text;
	*len = vlen - 1;
	return 0;
}

static void meta_put_text(struct meta_batch *b, char prefix, uint64_t id, const char *text, size_t len)
{
	uint8_t key[META_KEY_MAX], ver = META_RECORD_V1;
	size_t kl = meta_key_u64(key, prefix, id);

	meta_batch_raw_put2(b, key, kl, &ver, 1, text, len);
}

static void meta_del_key(struct meta_batch *b, char prefix, uint64_t id)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64(key, prefix, id);

	meta_batch_raw_del(b, key, kl);
}

int meta_get_manifest(struct meta *m, uint64_t version_ino, char **out, size_t *len)
{
	return meta_get_text(m, META_KEY_MANIFEST, version_ino, out, len);
}

int meta_get_tokens(struct meta *m, uint64_t run_ino, char **out, size_t *len)
{
	return meta_get_text(m, META_KEY_TOKENS, run_ino, out, len);
}

void meta_batch_put_manifest(struct meta_batch *b, uint64_t version_ino, const char *json, size_t len)
{
	meta_put_text(b, META_KEY_MANIFEST, version_ino, json, len);
}

void meta_batch_del_manifest(struct meta_batch *b, uint64_t version_ino)
{
	meta_del_key(b, META_KEY_MANIFEST, version_ino);
}

void meta_batch_put_tokens(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len)
{
	meta_put_text(b, META_KEY_TOKENS, run_ino, json, len);
}

void meta_batch_del_tokens(struct meta_batch *b, uint64_t run_ino)
{
	meta_del_key(b, META_KEY_TOKENS, run_ino);
}

int meta_get_restarts(struct meta *m, uint64_t run_ino, char **out, size_t *len)
{
	return meta_get_text(m, META_KEY_RESTARTS, run_ino, out, len);
}

void meta_batch_put_restarts(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len)
{
	meta_put_text(b, META_KEY_RESTARTS, run_ino, json, len);
}

void meta_batch_del_restarts(struct meta_batch *b, uint64_t run_ino)
{
	meta_del_key(b, META_KEY_RESTARTS, run_ino);
}

int meta_get_persist_base(struct meta *m, uint64_t run_ino, char **out, size_t *len)
{
	return meta_get_text(m, META_KEY_PERSIST_BASE, run_ino, out, len);
}

void meta_batch_put_persist_base(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len)
{
	meta_put_text(b, META_KEY_PERSIST_BASE, run_ino, json, len);
}

void meta_batch_del_persist_base(struct meta_batch *b, uint64_t run_ino)
{
	meta_del_key(b, META_KEY_PERSIST_BASE, run_ino);
}

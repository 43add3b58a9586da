/* meta_codec.h - byte layout of metadata keys and values (private to meta*.c).
 *
 * Keys: one prefix byte, then big-endian integers, so RocksDB's bytewise order is numeric order.
 * Values: a record version byte, then little-endian fixed-width fields. store/FORMAT.md is the
 * specification; this is its code. Decoders return 0 or -EIO for a record they cannot read.
 */
#ifndef PECFS_META_CODEC_H
#define PECFS_META_CODEC_H
#ifndef PECFS_STORE_INTERNAL
#error "meta_codec.h is private to store/: include meta.h"
#endif

#include <stddef.h>
#include <stdint.h>

#include "meta.h"

#define META_KEY_SUPER   'S'
#define META_KEY_INODE   'I'
#define META_KEY_DIRENT  'D'
#define META_KEY_EXTENT  'X'
#define META_KEY_SYMLINK 'L'
#define META_KEY_XATTR   'A'
#define META_KEY_CHUNK   'C'
#define META_KEY_VERSION 'V'
#define META_KEY_ORPHAN  'O'
#define META_KEY_MANIFEST 'M'
#define META_KEY_TOKENS  'T'
#define META_KEY_RESTARTS 'P'
#define META_KEY_UPLOAD  'U'
#define META_KEY_REMOTE  'R'
#define META_KEY_LINK    'N'
#define META_KEY_PERSIST_BASE 'B'

#define META_RECORD_V1 1
#define META_XATTR_NAME_MAX 255
/* A key's type byte and its first 8-byte integer (the inode, parent or run it belongs to): what
 * every per-object scan shares, and so what the prefix filters of the database hold. */
#define META_KEY_PREFIX_LEN (1 + 8)
/* Longest key: prefix + two 8-byte integers + a name. */
#define META_KEY_MAX (1 + 8 + 8 + META_NAME_MAX + 1)

/* Fixed value sizes (bytes, including the record version byte). */
#define META_SUPER_VAL_LEN   (1 + 4 + 4 + 8 + 8 + 16)
#define META_INODE_VAL_FIXED (1 + 8 + 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 2)
#define META_INODE_VAL_MAX   (META_INODE_VAL_FIXED + META_NAME_MAX + 8)  /* with a device number */
#define META_DIRENT_VAL_LEN  (1 + 8 + 4)
#define META_EXTENT_VAL_LEN  (1 + 8 + DIGEST_LEN + 8)
#define META_CHUNK_VAL_LEN   (1 + 8 + 4)
#define META_VERSION_VAL_LEN (1 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 8)
#define META_UPLOAD_VAL_LEN  (1 + 8 + 8 + 8)
#define META_REMOTE_VAL_LEN  (1 + 8)
#define META_REMOTE_PACKED_VAL_LEN (META_REMOTE_VAL_LEN + DIGEST_LEN + 8)  /* with a pack location */

/* Key builders: write into key (at least META_KEY_MAX bytes), return the key length. */
size_t meta_key_super(uint8_t *key);
size_t meta_key_u64(uint8_t *key, char prefix, uint64_t a);
size_t meta_key_u64_u64(uint8_t *key, char prefix, uint64_t a, uint64_t b);
size_t meta_key_u64_name(uint8_t *key, char prefix, uint64_t a, const char *name);
size_t meta_key_u64_u64_name(uint8_t *key, char prefix, uint64_t a, uint64_t b, const char *name);
size_t meta_key_chunk(uint8_t *key, const struct digest *d);
size_t meta_key_remote(uint8_t *key, const struct digest *d);

/* The smallest key greater than every key starting with prefix[0..len) (bytewise increment with
 * carry); returns its length, 0 when no such key exists (all bytes 0xff). */
size_t meta_key_successor(const uint8_t *prefix, size_t len, uint8_t *out);

uint64_t meta_be64_get(const uint8_t *p);

/* Value encoders return the encoded length; buffers are sized by the *_LEN constants above (inode:
 * META_INODE_VAL_MAX). */
size_t meta_val_super(uint8_t *v, const struct meta_super *s);
size_t meta_val_inode(uint8_t *v, const struct meta_inode *i);
size_t meta_val_dirent(uint8_t *v, uint64_t ino, uint32_t mode);
size_t meta_val_extent(uint8_t *v, const struct meta_extent *e);
size_t meta_val_chunk(uint8_t *v, const struct meta_chunk *c);
size_t meta_val_version(uint8_t *v, const struct meta_version *ver);
size_t meta_val_upload(uint8_t *v, const struct meta_upload *u);
size_t meta_val_remote(uint8_t *v, const struct meta_remote *r);

int meta_dec_super(const uint8_t *v, size_t len, struct meta_super *s);
int meta_dec_inode(uint64_t ino, const uint8_t *v, size_t len, struct meta_inode *i);
int meta_dec_dirent(const uint8_t *v, size_t len, uint64_t *ino, uint32_t *mode);
int meta_dec_extent(uint64_t file_off, const uint8_t *v, size_t len, struct meta_extent *e);
int meta_dec_chunk(const struct digest *d, const uint8_t *v, size_t len, struct meta_chunk *c);
int meta_dec_version(uint64_t run_ino, uint64_t ino, const uint8_t *v, size_t len,
		     struct meta_version *ver);
int meta_dec_upload(const uint8_t *v, size_t len, struct meta_upload *u);
/* A one-byte value predates bucket garbage collection: confirmed in epoch 0. A value of
 * META_REMOTE_VAL_LEN bytes names no pack (the chunk's own object); META_REMOTE_PACKED_VAL_LEN adds
 * the pack and the offset of the chunk's object in it. Any other length is -EIO. */
int meta_dec_remote(const uint8_t *v, size_t len, struct meta_remote *r);

#endif

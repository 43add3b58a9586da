/* pecfs_ioctl.h - the ioctls a client may issue on a file of a pecfs mount (store/FORMAT.md,
 * "Reference writes"). This header is the whole ABI: it needs only the kernel's and libc's headers,
 * and a program that includes it talks to any pecfs daemon that answers the same PECFS_IOC_ABI.
 *
 * PECFS_IOC_INFO (any open file of the mount): the data folder's chunk size, which is where chunk
 *   boundaries fall (file offsets that are multiples of it).
 * PECFS_IOC_REF (a file open for writing, inside an open version): "bytes [off, off + len) of this
 *   file are the stored chunk with SHA-256 digest". For each entry the daemon links the chunk if it
 *   holds it (durable, header checked, same length) and sets result to 0; otherwise result is
 *   -ENOENT and the caller writes those bytes with write(2). The whole call fails with errno EBADF
 *   (not open for writing), EROFS (version sealed), EPERM (not inside a version), EINVAL (abi or
 *   count out of range) or EIO; per entry, result is -EINVAL for an offset that is not a multiple
 *   of the chunk size or a length that is 0, over the chunk size, or short while bytes of the file
 *   lie beyond that chunk, and -EFBIG past the largest file. A linked chunk is written bytes in
 *   every respect: the file's size covers it, fsync and seal make it durable, close runs the seal
 *   triggers. A short entry (len < chunk size) is the file's tail: the file then ends at off + len.
 */
#ifndef PECFS_IOCTL_H
#define PECFS_IOCTL_H

#include <linux/ioctl.h>
#include <stdint.h>

#define PECFS_IOC_ABI 1
#define PECFS_IOC_TYPE 0xEC

struct pecfs_ioc_info {
	uint32_t abi;         /* out: PECFS_IOC_ABI */
	uint32_t chunk_size;  /* out: bytes */
	uint64_t reserved[3]; /* out: 0 */
};

#define PECFS_REF_DIGEST_LEN 32
#define PECFS_REF_MAX 256  /* entries per call: the argument must fit an ioctl's 14-bit size */

struct pecfs_ref_entry {
	uint64_t off;                          /* in: file offset, a multiple of the chunk size */
	uint32_t len;                          /* in: the chunk's length */
	int32_t result;                        /* out: 0 linked, or a negative errno (see above) */
	uint8_t digest[PECFS_REF_DIGEST_LEN];  /* in: SHA-256 of the chunk's bytes */
};

struct pecfs_ref_batch {
	uint32_t abi;     /* in: PECFS_IOC_ABI */
	uint32_t count;   /* in: entries used, 1..PECFS_REF_MAX */
	uint32_t linked;  /* out: entries whose result is 0 */
	uint32_t chunk_size;  /* out: the data folder's chunk size */
	struct pecfs_ref_entry e[PECFS_REF_MAX];
};

#define PECFS_IOC_INFO _IOR(PECFS_IOC_TYPE, 1, struct pecfs_ioc_info)
#define PECFS_IOC_REF _IOWR(PECFS_IOC_TYPE, 2, struct pecfs_ref_batch)

#endif

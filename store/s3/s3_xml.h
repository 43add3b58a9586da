/* s3_xml.h - the few S3 XML documents the client reads: Error, ListBucketResult (ListObjectsV2),
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult and ListMultipartUploadsResult.
 *
 * Parsed with expat (libexpat1-dev): a streaming parser that needs no document tree, is already on
 * every Debian system, and protects against entity expansion attacks; pecfs only ever needs a handful of
 * leaf elements. Element names are matched by their path from the root ("Error/Code"). Internal to the
 * S3 client. Thread-safe (no shared state).
 */
#ifndef PECFS_S3_XML_H
#define PECFS_S3_XML_H
#ifndef PECFS_S3_INTERNAL
#error "s3_xml.h is private to store/s3/: include s3_client.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3_client.h"

struct s3_xml_error {
	char code[64];       /* "NoSuchKey" */
	char message[256];   /* the server's message, cut to fit */
};

/* 0 when the document's root is <Error> (filling out), -EINVAL otherwise (not XML, another root).
 * CompleteMultipartUpload may answer 200 with an Error document, hence a separate check. */
int s3_xml_parse_error(const char *body, size_t len, struct s3_xml_error *out);

/* The UploadId of an InitiateMultipartUploadResult (heap string). -EINVAL when absent. */
int s3_xml_parse_upload_id(const char *body, size_t len, char **upload_id);

struct s3_xml_list_page {
	bool truncated;      /* IsTruncated */
	char *next;          /* NextContinuationToken (ListObjectsV2) or NextKeyMarker (uploads); heap */
	char *next_upload;   /* NextUploadIdMarker (uploads only); heap */
};

/* Calls cb for every Contents and CommonPrefixes entry of a ListObjectsV2 page, in document order;
 * keys are URL-decoded when the page says EncodingType url. A non-zero cb result stops the walk and
 * is returned. -EINVAL for a malformed page. page->next and next_upload must be freed by the caller. */
int s3_xml_parse_list(const char *body, size_t len, s3_list_fn cb, void *ctx, struct s3_xml_list_page *page);

/* The same for a ListMultipartUploadsResult page: cb gets each Upload (key, upload id). */
int s3_xml_parse_uploads(const char *body, size_t len, s3_upload_fn cb, void *ctx, struct s3_xml_list_page *page);

/* The Credentials of an AssumeRoleWithWebIdentityResponse into out (access key, secret, session token,
 * expiration; strings on the heap, the caller clears out). An ErrorResponse fills err and gives
 * -EINVAL, as does an answer that lacks any of the four. */
struct s3_credentials;
int s3_xml_parse_sts_credentials(const char *body, size_t len, struct s3_credentials *out, struct s3_xml_error *err);

#endif

/* s3_multipart.c - multipart upload: begin, parts, complete, abort, list leftovers, and
 * s3_put_multipart, which sends a large buffer's parts from a few threads and aborts the upload on
 * any failure so that no orphaned parts stay billed in the bucket. */
#include "s3_client_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_xml.h"

int s3_mpu_begin(struct s3_client *c, const char *key, char **upload_id, struct s3_result *res)
{
	struct s3_param q[] = { { "uploads", "" } };
	struct s3_req r = { 0 };
	int rc;

	*upload_id = NULL;
	r.method = "POST";
	r.key = key;
	r.query = q;
	r.nquery = 1;
	rc = s3_request(c, &r, res);
	if (!rc && s3_xml_parse_upload_id(r.resp.p, r.resp.len, upload_id))
		rc = s3_fail(c, res, -EPROTO, "S3 gave no upload id for s3://%s/%s", c->bucket, key);
	s3_buf_free(&r.resp);
	return rc;
}

int s3_mpu_put_part(struct s3_client *c, const char *key, const char *upload_id, unsigned number,
		    const void *data, size_t len, const char *sha256_hex, char etag[S3_ETAG_MAX],
		    struct s3_result *res)
{
	char num[16];
	struct s3_param q[] = { { "partNumber", num }, { "uploadId", upload_id } };
	struct s3_req r = { 0 };
	int rc;

	if (number < 1 || number > S3_PARTS_MAX)
		return s3_fail(c, res, -EINVAL, "part number %u outside 1..%d", number, S3_PARTS_MAX);
	snprintf(num, sizeof(num), "%u", number);
	r.method = "PUT";
	r.key = key;
	r.query = q;
	r.nquery = 2;
	r.body = data;
	r.body_len = len;
	r.payload_hash = sha256_hex;
	rc = s3_request(c, &r, res);
	if (!rc && !r.etag[0])
		rc = s3_fail(c, res, -EPROTO, "S3 gave no ETag for part %u of s3://%s/%s", number, c->bucket, key);
	if (!rc)
		snprintf(etag, S3_ETAG_MAX, "%s", r.etag);
	s3_buf_free(&r.resp);
	return rc;
}

static void s3_xml_escape(struct s3_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': s3_buf_puts(b, "&amp;"); break;
		case '<': s3_buf_puts(b, "&lt;"); break;
		case '>': s3_buf_puts(b, "&gt;"); break;
		default: s3_buf_putc(b, *s);
		}
	}
}

int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id, const struct s3_part *parts,
		    size_t nparts, struct s3_result *res)
{
	struct s3_param q[] = { { "uploadId", upload_id } };
	struct s3_header h[] = { { "Content-Type", "application/xml" } };
	struct s3_buf body = S3_BUF_INIT;
	struct s3_req r = { 0 };
	struct s3_result local;
	int rc;

	if (!res)
		res = &local;

	s3_buf_puts(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; i < nparts; i++) {
		s3_buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", parts[i].number);
		s3_xml_escape(&body, parts[i].etag);
		s3_buf_puts(&body, "</ETag></Part>");
	}
	s3_buf_puts(&body, "</CompleteMultipartUpload>");
	if (s3_buf_error(&body))
		return s3_fail(c, res, -ENOMEM, "out of memory");
	r.method = "POST";
	r.key = key;
	r.query = q;
	r.nquery = 1;
	r.headers = h;
	r.nheaders = 1;
	r.body = body.p;
	r.body_len = body.len;
	r.error_in_200 = true;
	rc = s3_request(c, &r, res);
	/* A retry after a lost answer finds the upload already gone: the object tells whether it landed. */
	if (rc == -ENOENT && res->attempts > 1 && !strcmp(res->code, "NoSuchUpload") &&
	    s3_head(c, key, NULL, NULL, NULL) == 0)
		rc = 0;
	s3_buf_free(&r.resp);
	s3_buf_free(&body);
	return rc;
}

int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id, struct s3_result *res)
{
	struct s3_param q[] = { { "uploadId", upload_id } };
	struct s3_req r = { 0 };
	int rc;

	r.method = "DELETE";
	r.key = key;
	r.query = q;
	r.nquery = 1;
	rc = s3_request(c, &r, res);
	s3_buf_free(&r.resp);
	return rc == -ENOENT ? 0 : rc;
}

int s3_mpu_list(struct s3_client *c, const char *prefix, s3_upload_fn fn, void *ctx, struct s3_result *res)
{
	char *key_marker = NULL, *id_marker = NULL;
	int rc;

	for (;;) {
		struct s3_param q[5];
		struct s3_xml_list_page page = { 0 };
		struct s3_req r = { 0 };
		size_t n = 0;

		q[n++] = (struct s3_param){ "uploads", "" };
		q[n++] = (struct s3_param){ "prefix", prefix ? prefix : "" };
		q[n++] = (struct s3_param){ "encoding-type", "url" };
		if (key_marker)
			q[n++] = (struct s3_param){ "key-marker", key_marker };
		if (id_marker)
			q[n++] = (struct s3_param){ "upload-id-marker", id_marker };
		r.method = "GET";
		r.query = q;
		r.nquery = n;
		rc = s3_request(c, &r, res);
		if (!rc) {
			rc = s3_xml_parse_uploads(r.resp.p, r.resp.len, fn, ctx, &page);
			if (rc == -EINVAL)
				rc = s3_fail(c, res, -EPROTO, "malformed S3 upload listing of s3://%s/%s", c->bucket,
					     prefix ? prefix : "");
			free(key_marker);
			free(id_marker);
			key_marker = page.next;
			id_marker = page.next_upload;
		}
		s3_buf_free(&r.resp);
		if (rc || !page.truncated)
			break;
	}
	free(key_marker);
	free(id_marker);
	return rc;
}

/* ---- s3_put_multipart ---- */

struct s3_mpu_job {
	struct s3_client *c;
	const char *key;
	const char *upload_id;
	const char *data;
	size_t len, part_size;
	unsigned nparts;
	struct s3_part *parts;

	pthread_mutex_t lock;
	unsigned next;               /* protected by lock: next part index to send */
	int err;                     /* protected by lock: first failure */
	struct s3_result err_res;    /* protected by lock: its details */
};

static void *s3_mpu_worker(void *ud)
{
	struct s3_mpu_job *j = ud;

	for (;;) {
		struct s3_result res;
		unsigned i;
		size_t off, n;
		int rc;

		pthread_mutex_lock(&j->lock);
		i = j->err ? j->nparts : j->next++;
		pthread_mutex_unlock(&j->lock);
		if (i >= j->nparts)
			return NULL;
		off = (size_t)i * j->part_size;
		n = j->len - off < j->part_size ? j->len - off : j->part_size;
		j->parts[i].number = i + 1;
		rc = s3_mpu_put_part(j->c, j->key, j->upload_id, i + 1, j->data + off, n, NULL, j->parts[i].etag,
				     &res);
		if (rc) {
			pthread_mutex_lock(&j->lock);
			if (!j->err) {
				j->err = rc;
				j->err_res = res;
			}
			pthread_mutex_unlock(&j->lock);
			return NULL;
		}
	}
}

int s3_put_multipart(struct s3_client *c, const char *key, const void *data, size_t len, size_t part_size,
		     unsigned parallel, struct s3_result *res)
{
	struct s3_mpu_job j = { 0 };
	pthread_t *threads = NULL;
	unsigned nthreads = 0, t;
	char *upload_id = NULL;
	int rc;

	if (part_size < S3_PART_MIN)
		return s3_fail(c, res, -EINVAL, "multipart part size %zu below S3's minimum %u", part_size, S3_PART_MIN);
	j.nparts = len ? (unsigned)((len + part_size - 1) / part_size) : 1;
	if ((len + part_size - 1) / part_size > S3_PARTS_MAX)
		return s3_fail(c, res, -EINVAL, "%zu bytes need more than %d parts of %zu", len, S3_PARTS_MAX, part_size);
	j.parts = calloc(j.nparts, sizeof(*j.parts));
	if (!j.parts)
		return s3_fail(c, res, -ENOMEM, "out of memory");
	rc = s3_mpu_begin(c, key, &upload_id, res);
	if (rc) {
		free(j.parts);
		return rc;
	}
	j.c = c;
	j.key = key;
	j.upload_id = upload_id;
	j.data = data;
	j.len = len;
	j.part_size = part_size;
	pthread_mutex_init(&j.lock, NULL);

	if (parallel > j.nparts)
		parallel = j.nparts;
	if (parallel > 1)
		threads = calloc(parallel - 1, sizeof(*threads));
	for (t = 0; threads && t + 1 < parallel; t++, nthreads++)
		if (pthread_create(&threads[t], NULL, s3_mpu_worker, &j))
			break;
	s3_mpu_worker(&j);                 /* the calling thread sends parts too */
	for (t = 0; t < nthreads; t++)
		pthread_join(threads[t], NULL);
	free(threads);

	rc = j.err;
	if (rc && res)
		*res = j.err_res;
	if (!rc)
		rc = s3_mpu_complete(c, key, upload_id, j.parts, j.nparts, res);
	if (rc) {
		struct s3_result abort_res;

		if (s3_mpu_abort(c, key, upload_id, &abort_res))
			s3_fail(c, NULL, rc, "abort of multipart upload of s3://%s/%s failed too: %s", c->bucket, key,
				abort_res.message);
	}
	pthread_mutex_destroy(&j.lock);
	free(j.parts);
	free(upload_id);
	return rc;
}

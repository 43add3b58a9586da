/* s3_bucket.c - bucket-level calls of the S3 client: create (tests, first set-up) and check (start-up:
 * does the bucket exist, do the credentials work). The check lists one key rather than using HEAD,
 * because only a GET answer carries the error code that tells a wrong key from clock skew. */
#include "s3_client_impl.h"

#include <errno.h>
#include <string.h>

int s3_bucket_create(struct s3_client *c, struct s3_result *res)
{
	struct s3_header h[] = { { "Content-Type", "application/xml" } };
	struct s3_buf body = S3_BUF_INIT;
	struct s3_req r = { 0 };
	int rc;

	/* us-east-1 is the one region that takes no LocationConstraint (and refuses its own name). */
	if (strcmp(c->region, "us-east-1")) {
		s3_buf_printf(&body, "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
				     "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
			      c->region);
		if (s3_buf_error(&body))
			return s3_fail(c, res, -ENOMEM, "out of memory");
		r.headers = h;
		r.nheaders = 1;
	}
	r.method = "PUT";
	r.body = body.p;
	r.body_len = body.len;
	rc = s3_request(c, &r, res);
	s3_buf_free(&r.resp);
	s3_buf_free(&body);
	return rc;
}

int s3_bucket_check(struct s3_client *c, struct s3_result *res)
{
	struct s3_param q[] = { { "list-type", "2" }, { "max-keys", "1" } };
	struct s3_req r = { 0 };
	int rc;

	r.method = "GET";
	r.query = q;
	r.nquery = 2;
	rc = s3_request(c, &r, res);
	s3_buf_free(&r.resp);
	return rc;
}

/* cli_version.c - `pecfs --version`: this build's version (project version and the git commit it
 * was built from), then the version of each library in use: libfuse, RocksDB, OpenSSL, libcurl and
 * jansson as the running process finds them (RocksDB's C API has no version call, so its version is
 * the one of the headers it was built against).
 */
#include "cli.h"

#define FUSE_USE_VERSION 34
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <openssl/crypto.h>

void cli_print_version(FILE *out)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

	fprintf(out, "pecfs %s\n", PECFS_VERSION_FULL);
	fprintf(out, "libfuse %s\n", fuse_pkgversion());
	fprintf(out, "RocksDB %s\n", PECFS_ROCKSDB_VERSION);
	fprintf(out, "%s\n", OpenSSL_version(OPENSSL_VERSION));
	fprintf(out, "libcurl %s (%s)\n", curl->version, curl->ssl_version ? curl->ssl_version : "no TLS");
	fprintf(out, "jansson %s\n", jansson_version_str());
}

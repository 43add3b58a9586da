/* pec_runcfg.c - a run's PEC settings: xattrs on the run directory, validated when set, read at seal
 * and when the plan is generated. Absent settings take the defaults of policy/ (DeepSpeed and
 * Hugging Face patterns, sequential selection with dynamic-K, keep every version).
 *   user.pec.file_patterns / user.pec.tensor_patterns  patterns, one per line (replace the defaults)
 *   user.pec.keep        retention: newest complete versions kept (0: all)
 *   user.pec.strategy    "sequential" or "load-aware"
 *   user.pec.k           K of the plan (default: the most experts of a layer the latest version wrote)
 *   user.pec.dynamic_k   "0" or "1";  user.pec.plt_budget  fraction in (0, 1]
 *   user.pec.persist     "full" or "pec": what the S3 tier uploads of the run's versions
 *   user.pec.k_persist   experts per layer an upload adds under "pec" (0 to 65536)
 *   user.pec.job         the job (one launch of the trainer) that seals the run's versions from now on
 * The two persist settings are read by the uploader (pec_runcfg_persist), which has no mount context.
 * The job is read at seal (pec_runcfg_job), which copies it onto the version for the uploader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "tier_manifest.h"

#define CFG_FILE_PATTERNS "user.pec.file_patterns"
#define CFG_TENSOR_PATTERNS "user.pec.tensor_patterns"
#define CFG_KEEP "user.pec.keep"
#define CFG_STRATEGY "user.pec.strategy"
#define CFG_K "user.pec.k"
#define CFG_DYNAMIC_K "user.pec.dynamic_k"
#define CFG_PLT_BUDGET "user.pec.plt_budget"
#define CFG_PERSIST "user.pec.persist"
#define CFG_K_PERSIST "user.pec.k_persist"
#define CFG_JOB TIER_JOB_XATTR
#define CFG_K_PERSIST_MAX 65536
#define CFG_VALUE_MAX 16384

static const char *const cfg_keys[] = { CFG_FILE_PATTERNS, CFG_TENSOR_PATTERNS, CFG_KEEP, CFG_STRATEGY,
					CFG_K, CFG_DYNAMIC_K, CFG_PLT_BUDGET, CFG_PERSIST, CFG_K_PERSIST, CFG_JOB };

bool pec_runcfg_is_key(const char *name)
{
	for (size_t i = 0; i < sizeof(cfg_keys) / sizeof(*cfg_keys); i++)
		if (strcmp(name, cfg_keys[i]) == 0)
			return true;
	return false;
}

/* Splits text (modified in place) into its non-empty lines; *out is malloc'ed. */
static int split_lines(char *text, const char ***out, size_t *n)
{
	size_t cnt = 0, cap = 8;
	const char **arr = malloc(cap * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	for (char *save = NULL, *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		size_t len = strlen(tok);
		if (len > 0 && tok[len - 1] == '\r')
			tok[--len] = '\0';
		if (len == 0)
			continue;
		if (cnt == cap) {
			const char **na = realloc(arr, (cap *= 2) * sizeof(*arr));
			if (!na) {
				free(arr);
				return -ENOMEM;
			}
			arr = na;
		}
		arr[cnt++] = tok;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* The persist settings: *pec from "full" / "pec", *k from a count. -EINVAL. */
static int parse_persist(const char *name, const char *value, bool *pec, uint32_t *k)
{
	if (strcmp(name, CFG_K_PERSIST) == 0)
		return parse_u32(value, 0, CFG_K_PERSIST_MAX, k);
	if (strcmp(value, "full") != 0 && strcmp(value, "pec") != 0)
		return -EINVAL;
	*pec = strcmp(value, "pec") == 0;
	return 0;
}

/* Checks one setting's NUL-terminated value; fills cfg when it is not NULL. */
static int apply(const char *name, char *value, struct pec_runcfg *cfg)
{
	struct pec_runcfg scratch;
	if (!cfg) {
		memset(&scratch, 0, sizeof(scratch));
		pec_plan_config_default(&scratch.plan);
		cfg = &scratch;
	}
	if (strcmp(name, CFG_KEEP) == 0)
		return parse_u32(value, 0, UINT32_MAX, &cfg->keep);
	if (strcmp(name, CFG_JOB) == 0)
		return tier_job_ok(value) ? 0 : -EINVAL;  /* checked only: pec_runcfg_job reads it */
	if (strcmp(name, CFG_PERSIST) == 0 || strcmp(name, CFG_K_PERSIST) == 0) {
		bool pec;
		uint32_t k;
		return parse_persist(name, value, &pec, &k);  /* checked only: pec_runcfg_persist reads them */
	}
	if (strcmp(name, CFG_K) == 0) {
		int rc = parse_u32(value, 1, PEC_MAX_EXPERT + 1, &cfg->plan.k);
		cfg->k_set |= rc == 0;
		return rc;
	}
	if (strcmp(name, CFG_STRATEGY) == 0)
		return pec_select_strategy_parse(value, &cfg->plan.strategy);
	if (strcmp(name, CFG_DYNAMIC_K) == 0) {
		uint32_t v;
		int rc = parse_u32(value, 0, 1, &v);
		if (rc == 0)
			cfg->plan.dynamic_k = v == 1;
		return rc;
	}
	if (strcmp(name, CFG_PLT_BUDGET) == 0) {
		char *end;
		double v = strtod(value, &end);
		if (end == value || *end || !(v > 0 && v <= 1))
			return -EINVAL;
		cfg->plan.plt_budget = v;
		return 0;
	}
	bool file = strcmp(name, CFG_FILE_PATTERNS) == 0;
	if (!file && strcmp(name, CFG_TENSOR_PATTERNS) != 0)
		return -EINVAL;
	const char **pats;
	size_t n;
	int rc = split_lines(value, &pats, &n);
	if (rc < 0)
		return rc;
	struct pec_patterns p = { .file = file ? pats : NULL, .n_file = file ? n : 0,
				  .tensor = file ? NULL : pats, .n_tensor = file ? 0 : n };
	rc = pec_patterns_validate(&p, NULL, 0);
	if (rc == 0 && cfg != &scratch) {
		if (file) {
			cfg->file_text = value;
			cfg->file_pats = pats;
			cfg->pats.file = pats;
			cfg->pats.n_file = n;
		} else {
			cfg->tensor_text = value;
			cfg->tensor_pats = pats;
			cfg->pats.tensor = pats;
			cfg->pats.n_tensor = n;
		}
		return 1;  /* the caller must not free value: cfg keeps it */
	}
	free(pats);
	return rc;
}

int pec_runcfg_validate(const char *name, const char *value, size_t size)
{
	if (size > CFG_VALUE_MAX || memchr(value, '\0', size))
		return -EINVAL;
	char *copy = strndup(value, size);
	if (!copy)
		return -ENOMEM;
	int rc = apply(name, copy, NULL);
	free(copy);
	return rc < 0 ? rc : 0;
}

int pec_runcfg_load(struct fs_ctx *ctx, uint64_t run_ino, struct pec_runcfg *out)
{
	memset(out, 0, sizeof(*out));
	out->pats = *pec_patterns_default();
	pec_plan_config_default(&out->plan);
	for (size_t i = 0; i < sizeof(cfg_keys) / sizeof(*cfg_keys); i++) {
		int len = meta_get_xattr(ctx->meta, run_ino, cfg_keys[i], NULL, 0);
		if (len == -ENODATA)
			continue;
		if (len < 0 || len > CFG_VALUE_MAX) {
			pec_runcfg_free(out);
			return len < 0 ? len : -EINVAL;
		}
		char *val = calloc(1, (size_t)len + 1);
		if (!val) {
			pec_runcfg_free(out);
			return -ENOMEM;
		}
		meta_get_xattr(ctx->meta, run_ino, cfg_keys[i], val, (size_t)len);
		int rc = apply(cfg_keys[i], val, out);
		if (rc != 1)
			free(val);
		if (rc < 0)
			pecfs_log_warn("run %llu: ignoring invalid setting %s", (unsigned long long)run_ino,
				       cfg_keys[i]);
	}
	return 0;
}

/* One persist setting of the run into *pec or *k; absent or invalid leaves them as they are. */
static void persist_load(struct meta *m, uint64_t run_ino, const char *name, bool *pec, uint32_t *k)
{
	char val[32];
	int len = meta_get_xattr(m, run_ino, name, val, sizeof(val) - 1);

	if (len == -ENODATA)
		return;
	if (len >= 0 && (size_t)len < sizeof(val)) {
		bool p = *pec;
		uint32_t n = *k;
		val[len] = '\0';
		if (parse_persist(name, val, &p, &n) == 0) {
			*pec = p;
			*k = n;
			return;
		}
	}
	pecfs_log_warn("run %llu: ignoring invalid setting %s", (unsigned long long)run_ino, name);
}

void pec_runcfg_persist(struct meta *m, uint64_t run_ino, bool *pec, uint32_t *k_persist)
{
	persist_load(m, run_ino, CFG_PERSIST, pec, k_persist);
	persist_load(m, run_ino, CFG_K_PERSIST, pec, k_persist);
}

void pec_runcfg_job(struct fs_ctx *ctx, uint64_t run_ino, char *job)
{
	int rc = tier_job_read(ctx->meta, run_ino, job);

	if (rc == 0)
		return;
	if (rc != -ENODATA)
		pecfs_log_warn("run %llu: ignoring invalid setting %s", (unsigned long long)run_ino, CFG_JOB);
	snprintf(job, TIER_JOB_MAX + 1, "%s", ctx->cfg->s3_job);
}

void pec_runcfg_free(struct pec_runcfg *c)
{
	free(c->file_text);
	free(c->tensor_text);
	free(c->file_pats);
	free(c->tensor_pats);
	memset(c, 0, sizeof(*c));
}

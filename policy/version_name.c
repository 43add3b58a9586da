/* version_name.c - reading steps, temporary names and tracker files out of version names.
 *
 * Pure string logic (see version_name.h). Names are matched case-insensitively for their keywords
 * ("Step-100" is step 100) and never allocate; anything that does not parse cleanly carries no step,
 * because a wrong step would misorder versions while a missing one only falls back to creation order.
 */
#include "version_name.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Steps above this are not plausible and would overflow int64_t when parsed. */
#define VN_MAX_DIGITS 18

static bool vn_has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Length of name without its temporary suffix (".tmp", ".tmp-<anything>", ".partial",
 * ".incomplete"); the whole length when it has none. */
static size_t vn_stem_len(const char *name)
{
	size_t len = strlen(name);
	const char *tmp = strstr(name, ".tmp-");

	if (tmp != NULL && tmp > name)
		return (size_t)(tmp - name);
	if (vn_has_suffix(name, len, ".tmp"))
		return len - 4;
	if (vn_has_suffix(name, len, ".partial"))
		return len - 8;
	if (vn_has_suffix(name, len, ".incomplete"))
		return len - 11;
	return len;
}

/* Parses s[0..len) as a decimal number of at most VN_MAX_DIGITS digits; -1 when it is not one. */
static int64_t vn_parse_digits(const char *s, size_t len)
{
	int64_t v = 0;

	if (len == 0 || len > VN_MAX_DIGITS)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* True when the keyword kw ends exactly at position end of s and starts at a word boundary (the start
 * of the name or after a character that is not a letter or digit, so "global_step" and "epoch_3-step"
 * count but "misstep" does not). */
static bool vn_keyword_ends_at(const char *s, size_t end, const char *kw)
{
	size_t n = strlen(kw);

	if (end < n || strncasecmp(s + end - n, kw, n) != 0)
		return false;
	return end == n || !isalnum((unsigned char)s[end - n - 1]);
}

int64_t version_name_step(const char *name)
{
	static const char *const keywords[] = { "step", "iter", "checkpoint" };
	size_t len, digits_at, kw_end;

	if (name == NULL)
		return -1;
	len = vn_stem_len(name);

	/* The name must end in digits ... */
	digits_at = len;
	while (digits_at > 0 && isdigit((unsigned char)name[digits_at - 1]))
		digits_at--;
	if (digits_at == len)
		return -1;

	/* ... preceded by a keyword, optionally joined to them by one '-' or '_'. */
	kw_end = digits_at;
	if (kw_end > 0 && (name[kw_end - 1] == '-' || name[kw_end - 1] == '_'))
		kw_end--;
	for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
		if (vn_keyword_ends_at(name, kw_end, keywords[k]))
			return vn_parse_digits(name + digits_at, len - digits_at);
	return -1;
}

bool version_name_is_temporary(const char *name)
{
	size_t len;

	if (name == NULL || name[0] == '\0')
		return false;
	if (name[0] == '.' || strncmp(name, "tmp", 3) == 0)
		return true;
	len = strlen(name);
	return vn_stem_len(name) != len;
}

bool version_name_is_tracker(const char *name)
{
	return name != NULL &&
	       (strcmp(name, "latest") == 0 || strcmp(name, "latest_checkpointed_iteration.txt") == 0);
}

bool version_name_tracker_names(const char *tracker_name, const char *content, size_t len,
				const char *version_name)
{
	size_t start = 0, end = len;
	int64_t iteration, step;

	if (!version_name_is_tracker(tracker_name) || content == NULL || version_name == NULL)
		return false;
	while (start < end && isspace((unsigned char)content[start]))
		start++;
	while (end > start && isspace((unsigned char)content[end - 1]))
		end--;
	if (start == end)
		return false;

	if (strcmp(tracker_name, "latest") == 0) {
		/* DeepSpeed: the tag is the directory name itself. */
		return strlen(version_name) == end - start &&
		       memcmp(version_name, content + start, end - start) == 0;
	}

	/* Megatron: an iteration number ("release" and anything else name nothing). A temporary
	 * directory is never the one a tracker names: the tracker is written after the final one. */
	iteration = vn_parse_digits(content + start, end - start);
	if (iteration < 0 || version_name_is_temporary(version_name))
		return false;
	step = version_name_step(version_name);
	return step >= 0 && step == iteration;
}

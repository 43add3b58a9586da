/* pec_err.h - the one helper the PEC policy files share for error messages: a formatted, always
 * NUL-terminated one-line reason written into a caller's buffer (which may be NULL or zero-sized).
 * Internal to policy/; not part of any module's contract.
 */
#ifndef PECFS_PEC_ERR_H
#define PECFS_PEC_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Writes the reason and returns code, so a failure is one statement: return pec_err(err, n, -EINVAL, ...). */
__attribute__((format(printf, 4, 5)))
static inline int pec_err(char *err, size_t errsz, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return code;
}

#endif

/* version_name.h - what the names in a run directory say: a version's step number, whether a name is
 * a temporary one a framework renames into place, and which version a framework's tracker file
 * names. Pure functions: no I/O, no allocation, thread-safe.
 */
#ifndef PECFS_VERSION_NAME_H
#define PECFS_VERSION_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Step number carried by a version directory's name, or -1 when it carries none. Recognised:
 * "global_step1200" (DeepSpeed), "step-1200", "step_1200", "step1200", "iter_0001200" (Megatron),
 * "checkpoint-1200" (Hugging Face Trainer), "epoch_3-step_1200"-style names take the step part.
 * A temporary suffix (".tmp") is ignored: "step-1200.tmp" is step 1200. */
int64_t version_name_step(const char *name);

/* True for the names frameworks give a directory before renaming it into place: ending in ".tmp",
 * ".tmp-<anything>", ".partial", ".incomplete", or starting with "tmp" / "." (hidden). */
bool version_name_is_temporary(const char *name);

/* True when a file with this name, directly inside a run directory, is a framework tracker file:
 * "latest" (DeepSpeed) or "latest_checkpointed_iteration.txt" (Megatron). */
bool version_name_is_tracker(const char *name);

/* Given a tracker file's content (not NUL-terminated, len bytes), decides whether it names the version
 * directory `name`: DeepSpeed's `latest` holds the tag ("global_step1200"), compared after trimming
 * whitespace; Megatron's file holds the iteration ("1200"), which names the version whose step is
 * 1200 when the version's name has a step. */
bool version_name_tracker_names(const char *tracker_name, const char *content, size_t len,
				const char *version_name);

#endif

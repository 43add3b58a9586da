/* digest_table.c - see digest_table.h. */
#include "digest_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t home_of(const struct digest_table *t, const struct digest *d)
{
	uint64_t h;
	memcpy(&h, d->b, sizeof(h));  /* a SHA-256 is uniformly distributed already */
	return h & (t->cap - 1);
}

static size_t slot_of(const struct digest_table *t, const struct digest *d)
{
	size_t i = home_of(t, d);
	while (t->slots[i].refs && !digest_equal(&t->slots[i].d, d))
		i = (i + 1) & (t->cap - 1);
	return i;
}

static int grow(struct digest_table *t)
{
	struct digest_table bigger = { .cap = t->cap ? t->cap * 2 : 64 };

	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].refs)
			bigger.slots[slot_of(&bigger, &t->slots[i].d)] = t->slots[i];
	free(t->slots);
	t->slots = bigger.slots;
	t->cap = bigger.cap;
	return 0;
}

int digest_table_add(struct digest_table *t, const struct digest *d, uint64_t len, bool *fresh)
{
	if ((t->n + 1) * 2 > t->cap) {
		int rc = grow(t);
		if (rc < 0)
			return rc;
	}
	struct digest_slot *s = &t->slots[slot_of(t, d)];
	bool is_new = s->refs == 0;
	if (is_new) {
		*s = (struct digest_slot){ .d = *d, .len = len };
		t->n++;
		t->len_sum += len;
	}
	s->refs++;
	if (fresh)
		*fresh = is_new;
	return 0;
}

/* Empties slot i, moving later slots of its probe run back so every lookup still finds them. */
static void remove_at(struct digest_table *t, size_t i)
{
	size_t j = i;

	t->slots[i].refs = 0;
	for (;;) {
		j = (j + 1) & (t->cap - 1);
		if (!t->slots[j].refs)
			return;
		size_t home = home_of(t, &t->slots[j].d);
		/* j's entry can fill the hole at i unless its home lies cyclically in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			t->slots[i] = t->slots[j];
			t->slots[j].refs = 0;
			i = j;
		}
	}
}

int digest_table_drop(struct digest_table *t, const struct digest *d)
{
	if (t->cap == 0)
		return -ENOENT;
	size_t i = slot_of(t, d);
	struct digest_slot *s = &t->slots[i];
	if (!s->refs)
		return -ENOENT;
	if (--s->refs == 0) {
		t->len_sum -= s->len;
		t->n--;
		remove_at(t, i);
	}
	return 0;
}

bool digest_table_has(const struct digest_table *t, const struct digest *d)
{
	return t->cap && t->slots[slot_of(t, d)].refs;
}

bool digest_table_get(const struct digest_table *t, const struct digest *d, uint64_t *len)
{
	const struct digest_slot *s = t->cap ? &t->slots[slot_of(t, d)] : NULL;

	if (!s || !s->refs)
		return false;
	*len = s->len;
	return true;
}

int digest_table_set_len(struct digest_table *t, const struct digest *d, uint64_t len)
{
	struct digest_slot *s = t->cap ? &t->slots[slot_of(t, d)] : NULL;

	if (!s || !s->refs)
		return -ENOENT;
	t->len_sum = t->len_sum - s->len + len;
	s->len = len;
	return 0;
}

uint64_t digest_table_len_outside(const struct digest_table *t, const struct digest_table *other)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].refs && !digest_table_has(other, &t->slots[i].d))
			sum += t->slots[i].len;
	return sum;
}

void digest_table_free(struct digest_table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: which CBT epochs lie between two volumes (src/sr/cbt-history.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cbt-history.h"

static json_object *vol(const char *history_json)
{
	json_object *v = json_object_new_object();

	if (history_json)
		json_object_object_add(v, "cbt_history",
				       json_tokener_parse(history_json));
	return v;
}

/* the names in 'need', sorted, joined by ',' */
static void names(json_object *need, char *out, size_t len)
{
	const char *v[16];
	size_t n = 0, i, j;

	out[0] = '\0';
	{
		json_object_object_foreach(need, k, val) {
			(void)val;
			v[n++] = k;
		}
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(v[j], v[i]) < 0) {
				const char *t = v[i];

				v[i] = v[j];
				v[j] = t;
			}
	for (i = 0; i < n; i++) {
		strncat(out, v[i], len - strlen(out) - 1);
		if (i + 1 < n)
			strncat(out, ",", len - strlen(out) - 1);
	}
}

static void expect(const char *a, const char *b, int err, const char *want,
		   int later_is_b)
{
	json_object *va = vol(a), *vb = vol(b), *need = NULL, *later = NULL;
	char got[256];
	int r = cbt_epochs_between(va, vb, &need, &later);

	assert_int_equal(r, err);
	if (err == 0) {
		names(need, got, sizeof(got));
		assert_string_equal(got, want);
		assert_ptr_equal(later, later_is_b ? vb : va);
	} else {
		assert_null(need);
	}
	json_object_put(need);
	json_object_put(va);
	json_object_put(vb);
}

static void test_between(void **state)
{
	(void)state;
	/* snapshot S1 after epoch e1, S2 after e2, the live volume in e3 */
	expect("[\"e1\"]", "[\"e1\",\"e2\"]", 0, "e2", 1);
	expect("[\"e1\"]", "[\"e1\",\"e2\",\"e3\"]", 0, "e2,e3", 1);
	/* either order */
	expect("[\"e1\",\"e2\",\"e3\"]", "[\"e1\"]", 0, "e2,e3", 0);
	/* the same point: nothing changed */
	expect("[\"e1\",\"e2\"]", "[\"e1\",\"e2\"]", 0, "", 1);
}

static void test_unrelated(void **state)
{
	(void)state;
	/* no CBT, or enabled on a snapshot after the fact: no history */
	expect(NULL, "[\"e1\"]", -EINVAL, NULL, 0);
	expect("[]", "[\"e1\"]", -EINVAL, NULL, 0);
	/* disabled and enabled again: a new line */
	expect("[\"e1\",\"e2\"]", "[\"f1\",\"f2\",\"f3\"]", -EINVAL, NULL, 0);
	/* diverging lines (a clone that enabled CBT) */
	expect("[\"e1\",\"e2\"]", "[\"e1\",\"x2\",\"x3\"]", -EINVAL, NULL, 0);
	/* a damaged record: non-string entries never match */
	expect("[1]", "[1,\"e2\"]", -EINVAL, NULL, 0);
	expect("[\"e1\"]", "[\"e1\",7]", -EINVAL, NULL, 0);
	expect("\"e1\"", "[\"e1\"]", -EINVAL, NULL, 0);
}

static void test_copy(void **state)
{
	json_object *v = vol("[\"e1\",\"e2\"]"), *c;

	(void)state;
	c = cbt_history_copy(v);
	assert_int_equal(json_object_array_length(c), 2);
	assert_string_equal(json_object_get_string(
		json_object_array_get_idx(c, 1)), "e2");
	json_object_put(c);
	json_object_put(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_between),
		cmocka_unit_test(test_unrelated),
		cmocka_unit_test(test_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: request parsing, typed getters and error records. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "call.h"
#include "json-io.h"

static json_object *parse(const char *s)
{
	json_object *o = NULL;

	assert_int_equal(json_parse_exact(s, strlen(s), &o), 0);
	return o;
}

static void test_parse_exact(void **state)
{
	json_object *o = NULL;

	(void)state;
	json_object_put(parse("{\"a\":1}"));
	json_object_put(parse(" {\"a\":1}\n "));
	assert_int_equal(json_parse_exact("null", 4, &o), -EINVAL);
	assert_int_equal(json_parse_exact("{\"a\":1} x", 9, &o), -EINVAL);
	assert_int_equal(json_parse_exact("{\"a\":1}{}", 9, &o), -EINVAL);
	assert_int_equal(json_parse_exact("{\"a\":", 5, &o), -EINVAL);
	assert_int_equal(json_parse_exact("", 0, &o), -EINVAL);
	assert_int_equal(json_parse_exact("{\"a\":1}\0", 8, &o), -EINVAL);
}

static void test_getters(void **state)
{
	json_object *o = parse("{\"s\":\"x\",\"n\":\"a\\u0000b\",\"i\":42,"
			       "\"f\":1.5,\"big\":99999999999999999999,"
			       "\"b\":true,\"m\":{\"k\":\"v\"},\"bm\":{\"k\":1},"
			       "\"z\":null}");
	const char *s;
	int64_t i;
	bool b;
	json_object *m;

	(void)state;
	assert_int_equal(json_get_string(o, "s", &s), 0);
	assert_string_equal(s, "x");
	assert_int_equal(json_get_string(o, "n", &s), -EINVAL); /* NUL */
	assert_int_equal(json_get_string(o, "i", &s), -EINVAL);
	assert_int_equal(json_get_string(o, "missing", &s), -ENOENT);
	assert_int_equal(json_get_string(o, "z", &s), -ENOENT);
	assert_int_equal(json_get_int64(o, "i", &i), 0);
	assert_int_equal(i, 42);
	assert_int_equal(json_get_int64(o, "f", &i), -EINVAL);
	assert_int_equal(json_get_int64(o, "s", &i), -EINVAL);
	assert_int_equal(json_get_int64(o, "big", &i), -EINVAL); /* clamped */
	assert_int_equal(json_get_bool(o, "b", &b), 0);
	assert_true(b);
	assert_int_equal(json_get_bool(o, "i", &b), -EINVAL);
	assert_int_equal(json_get_string_map(o, "m", &m), 0);
	assert_int_equal(json_get_string_map(o, "bm", &m), -EINVAL);
	assert_int_equal(json_get_string_map(o, "s", &m), -EINVAL);
	json_object_put(o);
}

static void test_error_record(void **state)
{
	struct call c = { 0 };
	json_object *rec, *params, *bt;

	(void)state;
	assert_int_equal(call_fail(&c, -ENOENT, "Volume_does_not_exist",
				   "no volume %s", "k"), -ENOENT);
	/* the first error is kept */
	call_fail(&c, -EIO, "Other", "ignored");
	rec = call_error_record(&c);
	assert_string_equal(json_object_get_string(
		json_object_object_get(rec, "code")), "SR_BACKEND_FAILURE");
	params = json_object_object_get(rec, "params");
	assert_int_equal(json_object_array_length(params), 2);
	assert_string_equal(json_object_get_string(
		json_object_array_get_idx(params, 0)), "Volume_does_not_exist");
	assert_string_equal(json_object_get_string(
		json_object_array_get_idx(params, 1)), "no volume k");
	bt = json_object_object_get(rec, "backtrace");
	assert_non_null(json_object_object_get(bt, "error"));
	assert_int_equal(json_object_array_length(
		json_object_object_get(bt, "files")), 0);
	assert_int_equal(json_object_array_length(
		json_object_object_get(bt, "lines")), 0);
	json_object_put(rec);
}

static void test_activated_elsewhere(void **state)
{
	struct call c = { 0 };
	json_object *rec, *params;

	(void)state;
	call_fail(&c, -EBUSY, "Activated_on_another_host", "busy");
	strcpy(c.err_param, "host-uuid");
	rec = call_error_record(&c);
	params = json_object_object_get(rec, "params");
	/* xapi matches exactly ["Activated_on_another_host", host] */
	assert_string_equal(json_object_get_string(
		json_object_array_get_idx(params, 1)), "host-uuid");
	json_object_put(rec);
}

static void test_integers_stay_integers(void **state)
{
	json_object *o = json_new_object();

	(void)state;
	json_add_int64(o, "size", 5497558138880LL);
	assert_string_equal(json_to_text(o), "{\"size\":5497558138880}");
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_exact),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_error_record),
		cmocka_unit_test(test_activated_elsewhere),
		cmocka_unit_test(test_integers_stay_integers),
	};

	return cmocka_run_group_tests_name("json-io", tests, NULL, NULL) ? 1 : 0;
}

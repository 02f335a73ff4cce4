/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: keys, UUIDs and free-text validation (src/util/names.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "names.h"

static void test_uuid_valid(void **state)
{
	(void)state;
	assert_true(uuid_is_valid("3c0e3e2f-1b2c-4d5e-8f90-0123456789ab"));
	assert_true(uuid_is_valid("3C0E3E2F-1B2C-4D5E-8F90-0123456789AB"));
	assert_false(uuid_is_valid(""));
	assert_false(uuid_is_valid("3c0e3e2f-1b2c-4d5e-8f90-0123456789a"));
	assert_false(uuid_is_valid("3c0e3e2f-1b2c-4d5e-8f90-0123456789abc"));
	assert_false(uuid_is_valid("3c0e3e2f_1b2c-4d5e-8f90-0123456789ab"));
	assert_false(uuid_is_valid("3c0e3e2g-1b2c-4d5e-8f90-0123456789ab"));
}

static void test_uuid_generate(void **state)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN];

	(void)state;
	assert_int_equal(uuid_generate(a), 0);
	assert_int_equal(uuid_generate(b), 0);
	assert_true(volume_key_is_valid(a));
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');	/* version 4 */
	assert_non_null(strchr("89ab", a[19]));	/* RFC 4122 variant */
}

static void test_volume_keys(void **state)
{
	(void)state;
	assert_true(volume_key_is_valid("3c0e3e2f-1b2c-4d5e-8f90-0123456789ab"));
	/* keys we mint are lower case: upper case is someone else's */
	assert_false(volume_key_is_valid("3C0E3E2F-1B2C-4D5E-8F90-0123456789AB"));
	assert_false(volume_key_is_valid("../3c0e3e2f-1b2c-4d5e-8f90-01234567"));
	assert_false(volume_key_is_valid(".."));
	assert_false(volume_key_is_valid("a/b"));
	assert_false(volume_key_is_valid("/etc/passwd"));
	assert_false(volume_key_is_valid(""));
}

static void test_text(void **state)
{
	char big[TEXT_MAX + 2];

	(void)state;
	assert_null(text_check("plain", 5, TEXT_MAX));
	assert_null(text_check("", 0, TEXT_MAX));
	assert_null(text_check("web/db .. ✓", strlen("web/db .. ✓"), TEXT_MAX));
	assert_null(text_check("tab\there", 8, TEXT_MAX));
	/* multi-line descriptions from XenCenter and imported VMs */
	assert_null(text_check("line 1\r\nline 2\n\tend", 19, TEXT_MAX));
	assert_null(text_check("a\x7f\x01", 3, TEXT_MAX));
	assert_non_null(text_check("a\0b", 3, TEXT_MAX));
	assert_non_null(text_check("\xff", 1, TEXT_MAX));	/* not UTF-8 */
	assert_non_null(text_check("\xc0\xaf", 2, TEXT_MAX));	/* overlong */
	assert_non_null(text_check("\xed\xa0\x80", 3, TEXT_MAX)); /* surrogate */
	assert_non_null(text_check("\xe2\x9c", 2, TEXT_MAX));	/* truncated */
	memset(big, 'x', sizeof(big));
	assert_null(text_check(big, TEXT_MAX, TEXT_MAX));
	assert_non_null(text_check(big, TEXT_MAX + 1, TEXT_MAX));
}

static void test_utf8_sanitize(void **state)
{
	char a[] = "ok \xc3\xa9 \xff bad", b[] = "cut \xe2\x9c", c[16];

	(void)state;
	utf8_sanitize(a, sizeof(a));
	assert_string_equal(a, "ok \xc3\xa9 ? bad");
	utf8_sanitize(b, sizeof(b));
	assert_string_equal(b, "cut ");
	/* truncation by snprintf in the middle of a character */
	snprintf(c, 7, "ab\xe2\x9c\x93\xe2\x9c\x93");
	utf8_sanitize(c, sizeof(c));
	assert_string_equal(c, "ab\xe2\x9c\x93");
	assert_null(text_check(a, strlen(a), TEXT_MAX));
	assert_null(text_check(c, strlen(c), TEXT_MAX));
}

static void test_key_names(void **state)
{
	char big[KEY_NAME_MAX + 1];

	(void)state;
	assert_null(key_name_check("vdi-type", 8));
	assert_null(key_name_check("_sm_config_foo", 14));
	assert_non_null(key_name_check("", 0));
	/* VDI.snapshot copies tags as "tags"^tag: free text */
	assert_null(key_name_check("tagsmy backup tag", 17));
	assert_null(key_name_check("tags\xc3\xa9-\xc3\xbc", 9));
	assert_null(key_name_check("../../etc/passwd", 16));	/* never a path */
	assert_non_null(key_name_check("a\0b", 3));
	assert_non_null(key_name_check("\xff", 1));
	memset(big, 'k', sizeof(big));
	assert_null(key_name_check(big, KEY_NAME_MAX));
	assert_non_null(key_name_check(big, KEY_NAME_MAX + 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_valid),
		cmocka_unit_test(test_uuid_generate),
		cmocka_unit_test(test_volume_keys),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_key_names),
		cmocka_unit_test(test_utf8_sanitize),
	};

	return cmocka_run_group_tests_name("names", tests, NULL, NULL) ? 1 : 0;
}

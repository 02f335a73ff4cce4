/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Unit tests of the xenstore value checks of the Xen transport
 * (src/server/blkif/xenbus.c): what a guest writes in its frontend
 * directory is untrusted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server/blkif-ring.h"
#include "server/blkif-xenbus.h"

static void test_uint(void **state)
{
	unsigned long long v = 99;

	(void)state;
	assert_int_equal(xb_parse_uint("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(xb_parse_uint("4294967295", UINT32_MAX, &v), 0);
	assert_int_equal(v, 4294967295ULL);
	assert_int_equal(xb_parse_uint("18446744073709551615", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	v = 7;
	/* one past the bound, and past 2^64 */
	assert_int_equal(xb_parse_uint("4294967296", UINT32_MAX, &v), -EINVAL);
	assert_int_equal(xb_parse_uint("18446744073709551616", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(xb_parse_uint("5", 4, &v), -EINVAL);
	/* shapes strtoul would take */
	const char *bad[] = { "", "-1", "+1", " 1", "1 ", "0x10", "010", "1a",
			      "00", "1\n", "123456789012345678901" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(xb_parse_uint(bad[i], UINT64_MAX, &v), -EINVAL);
	assert_int_equal(xb_parse_uint(NULL, 1, &v), -EINVAL);
	assert_int_equal(v, 7);	/* untouched on error */
}

static void test_state_domid(void **state)
{
	enum xenbus_state st;
	unsigned int d;

	(void)state;
	assert_int_equal(xb_parse_state("4", &st), 0);
	assert_int_equal(st, XB_CONNECTED);
	assert_int_equal(xb_parse_state("8", &st), 0);
	assert_int_equal(xb_parse_state("9", &st), -EINVAL);
	assert_int_equal(xb_parse_state("-1", &st), -EINVAL);
	assert_int_equal(xb_parse_domid("0", &d), 0);
	assert_int_equal(xb_parse_domid("32751", &d), 0);	/* 0x7FEF */
	assert_int_equal(d, 0x7FEF);
	assert_int_equal(xb_parse_domid("32752", &d), -EINVAL);	/* DOMID_FIRST_RESERVED */
	assert_int_equal(xb_parse_domid("65535", &d), -EINVAL);
}

static void test_ring_ref_key(void **state)
{
	char k[16];

	(void)state;
	/* no ring-page-order key: the single page is "ring-ref" */
	assert_int_equal(xb_ring_ref_key(false, 0, 0, k, sizeof(k)), 0);
	assert_string_equal(k, "ring-ref");
	/* ring-page-order present, even 0: numbered keys */
	assert_int_equal(xb_ring_ref_key(true, 0, 0, k, sizeof(k)), 0);
	assert_string_equal(k, "ring-ref0");
	assert_int_equal(xb_ring_ref_key(true, 4, 15, k, sizeof(k)), 0);
	assert_string_equal(k, "ring-ref15");
	assert_int_equal(xb_ring_ref_key(true, 4, 16, k, sizeof(k)), -EINVAL);
	assert_int_equal(xb_ring_ref_key(true, 0, 1, k, sizeof(k)), -EINVAL);
	assert_int_equal(xb_ring_ref_key(true, BLKIF_MAX_RING_PAGE_ORDER + 1,
					 0, k, sizeof(k)), -EINVAL);
	assert_int_equal(xb_ring_ref_key(true, 4, 15, k, 10), -EINVAL);
}

static void test_frontend_path(void **state)
{
	(void)state;
	assert_true(xb_frontend_path_ok("/local/domain/3/device/vbd/51712", 3));
	assert_true(xb_frontend_path_ok("/local/domain/3/device/vbd/0", 3));
	assert_false(xb_frontend_path_ok("/local/domain/4/device/vbd/51712", 3));
	assert_false(xb_frontend_path_ok("/local/domain/3/device/vbd/", 3));
	assert_false(xb_frontend_path_ok("/local/domain/3/device/vbd/5/x", 3));
	assert_false(xb_frontend_path_ok("/local/domain/3/device/vif/0", 3));
	assert_false(xb_frontend_path_ok("/local/domain/0/backend/vbd/3/1", 3));
	assert_false(xb_frontend_path_ok("/local/domain/33/device/vbd/1", 3));
	assert_false(xb_frontend_path_ok(NULL, 3));
}

static void test_protocol(void **state)
{
	enum blkif_abi abi;

	(void)state;
	assert_int_equal(blkif_abi_from_protocol(NULL, &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_NATIVE);
	assert_int_equal(blkif_abi_from_protocol("x86_32-abi", &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_X86_32);
	assert_int_equal(blkif_abi_from_protocol("x86_64-abi", &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_X86_64);
	assert_int_equal(blkif_abi_from_protocol("arm-abi", &abi), -EINVAL);
	assert_int_equal(blkif_abi_from_protocol("", &abi), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_state_domid),
		cmocka_unit_test(test_ring_ref_key),
		cmocka_unit_test(test_frontend_path),
		cmocka_unit_test(test_protocol),
	};

	return cmocka_run_group_tests_name("blkif-xenbus", tests, NULL, NULL) ? 1 : 0;
}

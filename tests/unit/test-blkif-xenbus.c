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

static void test_expect_parse(void **state)
{
	struct xb_expect e;

	(void)state;
	assert_int_equal(xb_expect_parse("7:w:0f8d2c1e-aaaa:3b2c-key", &e), 0);
	assert_int_equal(e.domid, 7);
	assert_false(e.readonly);
	assert_string_equal(e.sr, "0f8d2c1e-aaaa");
	assert_string_equal(e.key, "3b2c-key");
	assert_int_equal(xb_expect_parse("32751:r:s:k", &e), 0);
	assert_true(e.readonly);
	const char *bad[] = { NULL, "", "7", "7:w", "7:w:s", "7:w:s:",
			      "7:w::k", "0:w:s:k", "32752:w:s:k", "07:w:s:k",
			      "7:rw:s:k", "7:x:s:k", "7:w:s/x:k", "7:w:s:k:z",
			      "7:w:s:k/..", "u0_x:w:s:k", "-7:w:s:k" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(xb_expect_parse(bad[i], &e), -EINVAL);
}

/* A device as xenopsd writes it for the plugin's qdisk XenDisk. */
static struct xb_qdisk_dir good_dir(void)
{
	return (struct xb_qdisk_dir){
		.devid = "51712", .ngdp_sr = "sr1", .ngdp_volume = "key1",
		.frontend = "/local/domain/7/device/vbd/51712",
		.frontend_id = "7", .online = "1", .state = "1", .mode = "w",
	};
}

static void test_claim(void **state)
{
	struct xb_expect e = { .domid = 7, .sr = "sr1", .key = "key1" };
	struct xb_qdisk_dir d = good_dir();
	const char *why;

	(void)state;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_OK);
	/* states 2..4: a restarted server re-adopts its ring */
	d.state = "4";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_OK);
	/* another backend's device, or another volume's: never touched */
	d = good_dir(); d.ngdp_sr = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_NOT_OURS);
	d = good_dir(); d.ngdp_volume = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_NOT_OURS);
	d = good_dir(); d.ngdp_volume = "key2";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_NOT_OURS);
	d = good_dir(); d.ngdp_sr = "sr2";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_NOT_OURS);
	/* not plugged (yet, or any more) */
	d = good_dir(); d.online = "0";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_WAIT);
	d = good_dir(); d.online = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_WAIT);
	d = good_dir(); d.state = "5";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_WAIT);
	d = good_dir(); d.state = "0";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_WAIT);
	d = good_dir(); d.state = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_WAIT);
	/* marked, but not consistent with the activation */
	d = good_dir(); d.frontend_id = "8";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.frontend_id = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.frontend = "/local/domain/7/device/vbd/51728";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.frontend = "/local/domain/8/device/vbd/51712";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.frontend = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.devid = "x1";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.mode = "rw";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	d = good_dir(); d.mode = NULL;
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	/* a read-write ring on a read-only activation */
	e.readonly = true;
	d = good_dir();
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_REFUSED);
	assert_string_equal(why, "a read-write device on a read-only activation");
	d.mode = "r";
	assert_int_equal(xb_claim_check(&e, &d, &why), XB_CLAIM_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_state_domid),
		cmocka_unit_test(test_ring_ref_key),
		cmocka_unit_test(test_frontend_path),
		cmocka_unit_test(test_protocol),
		cmocka_unit_test(test_expect_parse),
		cmocka_unit_test(test_claim),
	};

	return cmocka_run_group_tests_name("blkif-xenbus", tests, NULL, NULL) ? 1 : 0;
}

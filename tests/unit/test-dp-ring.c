/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Unit tests of Datapath.attach's choice between the blkif ring (qdisk)
 * and /dev/nbdN (src/datapath-plugin/ring.c): the config switch, the
 * domain, and each condition of docs/blkif-handoff.md section 4.2.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dp.h"

/* ring.o's one outside call that would pull in the whole plugin */
int dp_server_program(char *out, size_t len)
{
	(void)out;
	(void)len;
	return -ENOENT;
}

static void test_conf(void **state)
{
	bool on = true;

	(void)state;
	assert_int_equal(dp_conf_blkif_ring("", &on), 0);
	assert_false(on);
	assert_int_equal(dp_conf_blkif_ring("blkif-ring = on\n", &on), 0);
	assert_true(on);
	assert_int_equal(dp_conf_blkif_ring("# a comment\n\n  blkif-ring=on  "
					    "# why\r\nother = 3\n", &on), 0);
	assert_true(on);
	/* the last setting counts */
	assert_int_equal(dp_conf_blkif_ring("blkif-ring = on\nblkif-ring = off",
					    &on), 0);
	assert_false(on);
	assert_int_equal(dp_conf_blkif_ring("other = on\n", &on), 0);
	assert_false(on);
	/* anything else is an error, and off */
	assert_int_equal(dp_conf_blkif_ring("blkif-ring = yes\n", &on), -EINVAL);
	assert_false(on);
	assert_int_equal(dp_conf_blkif_ring("blkif-ring on\n", &on), -EINVAL);
	assert_int_equal(dp_conf_blkif_ring("blkif-ring = \n", &on), -EINVAL);
}

static void test_domid(void **state)
{
	unsigned int d = 0;

	(void)state;
	assert_int_equal(dp_domid_of("7", &d), 0);
	assert_int_equal(d, 7);
	assert_int_equal(dp_domid_of("32751", &d), 0);
	const char *bad[] = { "", "0", "07", "u0_x", "32752", "65535", "-1",
			      "1a", "123456" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dp_domid_of(bad[i], &d), -EINVAL);
}

static struct dp_ring_host all_ok(void)
{
	return (struct dp_ring_host){
		.conf = "/etc/x.conf", .enabled = true, .gntdev = true,
		.evtchn = true, .xenstore = true, .server_blkif = true,
	};
}

/* decide(domain, h) is false and its reason contains want */
static void refused(const char *domain, const struct dp_ring_host *h,
		    const char *want)
{
	char why[256];
	unsigned int d;

	assert_false(dp_ring_decide(domain, h, &d, why, sizeof(why)));
	if (!strstr(why, want))
		fail_msg("reason '%s' does not say '%s'", why, want);
}

static void test_decide(void **state)
{
	struct dp_ring_host h = all_ok();
	unsigned int d = 0;
	char why[256];

	(void)state;
	assert_true(dp_ring_decide("12", &h, &d, why, sizeof(why)));
	assert_int_equal(d, 12);
	/* each condition alone turns it off */
	refused("0", &h, "not a guest's domid");
	refused("u0_abc", &h, "not a guest's domid");
	refused("", &h, "not a guest's domid");
	h = all_ok(); h.enabled = false;
	refused("12", &h, "blkif-ring is not on in /etc/x.conf");
	h = all_ok(); h.gntdev = false;
	refused("12", &h, "no /dev/xen/gntdev");
	h = all_ok(); h.evtchn = false;
	refused("12", &h, "no /dev/xen/evtchn");
	h = all_ok(); h.xenstore = false;
	refused("12", &h, "xenstore has no /local/domain/12");
	h = all_ok(); h.server_blkif = false;
	refused("12", &h, "no --blkif-xen-domain");
	h = all_ok(); h.qemu_dp = true;
	refused("12", &h, "qemu-dp serves this domain");
	h = all_ok(); h.served_without_ring = true;
	refused("12", &h, "already served for other domains");
	h = all_ok();
	snprintf(h.failed, sizeof(h.failed), "domain 12 device 51712: x");
	snprintf(h.failed_mark, sizeof(h.failed_mark), "/run/s/k.ring-failed");
	refused("12", &h, "the ring failed for this volume on this host "
		"(domain 12 device 51712: x); remove /run/s/k.ring-failed");
	/* the switch is looked at first: off says nothing of the host */
	h = (struct dp_ring_host){ .conf = "/etc/x.conf" };
	refused("12", &h, "blkif-ring is not on");
}

/* the failure mark's path and text (the server writes them) */
static void test_fail_mark(void **state)
{
	struct dp_target t = { 0 };
	char out[PATH_MAX];

	(void)state;
	snprintf(t.run_dir, sizeof(t.run_dir), "/run/xsng/1a2b/vol-7");
	snprintf(t.key, sizeof(t.key), "vol-7");
	dp_ring_fail_mark_path(&t, out, sizeof(out));
	assert_string_equal(out, "/run/xsng/1a2b/vol-7.ring-failed");
	dp_ring_fail_reason("1733212345 domain 3 device 51712: cannot map "
			    "the ring\nmore\n", out, sizeof(out));
	assert_string_equal(out, "domain 3 device 51712: cannot map the ring");
	/* no time stamp: the whole first line */
	dp_ring_fail_reason("no stamp here\n", out, sizeof(out));
	assert_string_equal(out, "no stamp here");
	dp_ring_fail_reason("12345", out, sizeof(out));
	assert_string_equal(out, "12345");
	dp_ring_fail_reason("", out, sizeof(out));
	assert_string_equal(out, "");
	/* truncated to the buffer, NUL-terminated */
	dp_ring_fail_reason("1 abcdefgh", out, 4);
	assert_string_equal(out, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_domid),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_fail_mark),
	};

	return cmocka_run_group_tests_name("dp-ring", tests, NULL, NULL) ? 1 : 0;
}

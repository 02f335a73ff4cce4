/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests of the NBD request/option decoding and validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server/nbd.h"

static const struct nbd_export_view rw = {
	.size = 1 << 20, .structured = true, .meta_base_allocation = true,
	.fast_zero = true,
};

static struct nbd_request mkreq(uint16_t flags, uint16_t type, uint64_t off,
				uint32_t len)
{
	struct nbd_request r = {
		.magic = NBD_REQUEST_MAGIC, .flags = flags, .type = type,
		.cookie = 42, .offset = off, .length = len,
	};
	return r;
}

static void test_decode(void **state)
{
	uint8_t b[28];
	struct nbd_request r;

	(void)state;
	nbd_put32(b, NBD_REQUEST_MAGIC);
	nbd_put16(b + 4, NBD_CMD_FLAG_FUA);
	nbd_put16(b + 6, NBD_CMD_WRITE);
	nbd_put64(b + 8, 0x0102030405060708ULL);
	nbd_put64(b + 16, 0xfffffffff000ULL);
	nbd_put32(b + 24, 4096);
	nbd_request_decode(b, &r);
	assert_int_equal(r.magic, NBD_REQUEST_MAGIC);
	assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(r.type, NBD_CMD_WRITE);
	assert_true(r.cookie == 0x0102030405060708ULL);
	assert_true(r.offset == 0xfffffffff000ULL);
	assert_int_equal(r.length, 4096);
}

static void test_validate_ok(void **state)
{
	struct nbd_request r;

	(void)state;
	r = mkreq(0, NBD_CMD_READ, 0, 4096);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	r = mkreq(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, (1 << 20) - 512, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	r = mkreq(0, NBD_CMD_READ, 1 << 20, 0);	/* empty at the end */
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	r = mkreq(NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
		  NBD_CMD_WRITE_ZEROES, 0, 1 << 20);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	r = mkreq(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 0, 1);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	r = mkreq(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 1);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	/* FLUSH and DISC ignore their reserved fields */
	r = mkreq(0, NBD_CMD_FLUSH, 123, 456);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
	/* FUA is valid on any command */
	r = mkreq(NBD_CMD_FLAG_FUA, NBD_CMD_READ, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), 0);
}

static void test_validate_errors(void **state)
{
	struct nbd_export_view ro = rw, plain = rw;
	struct nbd_request r;

	(void)state;
	ro.readonly = true;
	plain.structured = false;
	plain.meta_base_allocation = false;
	plain.fast_zero = false;

	r = mkreq(0, NBD_CMD_READ, 0, 512);
	r.magic = 0x12345678;
	assert_int_equal(nbd_request_validate(&r, &rw), -EBADMSG);
	r = mkreq(0, NBD_CMD_READ, (1 << 20) - 511, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_WRITE, (1 << 20), 1);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_ENOSPC);
	r = mkreq(0, NBD_CMD_WRITE_ZEROES, 4096, 1 << 20);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_ENOSPC);
	r = mkreq(0, NBD_CMD_TRIM, UINT64_MAX, 2);	/* overflow */
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_READ, UINT64_MAX - 10, 100);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_READ, 0, NBD_MAX_REQUEST_LEN + 1);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, 5, 0, 512);	/* CACHE: not supported */
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, 99, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(1 << 9, NBD_CMD_READ, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &plain), NBD_EINVAL);
	r = mkreq(NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &plain), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_BLOCK_STATUS, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &plain), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_BLOCK_STATUS, 0, 0);
	assert_int_equal(nbd_request_validate(&r, &rw), NBD_EINVAL);
	r = mkreq(0, NBD_CMD_WRITE, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &ro), NBD_EPERM);
	r = mkreq(0, NBD_CMD_TRIM, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &ro), NBD_EPERM);
	r = mkreq(0, NBD_CMD_WRITE_ZEROES, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &ro), NBD_EPERM);
	r = mkreq(0, NBD_CMD_READ, 0, 512);
	assert_int_equal(nbd_request_validate(&r, &ro), 0);
}

static void test_payload(void **state)
{
	struct nbd_request r;

	(void)state;
	r = mkreq(0, NBD_CMD_WRITE, 0, 4096);
	assert_int_equal(nbd_request_payload(&r), 4096);
	r = mkreq(0, NBD_CMD_WRITE, 0, NBD_MAX_REQUEST_LEN + 1);
	assert_int_equal(nbd_request_payload(&r), -E2BIG);
	r = mkreq(0, NBD_CMD_READ, 0, 4096);
	assert_int_equal(nbd_request_payload(&r), 0);
	r = mkreq(0, NBD_CMD_WRITE_ZEROES, 0, 4096);
	assert_int_equal(nbd_request_payload(&r), 0);
}

static void test_flags_errno(void **state)
{
	uint16_t f;

	(void)state;
	f = nbd_export_flags(true, true);
	assert_true(f & NBD_FLAG_READ_ONLY);
	assert_false(f & (NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			  NBD_FLAG_SEND_FAST_ZERO));
	assert_true(f & NBD_FLAG_CAN_MULTI_CONN);
	f = nbd_export_flags(false, false);
	assert_true(f & NBD_FLAG_SEND_TRIM);
	assert_false(f & NBD_FLAG_SEND_FAST_ZERO);
	assert_int_equal(nbd_errno_to_wire(0), 0);
	assert_int_equal(nbd_errno_to_wire(-EROFS), NBD_EPERM);
	assert_int_equal(nbd_errno_to_wire(-EDQUOT), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(-EFBIG), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(-EBADF), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(-ENOTSUP), NBD_ENOTSUP);
}

static size_t mkinfo(uint8_t *b, const char *name, uint16_t n,
		     const uint16_t *types)
{
	size_t l = strlen(name), off;

	nbd_put32(b, (uint32_t)l);
	memcpy(b + 4, name, l);
	nbd_put16(b + 4 + l, n);
	off = 6 + l;
	for (uint16_t i = 0; i < n; i++)
		nbd_put16(b + off + 2 * i, types[i]);
	return off + 2 * (size_t)n;
}

static void test_info_request(void **state)
{
	const uint16_t types[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE, 300 };
	uint8_t b[128];
	const char *name;
	uint32_t nl, infos;
	size_t len;

	(void)state;
	len = mkinfo(b, "vol", 3, types);
	assert_int_equal(nbd_parse_info_request(b, len, &name, &nl, &infos), 0);
	assert_int_equal(nl, 3);
	assert_memory_equal(name, "vol", 3);
	assert_int_equal(infos, (1U << NBD_INFO_NAME) |
				(1U << NBD_INFO_BLOCK_SIZE));
	/* truncated, extra bytes, name too long, NUL in name, too short */
	assert_int_equal(nbd_parse_info_request(b, len - 1, &name, &nl, &infos),
			 -EINVAL);
	assert_int_equal(nbd_parse_info_request(b, len + 1, &name, &nl, &infos),
			 -EINVAL);
	nbd_put32(b, 200);
	assert_int_equal(nbd_parse_info_request(b, len, &name, &nl, &infos),
			 -EINVAL);
	len = mkinfo(b, "a", 0, NULL);
	b[4] = '\0';
	assert_int_equal(nbd_parse_info_request(b, len, &name, &nl, &infos),
			 -EINVAL);
	assert_int_equal(nbd_parse_info_request(b, 5, &name, &nl, &infos),
			 -EINVAL);
	len = mkinfo(b, "", 0, NULL);
	assert_int_equal(nbd_parse_info_request(b, len, &name, &nl, &infos), 0);
	assert_int_equal(nl, 0);
}

static void test_meta_request(void **state)
{
	uint8_t b[128];
	struct nbd_meta_request m;
	const char *q;
	uint32_t ql, pos = 0;
	size_t off = 0;

	(void)state;
	nbd_put32(b, 0);
	nbd_put32(b + 4, 2);
	off = 8;
	nbd_put32(b + off, 15);
	memcpy(b + off + 4, "base:allocation", 15);
	off += 19;
	nbd_put32(b + off, 5);
	memcpy(b + off + 4, "qemu:", 5);
	off += 9;
	assert_int_equal(nbd_parse_meta_request(b, off, &m), 0);
	assert_int_equal(m.nqueries, 2);
	assert_int_equal(nbd_meta_next_query(&m, &pos, &q, &ql), 0);
	assert_int_equal(ql, 15);
	assert_memory_equal(q, "base:allocation", 15);
	assert_int_equal(nbd_meta_next_query(&m, &pos, &q, &ql), 0);
	assert_int_equal(ql, 5);
	assert_int_equal(nbd_meta_next_query(&m, &pos, &q, &ql), -EINVAL);
	/* trailing garbage, a count larger than the data, short data */
	assert_int_equal(nbd_parse_meta_request(b, off + 1, &m), -EINVAL);
	nbd_put32(b + 4, 3);
	assert_int_equal(nbd_parse_meta_request(b, off, &m), -EINVAL);
	nbd_put32(b + 4, 0xffffffff);
	assert_int_equal(nbd_parse_meta_request(b, off, &m), -EINVAL);
	assert_int_equal(nbd_parse_meta_request(b, 7, &m), -EINVAL);
	nbd_put32(b, 0xfffffff0);
	assert_int_equal(nbd_parse_meta_request(b, off, &m), -EINVAL);
}

static void test_match_export(void **state)
{
	(void)state;
	assert_int_equal(nbd_match_export("", 0, ""), 1);
	assert_int_equal(nbd_match_export("vol", 3, "vol"), 1);
	assert_int_equal(nbd_match_export("vol", 3, ""), 0);
	assert_int_equal(nbd_match_export("vol@ro", 6, "vol"), 2);
	assert_int_equal(nbd_match_export("@ro", 3, ""), 2);
	assert_int_equal(nbd_match_export("@r", 2, ""), 0);
	assert_int_equal(nbd_match_export("vo", 2, "vol"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_validate_ok),
		cmocka_unit_test(test_validate_errors),
		cmocka_unit_test(test_payload),
		cmocka_unit_test(test_flags_errno),
		cmocka_unit_test(test_info_request),
		cmocka_unit_test(test_meta_request),
		cmocka_unit_test(test_match_export),
	};

	return cmocka_run_group_tests_name("nbd-proto", tests, NULL, NULL) ? 1 : 0;
}

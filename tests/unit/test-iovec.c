/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: scatter-gather vectors (src/util/iovec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "iovec.h"

/* Three pieces of 4, 8 and 4 bytes in separate arrays: a 16-byte stream. */
static char a[4], b[8], c[4];
static struct iovec three[3];

static int setup(void **state)
{
	(void)state;
	memset(a, '.', sizeof(a));
	memset(b, '.', sizeof(b));
	memset(c, '.', sizeof(c));
	three[0] = (struct iovec){ a, sizeof(a) };
	three[1] = (struct iovec){ b, sizeof(b) };
	three[2] = (struct iovec){ c, sizeof(c) };
	return 0;
}

static void test_bytes(void **state)
{
	(void)state;
	assert_int_equal(iov_bytes(three, 3), 16);
	assert_int_equal(iov_bytes(three, 0), 0);
}

static void test_slice(void **state)
{
	struct iovec out[3];

	(void)state;
	/* inside one piece */
	assert_int_equal(iov_slice(three, 3, 5, 2, out, 3), 1);
	assert_ptr_equal(out[0].iov_base, b + 1);
	assert_int_equal(out[0].iov_len, 2);
	/* across all three, starting and ending inside pieces */
	assert_int_equal(iov_slice(three, 3, 3, 11, out, 3), 3);
	assert_ptr_equal(out[0].iov_base, a + 3);
	assert_int_equal(out[0].iov_len, 1);
	assert_ptr_equal(out[1].iov_base, b);
	assert_int_equal(out[1].iov_len, 8);
	assert_ptr_equal(out[2].iov_base, c);
	assert_int_equal(out[2].iov_len, 2);
	/* starting exactly at a piece's start */
	assert_int_equal(iov_slice(three, 3, 12, 4, out, 3), 1);
	assert_ptr_equal(out[0].iov_base, c);
	/* the whole stream, and nothing */
	assert_int_equal(iov_slice(three, 3, 0, 16, out, 3), 3);
	assert_int_equal(iov_slice(three, 3, 16, 0, out, 3), 0);
	/* past the end, and too few pieces */
	assert_int_equal(iov_slice(three, 3, 10, 7, out, 3), -1);
	assert_int_equal(iov_slice(three, 3, 17, 1, out, 3), -1);
	assert_int_equal(iov_slice(three, 3, 3, 11, out, 2), -1);
}

static void test_advance(void **state)
{
	struct iovec v[3], *p = v;
	int n = 3;

	(void)state;
	memcpy(v, three, sizeof(v));
	iov_advance(&p, &n, 2);		/* inside the first */
	assert_int_equal(n, 3);
	assert_ptr_equal(p->iov_base, a + 2);
	assert_int_equal(p->iov_len, 2);
	iov_advance(&p, &n, 2);		/* exactly its end */
	assert_int_equal(n, 2);
	assert_ptr_equal(p->iov_base, b);
	iov_advance(&p, &n, 11);	/* into the last */
	assert_int_equal(n, 1);
	assert_ptr_equal(p->iov_base, c + 3);
	assert_int_equal(p->iov_len, 1);
	iov_advance(&p, &n, 1);
	assert_int_equal(n, 0);
	assert_int_equal(iov_bytes(p, n), 0);
}

static void test_memset_copy(void **state)
{
	(void)state;
	iov_memset(three, 3, 2, 'z', 4);
	assert_memory_equal(a, "..zz", 4);
	assert_memory_equal(b, "zz......", 8);
	iov_from_buf(three, 3, 10, "ABCDEFGH", 8);	/* clipped at 16 */
	assert_memory_equal(b, "zz....AB", 8);
	assert_memory_equal(c, "CDEF", 4);
	iov_memset(three, 3, 15, 'q', 100);		/* clipped */
	assert_memory_equal(c, "CDEq", 4);
}

static void test_aligned(void **state)
{
	static char page[8192] __attribute__((aligned(4096)));
	struct iovec v[2] = { { page, 4096 }, { page + 4096, 512 } };

	(void)state;
	assert_true(iov_aligned(v, 2, 512));
	assert_false(iov_aligned(v, 2, 4096));	/* the second's length */
	v[1].iov_len = 4096;
	assert_true(iov_aligned(v, 2, 4096));
	v[0].iov_base = page + 512;		/* an address */
	v[0].iov_len = 512;
	assert_true(iov_aligned(v, 2, 512));
	assert_false(iov_aligned(v, 2, 4096));
}

static void test_push(void **state)
{
	static char buf[64];
	struct iovec v[2];
	int n = 0;

	(void)state;
	assert_true(iov_push(v, &n, 2, buf, 8));
	assert_true(iov_push(v, &n, 2, buf + 8, 8));	/* merged */
	assert_int_equal(n, 1);
	assert_int_equal(v[0].iov_len, 16);
	assert_true(iov_push(v, &n, 2, buf + 32, 8));	/* a gap: new */
	assert_int_equal(n, 2);
	assert_false(iov_push(v, &n, 2, buf, 8));	/* full */
	assert_true(iov_push(v, &n, 2, buf + 40, 4));	/* full but merges */
	assert_int_equal(v[1].iov_len, 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_bytes, setup),
		cmocka_unit_test_setup(test_slice, setup),
		cmocka_unit_test_setup(test_advance, setup),
		cmocka_unit_test_setup(test_memset_copy, setup),
		cmocka_unit_test_setup(test_aligned, setup),
		cmocka_unit_test_setup(test_push, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

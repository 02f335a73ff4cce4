/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: include/util/bytes.h and src/util/fullio.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base64.h"
#include "bytes.h"
#include "fullio.h"

/* RFC 4648 section 10's vectors, and bytes >= 0x80 */
static void test_base64(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
		{ "\xff\xfe\x80", "//6A" },
	};
	char out[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		base64_encode(v[i].in, strlen(v[i].in), out);
		assert_string_equal(out, v[i].out);
		assert_int_equal(strlen(out), base64_length(strlen(v[i].in)));
	}
}

static void test_be_load_store(void **state)
{
	uint8_t b[11] = { 0 };

	(void)state;
	/* at an odd address: no alignment needed */
	store_be16(b + 1, 0x1234);
	assert_int_equal(b[1], 0x12);
	assert_int_equal(b[2], 0x34);
	assert_int_equal(load_be16(b + 1), 0x1234);
	store_be32(b + 1, 0x89abcdefu);
	assert_memory_equal(b + 1, "\x89\xab\xcd\xef", 4);
	assert_int_equal(load_be32(b + 1), 0x89abcdefu);
	store_be64(b + 3, 0x0102030405060708ull);
	assert_memory_equal(b + 3, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(load_be64(b + 3) == 0x0102030405060708ull);
	store_be64(b + 3, UINT64_MAX);
	assert_true(load_be64(b + 3) == UINT64_MAX);
}

static void test_rounding(void **state)
{
	(void)state;
	assert_true(round_up(0, 512) == 0);
	assert_true(round_up(1, 512) == 512);
	assert_true(round_up(512, 512) == 512);
	assert_true(round_up(513, 512) == 1024);
	assert_true(round_up(7, 3) == 9);	/* not only powers of two */
	assert_true(round_down(1023, 512) == 512);
	assert_true(round_down(7, 3) == 6);
	assert_true(round_down(UINT64_MAX, 4096) == UINT64_MAX - 4095);
	assert_true(div_round_up(0, 8) == 0);
	assert_true(div_round_up(1, 8) == 1);
	assert_true(div_round_up(16, 8) == 2);
	assert_true(div_round_up(17, 8) == 3);
	/* no overflow at the top of the range */
	assert_true(div_round_up(UINT64_MAX, 2) == (UINT64_MAX >> 1) + 1);
	assert_true(min_u64(3, 5) == 3);
	assert_true(min_u64(UINT64_MAX, 5) == 5);
}

static void test_power_of_2(void **state)
{
	(void)state;
	assert_false(is_power_of_2(0));
	assert_true(is_power_of_2(1));
	assert_true(is_power_of_2(512));
	assert_true(is_power_of_2(1ull << 63));
	assert_false(is_power_of_2(3));
	assert_false(is_power_of_2(513));
	assert_false(is_power_of_2(UINT64_MAX));
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/xsng-util.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void test_pread_full_file(void **state)
{
	uint8_t data[10000], got[10000];
	int fd = tmpfile_fd();
	ssize_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pwrite_full(fd, data, sizeof(data), 0), 0);
	assert_int_equal(pread_full(fd, got, sizeof(got), 0), 0);
	assert_memory_equal(got, data, sizeof(data));
	assert_int_equal(pread_full(fd, got, 100, 9900), 0);
	assert_memory_equal(got, data + 9900, 100);
	/* reaching beyond the end of the file */
	assert_int_equal(pread_full(fd, got, 101, 9900), -ENODATA);
	assert_int_equal(pread_full(fd, got, 1, 10000), -ENODATA);
	n = pread_upto(fd, got, 200, 9900);
	assert_int_equal(n, 100);
	assert_memory_equal(got, data + 9900, 100);
	assert_int_equal(pread_upto(fd, got, 10, 20000), 0);
	assert_int_equal(pread_full(fd, got, 0, 20000), 0);
	/* an offset pread cannot take */
	assert_int_equal(pread_full(fd, got, 10, UINT64_MAX - 4), -EINVAL);
	assert_int_equal(pwrite_full(fd, got, 10, UINT64_MAX - 4), -EINVAL);
	close(fd);
	/* errors come back as -errno */
	assert_int_equal(pread_full(fd, got, 10, 0), -EBADF);
	assert_int_equal(pwrite_full(fd, got, 10, 0), -EBADF);
}

/*
 * Short transfers and EINTR: the test is linked with --wrap=pread64,
 * --wrap=pwrite64 (mk/tests.mk; with _FILE_OFFSET_BITS=64, pread is
 * pread64), so fullio.c's calls come here.  While
 * 'script' is set, each call takes the next step: a negative number fails
 * with that errno, a positive one caps the transfer at that many bytes
 * (then the real call does it); 0 ends the script.
 */
ssize_t __real_pread64(int fd, void *buf, size_t len, off_t off);
ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t off);
ssize_t __wrap_pread64(int fd, void *buf, size_t len, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off);

static const int *script;
static unsigned int calls;

static int script_step(size_t *len)
{
	int s;

	calls++;
	if (!script || !*script)
		return 0;
	s = *script++;
	if (s < 0) {
		errno = -s;
		return -1;
	}
	if ((size_t)s < *len)
		*len = (size_t)s;
	return 0;
}

ssize_t __wrap_pread64(int fd, void *buf, size_t len, off_t off)
{
	if (script_step(&len) < 0)
		return -1;
	return __real_pread64(fd, buf, len, off);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	if (script_step(&len) < 0)
		return -1;
	return __real_pwrite64(fd, buf, len, off);
}

static void test_short_and_eintr(void **state)
{
	static const int rd[] = { 1, -EINTR, 100, -EINTR, -EINTR, 3000, 0 };
	static const int wr[] = { -EINTR, 7, 1, 2000, 0 };
	static const int rd_eio[] = { 10, -EIO, 0 };
	uint8_t data[5000], got[5000];
	int p[2], fd = tmpfile_fd();

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	script = wr;
	calls = 0;
	assert_int_equal(pwrite_full(fd, data, sizeof(data), 0), 0);
	assert_int_equal(calls, 5);	/* 4 scripted steps, then the rest */
	script = NULL;
	assert_int_equal(__real_pread64(fd, got, sizeof(got), 0), sizeof(got));
	assert_memory_equal(got, data, sizeof(data));

	memset(got, 0, sizeof(got));
	script = rd;
	calls = 0;
	assert_int_equal(pread_full(fd, got, sizeof(got), 0), 0);
	assert_int_equal(calls, 7);
	assert_memory_equal(got, data, sizeof(data));

	/* short reads up to the end of the file: the count, then -ENODATA */
	script = rd;
	assert_int_equal(pread_upto(fd, got, 6000, 0), 5000);
	script = rd;
	assert_int_equal(pread_full(fd, got, 6000, 0), -ENODATA);

	/* a real error after a short read is returned, not retried */
	script = rd_eio;
	calls = 0;
	assert_int_equal(pread_full(fd, got, 100, 0), -EIO);
	assert_int_equal(calls, 2);
	script = NULL;
	close(fd);

	/* pread on a pipe: -ESPIPE, not a loop */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pread_full(p[0], got, 10, 0), -ESPIPE);
	assert_int_equal(pread_upto(p[0], got, 10, 0), -ESPIPE);
	close(p[0]);
	close(p[1]);
}

static void test_aligned(void **state)
{
	static const size_t aligns[] = { 8, 512, 4096, 65536 };
	static const size_t lens[] = { 0, 1, 511, 512, 4097, 100000 };

	(void)state;
	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			size_t a = aligns[i], len = lens[j];
			size_t whole = len ? round_up(len, a) : a;
			uint8_t *p, *q = aligned_malloc(a, len);

			/* dirty the heap, so that fresh memory is not
			 * zero by chance: p likely reuses q */
			assert_non_null(q);
			assert_int_equal((uintptr_t)q % a, 0);
			memset(q, 0xa5, whole);	/* the rounded size is usable */
			free(q);
			p = aligned_zalloc(a, len);
			assert_non_null(p);
			assert_int_equal((uintptr_t)p % a, 0);
			for (size_t k = 0; k < whole; k++)
				assert_int_equal(p[k], 0);
			free(p);
		}
	}
	errno = 0;
	assert_null(aligned_malloc(3, 10));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(aligned_zalloc(2, 10));	/* < sizeof(void *) */
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(aligned_malloc(4096, SIZE_MAX - 10));
	assert_int_equal(errno, ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_be_load_store),
		cmocka_unit_test(test_rounding),
		cmocka_unit_test(test_power_of_2),
		cmocka_unit_test(test_pread_full_file),
		cmocka_unit_test(test_short_and_eintr),
		cmocka_unit_test(test_aligned),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}

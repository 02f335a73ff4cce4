/* SPDX-License-Identifier: LGPL-2.1-only */
/* Scatter-gather vectors: see iovec.h. */
#include <stdint.h>
#include <string.h>

#include "iovec.h"

size_t iov_bytes(const struct iovec *iov, int niov)
{
	size_t n = 0;

	for (int i = 0; i < niov; i++)
		n += iov[i].iov_len;
	return n;
}

int iov_slice(const struct iovec *src, int nsrc, size_t pos, size_t len,
	      struct iovec *out, int cap)
{
	int i = 0, n = 0;

	/* find the piece holding pos */
	while (i < nsrc && pos >= src[i].iov_len) {
		pos -= src[i].iov_len;
		i++;
	}
	while (len) {
		size_t take;

		if (i == nsrc || n == cap)
			return -1;
		take = src[i].iov_len - pos;
		if (take > len)
			take = len;
		out[n].iov_base = (char *)src[i].iov_base + pos;
		out[n].iov_len = take;
		n++;
		len -= take;
		pos = 0;
		i++;
	}
	return n;
}

void iov_advance(struct iovec **iov, int *niov, size_t n)
{
	while (n && *niov) {
		struct iovec *v = *iov;

		if (n < v->iov_len) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		(*iov)++;
		(*niov)--;
	}
}

/* Calls fn on each piece of [pos, pos + len) of the stream. */
static void iov_walk(const struct iovec *iov, int niov, size_t pos,
		     size_t len, void (*fn)(void *p, size_t n, size_t done,
					    const void *arg),
		     const void *arg)
{
	size_t done = 0;

	for (int i = 0; i < niov && len; i++) {
		size_t take;

		if (pos >= iov[i].iov_len) {
			pos -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - pos;
		if (take > len)
			take = len;
		fn((char *)iov[i].iov_base + pos, take, done, arg);
		done += take;
		len -= take;
		pos = 0;
	}
}

static void fill_piece(void *p, size_t n, size_t done, const void *arg)
{
	(void)done;
	memset(p, *(const int *)arg, n);
}

void iov_memset(const struct iovec *iov, int niov, size_t pos, int c,
		size_t len)
{
	iov_walk(iov, niov, pos, len, fill_piece, &c);
}

static void copy_piece(void *p, size_t n, size_t done, const void *arg)
{
	memcpy(p, (const char *)arg + done, n);
}

void iov_from_buf(const struct iovec *iov, int niov, size_t pos,
		  const void *buf, size_t len)
{
	iov_walk(iov, niov, pos, len, copy_piece, buf);
}

bool iov_aligned(const struct iovec *iov, int niov, size_t align)
{
	for (int i = 0; i < niov; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) &
		    (align - 1))
			return false;
	return true;
}

bool iov_push(struct iovec *out, int *n, int cap, void *base, size_t len)
{
	if (*n > 0) {
		struct iovec *last = &out[*n - 1];

		if ((char *)last->iov_base + last->iov_len == (char *)base) {
			last->iov_len += len;
			return true;
		}
	}
	if (*n == cap)
		return false;
	out[*n].iov_base = base;
	out[*n].iov_len = len;
	(*n)++;
	return true;
}

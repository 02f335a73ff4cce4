/* SPDX-License-Identifier: LGPL-2.1-only */
/* NBD request and option decoding and validation (no I/O, no state). */
#include <errno.h>
#include <string.h>

#include "server/nbd.h"

void nbd_request_decode(const uint8_t *buf, struct nbd_request *ret)
{
	ret->magic = nbd_get32(buf);
	ret->flags = nbd_get16(buf + 4);
	ret->type = nbd_get16(buf + 6);
	ret->cookie = nbd_get64(buf + 8);
	ret->offset = nbd_get64(buf + 16);
	ret->length = nbd_get32(buf + 24);
}

static bool is_write_cmd(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_WRITE_ZEROES;
}

int nbd_request_validate(const struct nbd_request *req,
			 const struct nbd_export_view *exp)
{
	uint32_t allowed = NBD_CMD_FLAG_FUA;	/* valid on every command */

	if (req->magic != NBD_REQUEST_MAGIC)
		return -EBADMSG;

	switch (req->type) {
	case NBD_CMD_READ:
		if (exp->structured)
			allowed |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_FLUSH:
	case NBD_CMD_DISC:
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed |= NBD_CMD_FLAG_NO_HOLE;
		if (exp->fast_zero)
			allowed |= NBD_CMD_FLAG_FAST_ZERO;
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!exp->structured || !exp->meta_base_allocation)
			return NBD_EINVAL;
		allowed |= NBD_CMD_FLAG_REQ_ONE;
		break;
	default:
		return NBD_EINVAL;
	}
	if (req->flags & ~allowed)
		return NBD_EINVAL;

	/* FLUSH and DISC carry no range: their fields are reserved. */
	if (req->type == NBD_CMD_FLUSH || req->type == NBD_CMD_DISC)
		return 0;

	if (is_write_cmd(req->type) && exp->readonly)
		return NBD_EPERM;
	if (req->length > NBD_MAX_REQUEST_LEN &&
	    (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE))
		return NBD_EINVAL;
	if (req->type == NBD_CMD_BLOCK_STATUS && req->length == 0)
		return NBD_EINVAL;
	if (req->offset > exp->size || req->length > exp->size - req->offset)
		return (req->type == NBD_CMD_WRITE ||
			req->type == NBD_CMD_WRITE_ZEROES) ? NBD_ENOSPC :
							     NBD_EINVAL;
	return 0;
}

int64_t nbd_request_payload(const struct nbd_request *req)
{
	if (req->type != NBD_CMD_WRITE)
		return 0;
	if (req->length > NBD_MAX_REQUEST_LEN)
		return -E2BIG;
	return req->length;
}

uint16_t nbd_export_flags(bool readonly, bool fast_zero)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF |
		     NBD_FLAG_CAN_MULTI_CONN;

	if (readonly)
		return f | NBD_FLAG_READ_ONLY;
	f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
	if (fast_zero)
		f |= NBD_FLAG_SEND_FAST_ZERO;
	return f;
}

uint32_t nbd_errno_to_wire(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

int nbd_parse_info_request(const uint8_t *data, uint32_t len,
			   const char **ret_name, uint32_t *ret_namelen,
			   uint32_t *ret_infos)
{
	uint32_t namelen, infos = 0;
	uint16_t n;
	size_t off;

	if (len < 6)
		return -EINVAL;
	namelen = nbd_get32(data);
	if (namelen > NBD_MAX_STRING || namelen > len - 6)
		return -EINVAL;
	off = 4 + (size_t)namelen;
	n = nbd_get16(data + off);
	off += 2;
	if ((size_t)n * 2 != len - off)
		return -EINVAL;
	if (memchr(data + 4, '\0', namelen))
		return -EINVAL;
	for (uint16_t i = 0; i < n; i++) {
		uint16_t t = nbd_get16(data + off + 2 * (size_t)i);

		/* unknown information requests are ignored, per spec */
		if (t < 16)
			infos |= 1U << t;
	}
	*ret_name = (const char *)data + 4;
	*ret_namelen = namelen;
	*ret_infos = infos;
	return 0;
}

int nbd_parse_meta_request(const uint8_t *data, uint32_t len,
			   struct nbd_meta_request *ret)
{
	struct nbd_meta_request m;
	uint32_t pos = 0;

	if (len < 8)
		return -EINVAL;
	m.namelen = nbd_get32(data);
	if (m.namelen > NBD_MAX_STRING || m.namelen > len - 8)
		return -EINVAL;
	m.name = (const char *)data + 4;
	m.nqueries = nbd_get32(data + 4 + m.namelen);
	m.queries = data + 8 + m.namelen;
	m.queries_len = len - 8 - m.namelen;
	if (memchr(m.name, '\0', m.namelen))
		return -EINVAL;
	/* Walk all queries once so the caller's iteration cannot fail. */
	for (uint32_t i = 0; i < m.nqueries; i++) {
		const char *q;
		uint32_t ql;

		if (nbd_meta_next_query(&m, &pos, &q, &ql) < 0)
			return -EINVAL;
	}
	if (pos != m.queries_len)
		return -EINVAL;
	*ret = m;
	return 0;
}

int nbd_meta_next_query(const struct nbd_meta_request *m, uint32_t *pos,
			const char **ret_q, uint32_t *ret_qlen)
{
	uint32_t ql;

	if (m->queries_len - *pos < 4)
		return -EINVAL;
	ql = nbd_get32(m->queries + *pos);
	if (ql > NBD_MAX_STRING || ql > m->queries_len - *pos - 4)
		return -EINVAL;
	*ret_q = (const char *)m->queries + *pos + 4;
	*ret_qlen = ql;
	*pos += 4 + ql;
	return 0;
}

int nbd_match_export(const char *name, uint32_t namelen,
		     const char *export_name)
{
	size_t elen = strlen(export_name);

	if (namelen == elen && memcmp(name, export_name, elen) == 0)
		return 1;
	if (namelen >= 3 && memcmp(name + namelen - 3, "@ro", 3) == 0)
		return 2;
	return 0;
}

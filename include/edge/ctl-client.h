/* SPDX-License-Identifier: LGPL-2.1-only */
/* Client of a datapath server's control socket: one JSON request, one reply. */
#ifndef CONTROL_H
#define CONTROL_H

#include <json-c/json.h>

/*
 * Send req (e.g. {"op":"suspend"}) to the unix socket at path and wait at
 * most timeout_ms for the reply.  Returns 0 with *ret (owned by the caller)
 * when the server answered {"ok":true,...}, -EREMOTEIO with *ret set when
 * it answered an error, -errno when it could not be reached.
 */
int control_call(const char *path, json_object *req, int timeout_ms,
		 json_object **ret);

#endif

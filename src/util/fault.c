/* SPDX-License-Identifier: LGPL-2.1-only */
/* Crash points for tests (see fault.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"

void fault_point(const char *name)
{
	const char *want = getenv("XSNG_FAULT");

	if (!want || strcmp(want, name))
		return;
	log_warn("XSNG_FAULT=%s: killing this process here, as a test asked",
		 name);
	raise(SIGKILL);
}

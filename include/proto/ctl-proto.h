/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The vocabulary of ngdp-server's control socket, shared by the server
 * (src/server/control.c) and its clients (the control client, the
 * datapath plugin that spawns and stops the server, the volume plugin that
 * suspends it for snapshots).  Constants only: each side builds and parses
 * its JSON with its own code.
 *
 * One JSON object per connection each way:
 *   request  {"op": CTL_OP_*, ...arguments}
 *   reply    {"ok": true, ...} or {"ok": false, "error": text, "errno": n}
 */
#ifndef PROTO_CTL_PROTO_H
#define PROTO_CTL_PROTO_H

/* The socket's file name in a volume's run directory. */
#define CTL_SOCKET_NAME		"ctl.sock"

/* Largest request the server reads, largest reply a client accepts. */
#define CTL_REQUEST_MAX		(64 * 1024)
#define CTL_REPLY_MAX		(1024 * 1024)

/* request: the operation and its arguments */
#define CTL_KEY_OP		"op"
#define CTL_OP_STATUS		"status"
#define CTL_OP_SUSPEND		"suspend"	/* [timeout_ms] */
#define CTL_OP_RESUME		"resume"	/* [image] */
#define CTL_OP_STOP		"stop"
#define CTL_OP_COALESCE		"coalesce"	/* parent */
#define CTL_KEY_PARENT		"parent"	/* coalesce: path of the top's
						 * backing file to merge away */
#define CTL_KEY_TIMEOUT_MS	"timeout_ms"	/* suspend: integer >= 0 */
#define CTL_KEY_IMAGE		"image"		/* resume: path of the new top */

/* reply */
#define CTL_KEY_OK		"ok"
#define CTL_KEY_ERROR		"error"
#define CTL_KEY_ERRNO		"errno"

/* status (also the reply to a suspend or resume that succeeded) */
#define CTL_ST_PID		"pid"
#define CTL_ST_IMAGE		"image"
#define CTL_ST_FORMAT		"format"
#define CTL_ST_ENGINE		"engine"
#define CTL_ST_SIZE		"size"
#define CTL_ST_READONLY		"readonly"
#define CTL_ST_CONNECTIONS	"connections"
#define CTL_ST_IN_FLIGHT	"in_flight"
#define CTL_ST_SUSPENDED	"suspended"
#define CTL_ST_SUSPEND_EXPIRED	"suspend_expired"
#define CTL_ST_DIRTY		"dirty"
#define CTL_ST_CONNECTIONS_TOTAL "connections_total"
#define CTL_ST_READS		"reads"
#define CTL_ST_WRITES		"writes"
#define CTL_ST_FLUSHES		"flushes"
#define CTL_ST_TRIMS		"trims"
#define CTL_ST_WRITE_ZEROES	"write_zeroes"
#define CTL_ST_BLOCK_STATUS	"block_status"
#define CTL_ST_ERRORS		"errors"
#define CTL_ST_SLOW_PATH	"slow_path"
#define CTL_ST_BYTES_READ	"bytes_read"
#define CTL_ST_BYTES_WRITTEN	"bytes_written"
/* data operations run on buffers registered with the engine (io_uring's
 * fixed buffers): their pages were not pinned again for the I/O */
#define CTL_ST_REGISTERED_IOS	"registered_ios"
/* reads whose submitter gave its own pages (the blkif ring): read straight
 * into them with O_DIRECT, or through a pooled buffer and copied */
#define CTL_ST_DIRECT_READS	"direct_reads"
#define CTL_ST_BOUNCED_READS	"bounced_reads"
/* times a Xen ring's persistent-grant cache was full and dropped pages */
#define CTL_ST_GRANT_CACHE_EVICTIONS	"grant_cache_evictions"
/* reads into the frontend's pages that failed with EFAULT and were read
 * again through a buffer (after the first, every read is) */
#define CTL_ST_DIRECT_READ_FAULTS	"direct_read_faults"
/* blkif rings connected now; the Xen backend directory served or
 * claimed (null: none) */
#define CTL_ST_BLKIF_RINGS	"blkif_rings"
#define CTL_ST_BLKIF_DEVICE	"blkif_device"
/* Xen rings that could not be connected (the device was failed) */
#define CTL_ST_BLKIF_FAILURES	"blkif_failures"
/* where the Xen ring (--blkif-xen, --blkif-xen-domain) is; null: none */
#define CTL_ST_BLKIF_RING	"blkif_ring"
#define CTL_RING_WAITING	"waiting"	/* no device claimed yet */
#define CTL_RING_CLAIMED	"claimed"	/* the handshake runs */
#define CTL_RING_CONNECTED	"connected"
#define CTL_RING_CLOSING	"closing"	/* shutdown-request */
#define CTL_RING_CLOSED		"closed"	/* shutdown-done written */
#define CTL_RING_RELEASING	"releasing"	/* blkif_release: closing */
#define CTL_RING_RELEASED	"released"	/* closed; nothing claimed
						 * again */

/*
 * request "blkif_release" {domain}: Datapath.deactivate of the ring's
 * domain while the server stays for other domains.  The device is closed
 * as at stop (requests taken are answered; Closing, errors for what the
 * frontend still queues until it closes or 10 s pass; Closed) and no
 * device is claimed again.  The reply comes at once; "blkif_ring" says
 * "released" when it is done.
 */
#define CTL_OP_BLKIF_RELEASE	"blkif_release"
#define CTL_KEY_DOMAIN		"domain"

/*
 * status: the chain, and the live coalesce (issue 13).  "backing" is the
 * path of the top's backing file, or null.  "coalesce" is absent until a
 * coalesce op was accepted, then an object:
 *   parent   the backing file being merged away (path)
 *   state    "running", "done" (switched: the top no longer names parent)
 *            or "failed" (error says why; the chain is unchanged)
 *   copied   bytes written into the top so far
 *   offset   guest bytes scanned so far, of "size"
 *   error    text, when failed
 */
#define CTL_ST_BACKING		"backing"
#define CTL_ST_COALESCE		"coalesce"
#define CTL_CO_PARENT		"parent"
#define CTL_CO_STATE		"state"
#define CTL_CO_RUNNING		"running"
#define CTL_CO_DONE		"done"
#define CTL_CO_FAILED		"failed"
#define CTL_CO_COPIED		"copied"
#define CTL_CO_OFFSET		"offset"
#define CTL_CO_ERROR		"error"

/*
 * status: changed block tracking (issue 14), "cbt": an object
 *   bitmap      the epoch bitmap the volume record names (cbt_bitmap),
 *               or null (none, or a read-only / reset-on-boot activation)
 *   tracking    guest writes are being recorded into it now
 *   consistent  false when it was found in use (a server died while
 *               tracking it) or could not be stored: never trusted
 */
#define CTL_ST_CBT		"cbt"
#define CTL_CBT_BITMAP		"bitmap"
#define CTL_CBT_TRACKING	"tracking"
#define CTL_CBT_CONSISTENT	"consistent"

/*
 * The mirror job (issue 15, storage migration): the server copies the
 * whole guest view to a remote NBD export while mirroring every guest
 * write, zero and discard to it synchronously (a guest write is
 * acknowledged once both sides have it).
 *
 * request "mirror": start a job (one per server).  Idempotent for the same
 * id; another id while a job is copying or synced is refused (EBUSY).
 *   id          the operation's name, [0-9a-f]{1,64} (the plugin's)
 *   remote      NBD URI: nbd+unix:///<export>?socket=<absolute path> (as
 *               xapi sends it), or nbd:unix:<path>[:exportname=<name>]
 *   max_rate    optional: the background copy's limit in bytes per second
 *               (integer >= 0; 0 or absent: as fast as it goes).  Guest
 *               writes are never held back by it.
 *   state_file  where the server writes the job's final status (the
 *               "mirror" object below, as JSON, atomically) when the job
 *               ends: failed, cancelled, or stopped with the server
 *               (absolute path)
 * request "mirror_cancel" {id}: stop mirroring (the remote is dropped, no
 *   flush); the state becomes "cancelled".  A job already over: ok.
 *
 * status "mirror": absent until a job was accepted, then an object:
 *   id, remote   as given
 *   state        "copying"   background copy under way, writes mirrored
 *                "synced"    copy done, every write since is mirrored
 *                "failed"    the remote failed; the guest goes on locally
 *                "cancelled" mirror_cancel
 *                "stopped"   the server stopped while synced, after
 *                            flushing both sides (the remote is complete)
 *   copied       bytes of the background copy done, of "total"
 *   total        the guest size
 *   error        text, when failed
 */
#define CTL_OP_MIRROR		"mirror"
#define CTL_OP_MIRROR_CANCEL	"mirror_cancel"
#define CTL_KEY_ID		"id"
#define CTL_KEY_REMOTE		"remote"
#define CTL_KEY_STATE_FILE	"state_file"
#define CTL_KEY_MAX_RATE	"max_rate"
#define CTL_ST_MIRROR		"mirror"
#define CTL_MI_ID		"id"
#define CTL_MI_REMOTE		"remote"
#define CTL_MI_STATE		"state"
#define CTL_MI_COPYING		"copying"
#define CTL_MI_SYNCED		"synced"
#define CTL_MI_FAILED		"failed"
#define CTL_MI_CANCELLED	"cancelled"
#define CTL_MI_STOPPED		"stopped"
#define CTL_MI_COPIED		"copied"
#define CTL_MI_TOTAL		"total"
#define CTL_MI_ERROR		"error"
#define CTL_MIRROR_ID_MAX	64

/*
 * The import socket (Datapath.import_activate): a Unix socket in the run
 * directory where a client passes, with SCM_RIGHTS, one connected socket
 * and a few bytes of text (xapi sends its datapath name); the server
 * serves NBD (fixed newstyle, read-write) on the passed fd.
 */
#define IMPORT_SOCKET_NAME	"import.sock"

/*
 * ngdp-server's --queue-depth when not given: data I/O operations in
 * flight.  The one place this number lives.
 */
#define NGDP_QUEUE_DEPTH_DEFAULT 128

#endif

/* SPDX-License-Identifier: LGPL-2.1-only */
/* ngdp-server: serve one disk image chain over NBD (options, lifecycle). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-proto.h"
#include "fileio.h"
#include "log.h"
#include "server/server.h"
#include "control.h"
#include "import.h"
#include "blkif/shm.h"
#include "blkif/xen.h"
#include "server/blkif-xenbus.h"

#define QD_STR(n) #n
#define QD_TEXT(n) QD_STR(n)

static const char usage[] =
"Usage: ngdp-server --image PATH --socket PATH [options]\n"
"Serve one image chain (raw, qcow2, vpc) over NBD (fixed newstyle).\n"
"\n"
"  --image PATH          top image of the chain (backing files are followed)\n"
"  --format FMT          raw|qcow2|vpc: the format of the top image (default:\n"
"                        from its name, .qcow2/.raw/.img/.vhd; never guessed\n"
"                        from the content)\n"
"  --readonly            export read-only (writes fail with EPERM)\n"
"  --socket PATH         Unix socket to listen on (mode 0600; a stale socket\n"
"                        file nobody listens on is replaced)\n"
"  --tcp ADDR:PORT       also listen on TCP at this address\n"
"  --ro-socket PATH      also listen on this Unix socket; its connections\n"
"                        get a read-only view of any export\n"
"  --heartbeat PATH      refresh PATH's mtime every 5 s while running\n"
"  --volume-record PATH  the volume's record, <SR>/meta/v-<key>.json: when a\n"
"                        suspend is not followed by a resume within its\n"
"                        timeout, resume on the image it names then\n"
"                        (<SR>/images/<image>.<ext of image-format>), taken\n"
"                        under a shared lock of <SR>/.sr/lock, so the server\n"
"                        never stays suspended; a reset-on-boot overlay\n"
"                        (images/.np-<key>.qcow2) stays the top.  Without it\n"
"                        writes fail with EIO until a resume.  With it, a\n"
"                        suspend without timeout_ms ends after 10 minutes,\n"
"                        and a late resume on the image already served\n"
"                        succeeds.\n"
"                        A suspend whose flush fails is answered with the\n"
"                        error and the server serves on, not suspended.\n"
"  --export-name NAME    export name (default \"\"); any name ending in \"@ro\"\n"
"                        gets a read-only view of the same chain\n"
"  --engine E            auto|aio|uring (default auto: io_uring, else libaio)\n"
"  --no-direct           do not use O_DIRECT\n"
"  --confine DIR         the image must be in directory DIR (its backing\n"
"                        files are always plain names in that directory)\n"
"  --control PATH        JSON control socket (status/suspend/resume/stop)\n"
"  --import-socket PATH  Unix socket where a client passes (SCM_RIGHTS) one\n"
"                        connected stream socket per connection, which is\n"
"                        then served like a --socket connection (read-only\n"
"                        when the export is); anything else is closed\n"
"  --blkif-shm PATH      Unix socket where one test frontend at a time\n"
"                        attaches a Xen block ring in shared memory (a\n"
"                        memfd and two eventfds, include/proto/blkif-shm.h)\n"
"  --blkif-xen PATH      serve the Xen block ring of the backend directory\n"
"                        PATH in xenstore (e.g. /local/domain/0/backend/\n"
"                        qdisk/DOMID/DEVID; its frontend and frontend-id\n"
"                        keys name the guest's side); not with --blkif-shm\n"
"  --blkif-xen-domain DOMID:r|w:SR:KEY\n"
"                        serve the qdisk ring that xenopsd plugs for domain\n"
"                        DOMID (> 0) after the datapath plugin offered it:\n"
"                        watch /local/domain/0/backend/qdisk/DOMID, claim\n"
"                        the device whose sm-data/ngdp-sr and ngdp-volume\n"
"                        are SR and KEY (mode r: a read-only activation,\n"
"                        which refuses a mode w device), serve it until it\n"
"                        is unplugged, then wait for the next plug; never\n"
"                        touch an unmarked device; not with --blkif-xen or\n"
"                        --blkif-shm\n"
"  --blkif-fail-mark PATH\n"
"                        a Xen ring that cannot be connected (its device is\n"
"                        then closed, the reason in xenstore's error node)\n"
"                        also writes the reason to PATH, atomically (the\n"
"                        datapath plugin then offers the volume /dev/nbdN)\n"
"  --blkif-grant-cache N persistent grants a Xen ring keeps mapped, 16 to\n"
"                        65536 (default 2048, blkback's max_persistent_grants\n"
"                        is 1056); reads hold at most half of them\n"
"  --pidfile PATH        write our PID there (atomically) once listening\n"
"  --ready-fd N          write \"ready\\n\" to fd N and close it once listening\n"
"  --log-stderr          copy log messages to stderr\n"
"  --queue-depth N       maximum data I/O operations in flight (default "
	QD_TEXT(NGDP_QUEUE_DEPTH_DEFAULT) ")\n"
"  --flush-interval MS   flush dirty state after MS ms (default 5000, 0 off)\n"
"  --help                this text\n"
"\n"
"Writes larger than 32 MiB make the server drop the connection (their\n"
"payload is not read); other invalid requests get an error reply.\n"
"Request buffers are capped at 64 MiB per connection and 256 MiB in all;\n"
"a connection over its cap, or that does not read its replies, is not\n"
"read until they drain.\n"
"Exit status: 0 after SIGTERM/SIGINT/stop once all I/O is flushed,\n"
"1 on startup or final flush errors, 2 on usage errors.\n";

enum {
	OPT_IMAGE = 256, OPT_FORMAT, OPT_READONLY, OPT_SOCKET, OPT_TCP,
	OPT_EXPORT, OPT_ENGINE, OPT_NO_DIRECT, OPT_CONFINE, OPT_CONTROL,
	OPT_PIDFILE, OPT_READY_FD, OPT_LOG_STDERR, OPT_QD, OPT_FLUSH_INT,
	OPT_RO_SOCKET, OPT_HEARTBEAT, OPT_RECORD, OPT_IMPORT, OPT_BLKIF_SHM,
	OPT_BLKIF_XEN, OPT_BLKIF_XEN_DOMAIN, OPT_BLKIF_GCACHE, OPT_BLKIF_FAIL_MARK,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "readonly", no_argument, NULL, OPT_READONLY },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "tcp", required_argument, NULL, OPT_TCP },
	{ "export-name", required_argument, NULL, OPT_EXPORT },
	{ "engine", required_argument, NULL, OPT_ENGINE },
	{ "no-direct", no_argument, NULL, OPT_NO_DIRECT },
	{ "confine", required_argument, NULL, OPT_CONFINE },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "ready-fd", required_argument, NULL, OPT_READY_FD },
	{ "log-stderr", no_argument, NULL, OPT_LOG_STDERR },
	{ "queue-depth", required_argument, NULL, OPT_QD },
	{ "flush-interval", required_argument, NULL, OPT_FLUSH_INT },
	{ "ro-socket", required_argument, NULL, OPT_RO_SOCKET },
	{ "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
	{ "volume-record", required_argument, NULL, OPT_RECORD },
	{ "import-socket", required_argument, NULL, OPT_IMPORT },
	{ "blkif-shm", required_argument, NULL, OPT_BLKIF_SHM },
	{ "blkif-xen", required_argument, NULL, OPT_BLKIF_XEN },
	{ "blkif-xen-domain", required_argument, NULL, OPT_BLKIF_XEN_DOMAIN },
	{ "blkif-grant-cache", required_argument, NULL, OPT_BLKIF_GCACHE },
	{ "blkif-fail-mark", required_argument, NULL, OPT_BLKIF_FAIL_MARK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", getpid());

	return write_file_atomic(path, buf, (size_t)n);
}

int main(int argc, char *argv[])
{
	struct server_config cfg = {
		.export_name = "",
		.engine = "auto",
		.queue_depth = NGDP_QUEUE_DEPTH_DEFAULT,
		.flush_interval_ms = 5000,
	};
	const char *sock = NULL, *tcp = NULL, *control = NULL, *pidfile = NULL;
	const char *ro_sock = NULL, *import_sock = NULL, *shm_sock = NULL;
	const char *xen_path = NULL, *fail_mark = NULL;
	struct xb_expect xen_expect = { 0 };
	bool xen_discover = false;
	unsigned int grant_cache = 0;
	struct blkif_shm *shm = NULL;
	struct blkif_xen *xen = NULL;
	struct control *ctl = NULL;
	struct import *imp = NULL;
	bool log_stderr = false;
	long ready_fd = -1;
	struct server srv;
	unsigned long v;
	int c, r, status = 1;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_IMAGE: cfg.image = optarg; break;
		case OPT_FORMAT: cfg.format = optarg; break;
		case OPT_READONLY: cfg.readonly = true; break;
		case OPT_SOCKET: sock = optarg; break;
		case OPT_TCP: tcp = optarg; break;
		case OPT_EXPORT: cfg.export_name = optarg; break;
		case OPT_ENGINE: cfg.engine = optarg; break;
		case OPT_NO_DIRECT: cfg.no_direct = true; break;
		case OPT_CONFINE: cfg.confine = optarg; break;
		case OPT_CONTROL: control = optarg; break;
		case OPT_PIDFILE: pidfile = optarg; break;
		case OPT_RO_SOCKET: ro_sock = optarg; break;
		case OPT_IMPORT: import_sock = optarg; break;
		case OPT_BLKIF_SHM: shm_sock = optarg; break;
		case OPT_BLKIF_XEN: xen_path = optarg; break;
		case OPT_BLKIF_FAIL_MARK: fail_mark = optarg; break;
		case OPT_BLKIF_XEN_DOMAIN:
			if (xb_expect_parse(optarg, &xen_expect) < 0)
				goto bad_usage;
			xen_discover = true;
			break;
		case OPT_BLKIF_GCACHE:
			if (parse_uint(optarg, 65536, &v) < 0 || v < 16)
				goto bad_usage;
			grant_cache = (unsigned int)v;
			break;
		case OPT_HEARTBEAT: cfg.heartbeat = optarg; break;
		case OPT_RECORD: cfg.volume_record = optarg; break;
		case OPT_LOG_STDERR: log_stderr = true; break;
		case OPT_READY_FD:
			if (parse_uint(optarg, INT_MAX, &v) < 0)
				goto bad_usage;
			ready_fd = (long)v;
			break;
		case OPT_QD:
			if (parse_uint(optarg, 4096, &v) < 0 || v < 1)
				goto bad_usage;
			cfg.queue_depth = (unsigned int)v;
			break;
		case OPT_FLUSH_INT:
			if (parse_uint(optarg, 3600000, &v) < 0)
				goto bad_usage;
			cfg.flush_interval_ms = (unsigned int)v;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return 0;
		default:
			goto bad_usage;
		}
	}
	/* one loop hook: one ring transport */
	if (optind != argc || !cfg.image || !sock ||
	    (shm_sock != NULL) + (xen_path != NULL) + xen_discover > 1 ||
	    (fail_mark && !xen_path && !xen_discover))
		goto bad_usage;
	if (cfg.format && strcmp(cfg.format, "raw") &&
	    strcmp(cfg.format, "qcow2") && strcmp(cfg.format, "vpc"))
		goto bad_usage;
	if (strcmp(cfg.engine, "auto") && strcmp(cfg.engine, "aio") &&
	    strcmp(cfg.engine, "uring"))
		goto bad_usage;

	log_init("ngdp-server", log_stderr);
	signal(SIGPIPE, SIG_IGN);
	r = server_init(&srv, &cfg);
	if (r < 0) {
		log_error("cannot serve '%s': %s", cfg.image, strerror(-r));
		goto out;
	}
	r = server_setup_signals(&srv);
	if (r < 0) {
		log_error("cannot set up signals: %s", strerror(-r));
		goto out;
	}
	r = server_listen(&srv, LISTEN_UNIX, sock);
	if (r == 0 && tcp)
		r = server_listen(&srv, LISTEN_TCP, tcp);
	if (r == 0 && ro_sock)
		r = server_listen(&srv, LISTEN_RO, ro_sock);
	if (r == 0 && control)
		r = control_listen(&srv, control, &ctl);
	if (r == 0 && import_sock)
		r = import_listen(&srv, import_sock, &imp);
	if (r == 0 && shm_sock)
		r = blkif_shm_listen(&srv, shm_sock, &shm);
	if (r == 0 && xen_path)
		r = blkif_xen_open(&srv, xen_path, grant_cache, &xen);
	if (r == 0 && xen_discover)
		r = blkif_xen_watch(&srv, &xen_expect, grant_cache, &xen);
	if (r == 0 && xen && fail_mark)
		blkif_xen_set_fail_mark(xen, fail_mark);
	if (r < 0) {
		log_error("cannot listen: %s", strerror(-r));
		goto out_unlink;
	}
	if (pidfile) {
		r = write_pidfile(pidfile);
		if (r < 0) {
			log_error("cannot write pidfile '%s': %s", pidfile,
				  strerror(-r));
			goto out_unlink;
		}
	}
	if (ready_fd >= 0) {
		if (write((int)ready_fd, "ready\n", 6) != 6)
			log_warn("cannot write to --ready-fd %ld: %m", ready_fd);
		close((int)ready_fd);
	}
	log_info("listening on '%s'%s%s", sock, tcp ? " and " : "",
		 tcp ? tcp : "");
	status = server_run(&srv) ? 1 : 0;
	log_info("exiting with status %d", status);
	if (pidfile)
		unlink(pidfile);
out_unlink:
	if (server_listening(&srv, LISTEN_UNIX) || server_stopping(&srv))
		unlink(sock);
	if (ro_sock && (server_listening(&srv, LISTEN_RO) ||
			server_stopping(&srv)))
		unlink(ro_sock);
	if (ctl)
		unlink(control);
out:
	blkif_shm_close(shm);	/* unlinks its socket */
	blkif_xen_close(xen);
	import_close(imp);	/* unlinks its socket */
	control_close(ctl);
	server_release(&srv);
	return status;

bad_usage:
	fputs(usage, stderr);
	return 2;
}

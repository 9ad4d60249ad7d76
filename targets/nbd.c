// SPDX-License-Identifier: MIT
/*
 * nbd: the client side of the Network Block Device protocol, over TCP or a
 * unix socket, to any NBD server (nbdkit, qemu-nbd, nbd-server).
 *
 * Every queue has a connection of its own, opened and negotiated (fixed
 * newstyle, NBD_OPT_GO, simple replies) by ->init.  A request goes out as
 * its 28-byte header and, for a WRITE, its data; the data moves with the
 * request's own pages as a fixed buffer in the zero-copy modes, so nothing
 * is copied in the daemon.  Sends of a connection form one io_uring link
 * chain at a time, so that no two requests' bytes interleave on the wire:
 * what was queued while a chain was out goes in the next one.  Replies are
 * read one at a time: the 16-byte header into the daemon, then a READ's
 * data straight into its request.  The header read rides on a request that
 * still waits for its reply (its SQE is tied to that request), so no SQE is
 * ever in flight that no request owns, and a device stops as any other.
 *
 * A connection that breaks (the server closed it, an error, no reply for
 * timeout= seconds while requests wait) is shut down.  Without reconnect=,
 * its requests and every later one fail with EIO; the device stays until
 * it is deleted.  With reconnect=SECS, its requests are held while a thread
 * of the connection's own connects and negotiates anew (the same export, of
 * the same size and flags), trying for up to SECS seconds; then the queue
 * thread points its ring's fixed file at the new socket and sends every
 * request that had no reply again, from its header.  Only when that time
 * runs out do they fail, as without it.  The thread wakes the queue thread
 * through an eventfd that a held request polls, so that SQE too belongs to
 * a request.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "zublk.h"

/* The protocol, from the NBD specification (doc/proto.md of the NBD project). */
#define NBD_MAGIC 0x4e42444d41474943ULL		/* "NBDMAGIC" */
#define NBD_OPTS_MAGIC 0x49484156454f5054ULL	/* "IHAVEOPT": newstyle */
#define NBD_REP_MAGIC 0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC 0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698U

#define NBD_FLAG_FIXED_NEWSTYLE (1U << 0)	/* handshake flags */
#define NBD_FLAG_NO_ZEROES (1U << 1)

enum { NBD_OPT_EXPORT_NAME = 1, NBD_OPT_ABORT = 2, NBD_OPT_GO = 7 };
enum { NBD_REP_ACK = 1, NBD_REP_INFO = 3 };
#define NBD_REP_ERR(n) ((1U << 31) + (n))
enum { NBD_INFO_EXPORT = 0, NBD_INFO_BLOCK_SIZE = 3 };

enum {					/* transmission flags */
	NBD_TF_HAS_FLAGS = 1U << 0,
	NBD_TF_READ_ONLY = 1U << 1,
	NBD_TF_SEND_FLUSH = 1U << 2,
	NBD_TF_SEND_FUA = 1U << 3,
	NBD_TF_ROTATIONAL = 1U << 4,
	NBD_TF_SEND_TRIM = 1U << 5,
	NBD_TF_SEND_WRITE_ZEROES = 1U << 6,
	NBD_TF_CAN_MULTI_CONN = 1U << 8,
};

enum {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_WRITE_ZEROES = 6,
};
#define NBD_CMD_FLAG_FUA (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE (1U << 1)

struct nbd_request {
	uint32_t magic;
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
} __attribute__((packed));

struct nbd_reply {
	uint32_t magic;
	uint32_t error;
	uint64_t cookie;
} __attribute__((packed));

_Static_assert(sizeof(struct nbd_request) == 28, "the wire's request header");
_Static_assert(sizeof(struct nbd_reply) == 16, "the wire's simple reply");

#define NBD_DEF_PORT "10809"
#define NBD_DEF_TIMEOUT 30U		/* seconds */
#define NBD_LOSSES_MAX 3		/* connections lost with a request sent: it fails */
#define NBD_HANDSHAKE_TIMEOUT 10	/* seconds, for connect and negotiation */
/*
 * Once the device begins to stop (->stopping), how long requests may still
 * wait for their replies on a connection before it is shut down (so that
 * they fail and the deletion, which waits for them, goes on).
 */
#define NBD_STOP_GRACE_MS 5000U
/* Between two tries to connect again: from the first, doubled up to the last. */
#define NBD_RETRY_FIRST_MS 200U
#define NBD_RETRY_MAX_MS 2000U
/* Requests one send chain takes at most. */
#define NBD_CHAIN_MAX 32U
/* A connection's receive buffer (see recv_arm()), and the largest copy_max it takes. */
#define NBD_RBUF (256U << 10)
#define NBD_COPY_MAX_MAX (128U << 10)
#define NBD_DEF_COPY_MAX (64U << 10)

/* Sub-ops of our SQEs. */
enum { NBD_SEND_HDR, NBD_SEND_DATA, NBD_RECV_HDR, NBD_RECV_TIMEOUT, NBD_RECV_DATA,
       NBD_RECONNECT };

/* A connection: up; lost, a thread connecting anew (reconnect=); lost for good. */
enum { C_UP, C_LOST, C_DEAD };

/* A tag's request on its connection. */
enum { T_FREE, T_WAITING, T_REPLIED };

struct nbd_tag {
	struct zublk_io *io;
	struct nbd_request req;	/* as it goes on the wire */
	uint32_t hdr_sent;	/* bytes of @req sent */
	uint32_t data_sent;	/* of a WRITE's data */
	uint32_t data_got;	/* of a READ's reply data */
	uint32_t len;		/* data bytes of a READ or WRITE, else 0 */
	uint16_t inflight;	/* our SQEs of it not back yet */
	uint8_t state;
	bool big;		/* a READ whose data are read into the request, not copied */
	bool queued;		/* in the send fifo: not all of it has gone out */
	uint8_t losses;		/* connections lost with it sent */
	uint32_t gen;		/* the cookie's upper half: which request of this tag */
	uint64_t since_ns;	/* sent (again) on this connection, or waiting to be */
	int result;		/* once T_REPLIED */
	/* the list of requests waiting for a reply */
	int prev, next;
};

struct nbd_conn {
	int fd;
	int idx;		/* fixed file index */
	unsigned id;		/* the queue's */
	struct nbd_dev *nd;
	_Atomic int st;		/* C_*: written by the queue thread, read by `list` */
	/* send side: tags queued to go, in order; a chain of them in flight */
	int *fifo;
	unsigned fifo_head, fifo_len, depth;
	unsigned chain_sqes;	/* CQEs of the chain still to come */
	unsigned chain_reqs;	/* requests at the fifo's head the chain covers */
	/* receive side */
	unsigned char *rbuf;	/* NBD_RBUF bytes of replies read, rlen of them */
	uint32_t rlen;
	bool rhold;		/* the read out takes what comes: big READs are held */
	unsigned nr_wait_big;	/* READs among the waiting whose data go to the request */
	struct __kernel_timespec timeout;	/* read by the kernel when submitted */
	int carrier;		/* tag whose io carries the header read; -1: none */
	int reading;		/* tag whose READ data is being read; -1: none */
	int wait_head, wait_tail; /* requests waiting for a reply; -1: none */
	struct nbd_tag *tags;
	/* reconnect=: the thread that connects anew, and what it found */
	pthread_t thr;
	bool thr_on;		/* started and not joined */
	bool poll_out;		/* a held request polls @efd */
	int efd;		/* the thread's "done", for the queue thread */
	int stop_efd;		/* ->exit's "stop", for the thread */
	_Atomic int result;	/* 0: trying; 1: @new_fd is up; -errno: gave up */
	int new_fd;
	pthread_mutex_t hs_lock;	/* also over @fd's change, for the stop watch */
	int hs_fd;		/* the socket the thread negotiates on; -1: none */
	/*
	 * Requests taken and not finished (waiting for a reply, or replied to
	 * while their send chain is out): written by the queue thread, read by
	 * the stop watch.
	 */
	_Atomic unsigned nr_held;
	_Atomic unsigned progress;	/* replies, reads' data in, sends' bytes out, ever */
	char why[200];		/* why its last try failed */
	uint64_t lost_ns;	/* when requests began to wait for a connection; 0: none */
	int blame;		/* the tag the last loss came of (its reply, its wait); -1: any */
	_Atomic unsigned reconnects;
};

struct nbd_dev {
	char server[300];	/* "HOST:PORT" or "unix:PATH", for messages */
	char export_name[256];
	uint64_t size;
	uint16_t tflags;
	unsigned timeout;	/* seconds; 0: none */
	unsigned reconnect;	/* seconds to connect anew after a loss; 0: no such try */
	/* where the server is, for the tries to connect anew */
	char host[256], port[32], path[108];
	/* what the export was at the first connection: a new one must be the same */
	uint32_t min_bs, max_bs;
	uint32_t copy_max;	/* READs up to this long come through the connection's buffer */
	unsigned nr_conns;
	struct nbd_conn *conns;
	/* ->stopping's watch over requests that still wait (NBD_STOP_GRACE_MS) */
	pthread_t watch;
	bool watch_on;
	int watch_efd;		/* ->exit's "stop" for it */
	/*
	 * What every ring has at a connection's fixed-file index but its own
	 * queue's, which gets the connection (queue_init, reconnect): other
	 * rings held the first socket after a reconnect replaced it.
	 */
	int stand_in;
};

/* ------------------------------------------------------------ the handshake */

/*
 * The handshake's one-line errors.  In a thread connecting anew they are
 * kept, not logged (it tries again and again): the last one goes into the
 * line that says the tries are over.
 */
static __thread char *nbd_why;
static __thread size_t nbd_why_len;

static void nbd_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nbd_err(const char *fmt, ...)
{
	va_list ap;
	char buf[300];

	va_start(ap, fmt);
	vsnprintf(nbd_why ? nbd_why : buf, nbd_why ? nbd_why_len : sizeof(buf), fmt, ap);
	va_end(ap);
	if (!nbd_why)
		zublk_log(ZUBLK_LOG_ERR, "%s", buf);
}

/*
 * When this thread's handshake must be over (0: no limit): a server that
 * sends its part a byte at a time, or replies without end, is given up on
 * then, not only one that is silent for NBD_HANDSHAKE_TIMEOUT.
 */
static __thread uint64_t xfer_end_ns;

/* All of @len bytes, or -errno (-ECONNRESET: the server hung up; -ETIMEDOUT). */
static int xfer(int fd, void *buf, size_t len, bool out)
{
	char *p = buf;

	while (len) {
		ssize_t n;

		if (xfer_end_ns) {
			uint64_t now = zublk_now_ns(), left = xfer_end_ns - now;
			struct timeval tv = { .tv_sec = (time_t)(left / 1000000000ULL),
					      .tv_usec = (suseconds_t)(left % 1000000000ULL / 1000) };

			if (now >= xfer_end_ns)
				return -ETIMEDOUT;
			if (!tv.tv_sec && !tv.tv_usec)
				tv.tv_usec = 1; /* 0 would be no limit */
			if (setsockopt(fd, SOL_SOCKET, out ? SO_SNDTIMEO : SO_RCVTIMEO, &tv,
				       sizeof(tv)))
				return -errno;
		}
		n = out ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int rd(int fd, void *buf, size_t len) { return xfer(fd, buf, len, false); }
static int wr(int fd, const void *buf, size_t len) { return xfer(fd, (void *)buf, len, true); }

static int set_timeouts(int fd, unsigned secs)
{
	struct timeval tv = { .tv_sec = secs };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

/*
 * connect() that gives up after NBD_HANDSHAKE_TIMEOUT seconds, or with
 * -ECANCELED when @stop_fd (-1: none) turns readable.
 */
static int connect_timed(int fd, const struct sockaddr *sa, socklen_t len, int stop_fd)
{
	int fl = fcntl(fd, F_GETFL), err = 0;
	socklen_t elen = sizeof(err);
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLOUT },
				 { .fd = stop_fd, .events = POLLIN } };

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	if (connect(fd, sa, len) == 0)
		goto done;
	if (errno != EINPROGRESS)
		return -errno;
	int n = poll(pfd, stop_fd < 0 ? 1 : 2, NBD_HANDSHAKE_TIMEOUT * 1000);

	if (n == 0)
		return -ETIMEDOUT;
	if (n > 0 && pfd[1].revents)
		return -ECANCELED;
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
		return -errno;
	if (err)
		return -err;
done:
	return fcntl(fd, F_SETFL, fl) ? -errno : 0;
}

/*
 * getaddrinfo() that gives up like connect_timed(): after
 * NBD_HANDSHAKE_TIMEOUT seconds (a name server that does not answer holds
 * glibc's own call for its time-outs times its tries) or when @stop_fd
 * turns readable, so that a device stopping does not wait on the resolver.
 * 0 with *@res to free, -ETIMEDOUT, -ECANCELED, or -EHOSTUNREACH logged.
 */
static int resolve_timed(const struct nbd_dev *nd, int stop_fd, struct addrinfo **res)
{
	/* Given up, a lookup that glibc cannot cancel writes here later: not freed then. */
	struct {
		struct gaicb cb;
		struct addrinfo hints;
		char host[sizeof(nd->host)], port[sizeof(nd->port)];
	} *r = calloc(1, sizeof(*r));
	struct gaicb *list[1];
	uint64_t end = zublk_now_ns() + NBD_HANDSHAKE_TIMEOUT * 1000000000ULL;
	int g;

	if (!r)
		return -ENOMEM;
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	/* Its own copies: @nd may be freed before a lookup given up ends. */
	memcpy(r->host, nd->host, sizeof(r->host));
	memcpy(r->port, nd->port, sizeof(r->port));
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->port;
	r->cb.ar_request = &r->hints;
	list[0] = &r->cb;
	g = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	while (!g && gai_error(&r->cb) == EAI_INPROGRESS) {
		struct timespec slice = { .tv_nsec = 50 * 1000000 };
		struct pollfd p = { .fd = stop_fd, .events = POLLIN };
		uint64_t now = zublk_now_ns();

		if (now >= end || (stop_fd >= 0 && poll(&p, 1, 0) > 0)) {
			bool stop = now < end;
			int c = gai_cancel(&r->cb);

			if (c == EAI_ALLDONE)
				break;
			if (c == EAI_CANCELED)
				free(r);	/* else glibc's thread still has it */
			if (stop)
				return -ECANCELED;
			nbd_err("nbd server %s: no address for '%s' within %d s", nd->server,
				nd->host, NBD_HANDSHAKE_TIMEOUT);
			return -ETIMEDOUT;
		}
		gai_suspend((const struct gaicb *const *)list, 1, &slice);
	}
	if (!g)
		g = gai_error(&r->cb);
	if (g) {
		nbd_err("nbd server %s: %s", nd->server, gai_strerror(g));
		free(r);
		return -EHOSTUNREACH;
	}
	*res = r->cb.ar_result;
	free(r);
	return 0;
}

/* A connected socket to the server, or -errno with one line logged. */
static int nbd_connect(const struct nbd_dev *nd, int stop_fd)
{
	const char *path = nd->path[0] ? nd->path : NULL;
	int fd, ret = -ENOENT;

	if (path) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		if (strlen(path) >= sizeof(sun.sun_path)) {
			nbd_err("nbd server %s: socket path too long", nd->server);
			return -ENAMETOOLONG;
		}
		memcpy(sun.sun_path, path, strlen(path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		ret = connect_timed(fd, (struct sockaddr *)&sun, sizeof(sun), stop_fd);
		if (!ret)
			return fd;
		close(fd);
	} else {
		struct addrinfo *res, *ai;

		ret = resolve_timed(nd, stop_fd, &res);
		if (ret)
			return ret;
		for (ai = res; ai; ai = ai->ai_next) {
			int one = 1;

			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				ret = -errno;
				continue;
			}
			ret = connect_timed(fd, ai->ai_addr, ai->ai_addrlen, stop_fd);
			if (!ret) {
				/* Headers and small replies go out at once. */
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				freeaddrinfo(res);
				return fd;
			}
			close(fd);
		}
		freeaddrinfo(res);
	}
	nbd_err("nbd server %s: connect: %s", nd->server, strerror(-ret));
	/*
	 * No socket file: a server that restarts makes it again, so a
	 * reconnect tries on; -ENOENT would read as an unknown export (final).
	 */
	return ret == -ENOENT ? -ECONNREFUSED : ret;
}

static const char *rep_err_name(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR(1): return "not supported by the server";
	case NBD_REP_ERR(2): return "refused by the server's policy";
	case NBD_REP_ERR(3): return "invalid";
	case NBD_REP_ERR(5): return "the server wants TLS, which zublk does not speak";
	case NBD_REP_ERR(6): return "unknown to the server";
	case NBD_REP_ERR(7): return "the server is shutting down";
	case NBD_REP_ERR(8): return "the server wants block size negotiation";
	case NBD_REP_ERR(9): return "too big";
	default: return "refused by the server";
	}
}

struct nbd_export {
	uint64_t size;
	uint16_t tflags;
	uint32_t min_bs, pref_bs, max_bs;	/* 0: the server did not say */
};

/* NBD_OPT_ABORT, sent on a best-effort basis: the connection closes next. */
static void opt_abort(int fd)
{
	struct {
		uint64_t magic;
		uint32_t opt, len;
	} __attribute__((packed)) a = { htobe64(NBD_OPTS_MAGIC), htobe32(NBD_OPT_ABORT), 0 };

	wr(fd, &a, sizeof(a));
}

/* NBD_OPT_GO.  1: the server does not know the option (try EXPORT_NAME). */
static int opt_go(const struct nbd_dev *nd, int fd, struct nbd_export *ex)
{
	uint32_t nlen = (uint32_t)strlen(nd->export_name);
	struct {
		uint64_t magic;
		uint32_t opt, len;
	} __attribute__((packed)) o = { htobe64(NBD_OPTS_MAGIC), htobe32(NBD_OPT_GO),
					htobe32(4 + nlen + 2 + 2) };
	uint16_t tail[2] = { htobe16(1), htobe16(NBD_INFO_BLOCK_SIZE) };
	uint32_t be_nlen = htobe32(nlen);
	bool have_export = false;
	int ret;

	if ((ret = wr(fd, &o, sizeof(o))) || (ret = wr(fd, &be_nlen, 4)) ||
	    (ret = wr(fd, nd->export_name, nlen)) || (ret = wr(fd, tail, sizeof(tail))))
		return ret;
	for (;;) {
		struct {
			uint64_t magic;
			uint32_t opt, type, len;
		} __attribute__((packed)) r;
		unsigned char data[1024];
		uint32_t type, len, keep;

		if ((ret = rd(fd, &r, sizeof(r))))
			return ret;
		type = be32toh(r.type);
		len = be32toh(r.len);
		if (be64toh(r.magic) != NBD_REP_MAGIC || be32toh(r.opt) != NBD_OPT_GO) {
			nbd_err("nbd server %s: bad option reply", nd->server);
			return -EPROTO;
		}
		/* Keep what fits (an error's text, an info); the rest is read and dropped. */
		if (len > (1U << 20)) {
			nbd_err("nbd server %s: option reply of %u bytes",
				  nd->server, len);
			return -EPROTO;
		}
		keep = len < sizeof(data) ? len : (uint32_t)sizeof(data);
		if ((ret = rd(fd, data, keep)))
			return ret;
		for (uint32_t left = len - keep; left;) {
			char junk[256];
			uint32_t n = left < sizeof(junk) ? left : (uint32_t)sizeof(junk);

			if ((ret = rd(fd, junk, n)))
				return ret;
			left -= n;
		}
		len = keep;
		if (type == NBD_REP_ACK)
			break;
		if (type == NBD_REP_ERR(1))
			return 1;
		if (type & (1U << 31)) {
			/* The server's words, on our one line. */
			for (uint32_t k = 0; k < len; k++)
				if (data[k] < 0x20 || data[k] == 0x7f)
					data[k] = ' ';
			nbd_err("nbd export '%s': %s%s%.*s", nd->export_name,
				  rep_err_name(type), len ? ": " : "", (int)len, (char *)data);
			/* The handshake ends in words, not a hang-up (no reply awaited). */
			opt_abort(fd);
			/* Unknown export: final; shutting down (a restart): worth another try. */
			return type == NBD_REP_ERR(6)	? -ENOENT
			       : type == NBD_REP_ERR(7) ? -EAGAIN
							: -EPERM;
		}
		if (type != NBD_REP_INFO || len < 2)
			continue;
		uint16_t info;

		memcpy(&info, data, 2);
		info = be16toh(info);

		if (info == NBD_INFO_EXPORT && len >= 12) {
			uint64_t sz;
			uint16_t fl;

			memcpy(&sz, data + 2, 8);
			memcpy(&fl, data + 10, 2);
			ex->size = be64toh(sz);
			ex->tflags = be16toh(fl);
			have_export = true;
		} else if (info == NBD_INFO_BLOCK_SIZE && len >= 14) {
			uint32_t v[3];

			memcpy(v, data + 2, 12);
			ex->min_bs = be32toh(v[0]);
			ex->pref_bs = be32toh(v[1]);
			ex->max_bs = be32toh(v[2]);
		}
	}
	if (!have_export) {
		nbd_err("nbd server %s: no export information", nd->server);
		return -EPROTO;
	}
	return 0;
}

/*
 * The old way in: NBD_OPT_EXPORT_NAME (no error reply: the server just
 * hangs up).  -ECONNABORTED, said: at the add that is an unknown export;
 * in a reconnect, whose export was there, more likely a server going away
 * (tried again).
 */
static int opt_export_name(const struct nbd_dev *nd, int fd, bool no_zeroes,
			   struct nbd_export *ex)
{
	uint32_t nlen = (uint32_t)strlen(nd->export_name);
	struct {
		uint64_t magic;
		uint32_t opt, len;
	} __attribute__((packed)) o = { htobe64(NBD_OPTS_MAGIC), htobe32(NBD_OPT_EXPORT_NAME),
					htobe32(nlen) };
	struct {
		uint64_t size;
		uint16_t flags;
	} __attribute__((packed)) r;
	char zeroes[124];
	int ret;

	if ((ret = wr(fd, &o, sizeof(o))) || (ret = wr(fd, nd->export_name, nlen)))
		return ret;
	ret = rd(fd, &r, sizeof(r));
	if (ret == -ECONNRESET) {
		nbd_err("nbd export '%s': unknown to the server (it hung up when asked for it)",
			  nd->export_name);
		return -ECONNABORTED;
	}
	if (!ret && !no_zeroes)
		ret = rd(fd, zeroes, sizeof(zeroes));
	if (ret)
		return ret;
	ex->size = be64toh(r.size);
	ex->tflags = be16toh(r.flags);
	return 0;
}

/* Newstyle negotiation on a fresh connection, up to transmission. */
static int negotiate(const struct nbd_dev *nd, int fd, struct nbd_export *ex)
{
	struct {
		uint64_t magic, opts;
		uint16_t flags;
	} __attribute__((packed)) h;
	uint16_t hflags;
	uint32_t cflags;
	int ret = rd(fd, &h, sizeof(h));

	if (ret)
		return ret;
	if (be64toh(h.magic) != NBD_MAGIC) {
		nbd_err("nbd server %s: not an NBD server", nd->server);
		return -EPROTO;
	}
	if (be64toh(h.opts) != NBD_OPTS_MAGIC) {
		nbd_err("nbd server %s: speaks only the oldstyle handshake",
			  nd->server);
		return -EPROTO;
	}
	hflags = be16toh(h.flags);
	cflags = htobe32(hflags & (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
	if ((ret = wr(fd, &cflags, 4)))
		return ret;
	if (hflags & NBD_FLAG_FIXED_NEWSTYLE) {
		ret = opt_go(nd, fd, ex);
		if (ret <= 0)
			return ret;
	}
	return opt_export_name(nd, fd, hflags & NBD_FLAG_NO_ZEROES, ex);
}

/* ----------------------------------------------------------------- setup */

static void nbd_free(struct nbd_dev *nd)
{
	for (unsigned i = 0; i < nd->nr_conns; i++) {
		struct nbd_conn *c = &nd->conns[i];

		if (c->fd >= 0)
			close(c->fd);
		if (c->new_fd >= 0)
			close(c->new_fd);
		if (c->efd >= 0)
			close(c->efd);
		if (c->stop_efd >= 0)
			close(c->stop_efd);
		pthread_mutex_destroy(&c->hs_lock);
	}
	if (nd->watch_efd >= 0)
		close(nd->watch_efd);
	if (nd->stand_in >= 0)
		close(nd->stand_in);
	free(nd->conns);
	free(nd);
}

/* NBD_CMD_DISC on the connections still whole (no request of theirs in flight). */
static void nbd_goodbye(struct nbd_dev *nd)
{
	struct nbd_request disc = { .magic = htobe32(NBD_REQUEST_MAGIC),
				    .type = htobe16(NBD_CMD_DISC) };

	for (unsigned i = 0; i < nd->nr_conns; i++) {
		struct nbd_conn *c = &nd->conns[i];

		if (c->fd >= 0 && c->st == C_UP && !set_timeouts(c->fd, 1))
			wr(c->fd, &disc, sizeof(disc));
	}
}

/*
 * The export as connection @i found it: the first connection's is the
 * device's; every later one (another queue's, or one made anew after a
 * loss) must find the same.
 */
static int check_export(struct nbd_dev *nd, unsigned i, bool first, const struct nbd_export *ex)
{
	uint16_t tflags = ex->tflags & NBD_TF_HAS_FLAGS ? ex->tflags : 0;

	if (first) {
		nd->size = ex->size;
		nd->tflags = tflags;
		nd->min_bs = ex->min_bs;
		nd->max_bs = ex->max_bs;
		if (nd->nr_conns > 1 && !(nd->tflags & NBD_TF_CAN_MULTI_CONN)) {
			nbd_err("nbd server %s: does not allow more than one connection to export "
				"'%s' (no multi-conn); use -q 1", nd->server, nd->export_name);
			return -EINVAL;
		}
		return 0;
	}
	if (ex->size != nd->size || tflags != nd->tflags || ex->min_bs != nd->min_bs ||
	    ex->max_bs != nd->max_bs) {
		nbd_err("nbd server %s: connection %u finds export '%s' changed: %llu bytes, flags "
			"0x%x, blocks %u..%u (was %llu, 0x%x, %u..%u)", nd->server, i,
			nd->export_name, (unsigned long long)ex->size, tflags, ex->min_bs,
			ex->max_bs, (unsigned long long)nd->size, nd->tflags, nd->min_bs,
			nd->max_bs);
		return -ESTALE;
	}
	return 0;
}

/*
 * Connect and negotiate: a socket in transmission, or -errno with one line
 * (nbd_err()).  @c (or NULL) shows the socket in c->hs_fd while it
 * negotiates, for ->exit to shut it down; @stop_fd ends a connect().
 */
static int conn_open(const struct nbd_dev *nd, struct nbd_conn *c, int stop_fd,
		     struct nbd_export *ex)
{
	int fd = nbd_connect(nd, stop_fd), ret;

	if (fd < 0)
		return fd;
	if (c) {
		pthread_mutex_lock(&c->hs_lock);
		c->hs_fd = fd;
		pthread_mutex_unlock(&c->hs_lock);
	}
	ret = set_timeouts(fd, NBD_HANDSHAKE_TIMEOUT);
	xfer_end_ns = zublk_now_ns() + NBD_HANDSHAKE_TIMEOUT * 1000000000ULL;
	if (!ret)
		ret = negotiate(nd, fd, ex);
	xfer_end_ns = 0;
	if (ret < 0 && ret != -EPROTO && ret != -ENOENT && ret != -EPERM && ret != -EINVAL &&
	    ret != -EAGAIN && ret != -ECONNABORTED)
		nbd_err("nbd server %s: handshake: %s", nd->server,
			ret == -ECONNRESET ? "the server hung up" : strerror(-ret));
	if (!ret)
		ret = set_timeouts(fd, 0);
	if (c) {
		pthread_mutex_lock(&c->hs_lock);
		c->hs_fd = -1;
		pthread_mutex_unlock(&c->hs_lock);
	}
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* @val into @buf, or one line naming @key when it does not fit. */
static int copy_opt(char *buf, size_t len, const char *key, const char *val)
{
	if (strlen(val) >= len) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%.40s...': longer than %zu bytes", key, val, len - 1);
		return -EINVAL;
	}
	snprintf(buf, len, "%s", val);
	return 0;
}

static int hex_val(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode @n bytes of @s into @out (@len bytes); -1 if bad or too long. */
static int uri_decode(const char *s, size_t n, char *out, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n || hex_val(s[i + 1]) < 0 || hex_val(s[i + 2]) < 0)
				return -1;
			c = hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]);
			if (!c)
				return -1;
			i += 2;
		}
		if (o + 1 >= len)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/*
 * uri=: the NBD URI form (the NBD project's doc/uri.md) of where the server
 * is: nbd://HOST[:PORT]/[EXPORT] or nbd+unix:///[EXPORT]?socket=PATH.  The
 * export is the path without its first '/'.  TLS (nbds) is refused.
 */
static int parse_uri(struct nbd_dev *nd, const char *uri)
{
	const char *p, *path, *query, *end;
	bool unix_sock;

	if (!strncmp(uri, "nbds://", 7) || !strncmp(uri, "nbds+unix://", 12)) {
		zublk_log(ZUBLK_LOG_ERR, "uri '%s': TLS (nbds) is not spoken by zublk", uri);
		return -EINVAL;
	}
	unix_sock = !strncmp(uri, "nbd+unix://", 11);
	if (!unix_sock && strncmp(uri, "nbd://", 6) && strncmp(uri, "nbd+tcp://", 10)) {
		zublk_log(ZUBLK_LOG_ERR, "uri '%s': not an NBD URI (nbd://HOST[:PORT]/EXPORT or "
			  "nbd+unix:///EXPORT?socket=PATH)", uri);
		return -EINVAL;
	}
	p = strstr(uri, "://") + 3;
	path = p + strcspn(p, "/?#");
	end = path + strcspn(path, "?#");	/* the path ends at the query or fragment */
	query = *end == '?' ? end : NULL;
	if (*path == '/' && uri_decode(path + 1, (size_t)(end - path - 1), nd->export_name,
				       sizeof(nd->export_name))) {
		zublk_log(ZUBLK_LOG_ERR, "uri '%s': a bad or too long export name", uri);
		return -EINVAL;
	}
	if (unix_sock) {
		const char *sock = NULL;

		if (path != p) {
			zublk_log(ZUBLK_LOG_ERR, "uri '%s': nbd+unix takes no host", uri);
			return -EINVAL;
		}
		for (const char *q = query; q; q = strchr(q + 1, '&'))
			if (!strncmp(q + 1, "socket=", 7))
				sock = q + 8;
		if (!sock || uri_decode(sock, strcspn(sock, "&#"), nd->path, sizeof(nd->path)) ||
		    nd->path[0] != '/') {
			zublk_log(ZUBLK_LOG_ERR, "uri '%s': needs ?socket=PATH, an absolute path of "
				  "up to %zu bytes", uri, sizeof(nd->path) - 1);
			return -EINVAL;
		}
		return 0;
	}
	/* HOST[:PORT], HOST an IPv6 address in brackets. */
	const char *hend = path, *colon;

	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(path - p));

		if (!rb) {
			zublk_log(ZUBLK_LOG_ERR, "uri '%s': no ']' after the IPv6 address", uri);
			return -EINVAL;
		}
		if (rb + 1 != path && rb[1] != ':') {
			zublk_log(ZUBLK_LOG_ERR, "uri '%s': '%.*s' after the IPv6 address", uri,
				  (int)(path - rb - 1), rb + 1);
			return -EINVAL;
		}
		colon = rb[1] == ':' ? rb + 1 : NULL;
		p++;
		hend = rb;
	} else {
		colon = memchr(p, ':', (size_t)(path - p));
		if (colon)
			hend = colon;
	}
	/* Percent-decoded as the export is (an IPv6 zone: fe80::1%25eth0). */
	if (hend == p || uri_decode(p, (size_t)(hend - p), nd->host, sizeof(nd->host))) {
		zublk_log(ZUBLK_LOG_ERR, "uri '%s': no host, or one too long or wrongly "
			  "percent-encoded", uri);
		return -EINVAL;
	}
	snprintf(nd->port, sizeof(nd->port), "%s", NBD_DEF_PORT);
	if (colon && colon + 1 < path) {
		size_t n = (size_t)(path - colon - 1);

		unsigned v;

		if (n < sizeof(nd->port)) {
			memcpy(nd->port, colon + 1, n);
			nd->port[n] = '\0';
		}
		if (n >= sizeof(nd->port) || zublk_parse_uint(nd->port, 1, 65535, &v)) {
			zublk_log(ZUBLK_LOG_ERR, "uri '%s': the port is not a number 1..65535", uri);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_opts(struct nbd_dev *nd, struct zublk_opts *opts)
{
	const char *exp = zublk_opts_get(opts, "export"), *t = zublk_opts_get(opts, "timeout");
	const char *host = zublk_opts_get(opts, "host"), *port = zublk_opts_get(opts, "port");
	const char *path = zublk_opts_get(opts, "socket"), *rc = zublk_opts_get(opts, "reconnect");
	const char *uri = zublk_opts_get(opts, "uri");
	uint64_t copy_max = NBD_DEF_COPY_MAX;

	if (uri && (host || port || path || exp)) {
		zublk_log(ZUBLK_LOG_ERR, "target nbd: uri= says where the server is: no host=, "
			  "port=, socket= or export= with it");
		return -EINVAL;
	}
	if (uri) {
		if (parse_uri(nd, uri))
			return -EINVAL;
		host = nd->host[0] ? nd->host : NULL;
		path = nd->path[0] ? nd->path : NULL;
		port = host ? nd->port : NULL;
	}
	if ((!host || !*host) == (!path || !*path)) {
		zublk_log(ZUBLK_LOG_ERR, "target nbd: needs host=HOST (and port=PORT) or "
			  "socket=PATH (or uri=), one of them");
		return -EINVAL;
	}
	if (path && port) {
		zublk_log(ZUBLK_LOG_ERR, "target nbd: port= goes with host=, not socket=");
		return -EINVAL;
	}
	if (!port || !*port)
		port = NBD_DEF_PORT;
	/*
	 * A number, 1..65535 (the resolver would take 70000 as 4464), or a
	 * service name, which starts with a letter ("12abc", "-1": numbers gone wrong).
	 */
	if (!uri && strchr("0123456789+-", port[0])) {
		unsigned v;

		if (zublk_parse_uint(port, 1, 65535, &v)) {
			zublk_log(ZUBLK_LOG_ERR, "port '%s': not a port number 1..65535", port);
			return -EINVAL;
		}
	}
	if (!uri && (path ? copy_opt(nd->path, sizeof(nd->path), "socket", path)
			  : copy_opt(nd->host, sizeof(nd->host), "host", host) ||
				    copy_opt(nd->port, sizeof(nd->port), "port", port)))
		return -EINVAL;
	if (exp && strlen(exp) >= sizeof(nd->export_name)) {
		zublk_log(ZUBLK_LOG_ERR, "export '%.40s...': longer than %zu bytes", exp,
			  sizeof(nd->export_name) - 1);
		return -EINVAL;
	}
	if (!uri)
		snprintf(nd->export_name, sizeof(nd->export_name), "%s", exp ? exp : "");
	nd->timeout = NBD_DEF_TIMEOUT;
	if (t && zublk_parse_uint(t, 0, 86400, &nd->timeout)) {
		zublk_log(ZUBLK_LOG_ERR, "timeout '%s': not a number of seconds 0..86400", t);
		return -EINVAL;
	}
	if (rc && zublk_parse_uint(rc, 0, 86400, &nd->reconnect)) {
		zublk_log(ZUBLK_LOG_ERR, "reconnect '%s': not a number of seconds 0..86400", rc);
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "copy_max", &copy_max) || copy_max > NBD_COPY_MAX_MAX) {
		zublk_log(ZUBLK_LOG_ERR, "copy_max '%s': not a size up to 128k",
			  zublk_opts_get(opts, "copy_max"));
		return -EINVAL;
	}
	nd->copy_max = (uint32_t)copy_max;
	if (path)
		snprintf(nd->server, sizeof(nd->server), "unix:%s", path);
	else
		snprintf(nd->server, sizeof(nd->server), strchr(host, ':') ? "[%s]:%s" : "%s:%s",
			 host, port);
	return 0;
}

static unsigned shift_of(uint32_t v)
{
	unsigned s = 9;

	while (s < 12 && (1U << s) < v)
		s++;
	return s;
}

static int nbd_init(struct zublk_dev *dev, struct zublk_opts *opts,
		    struct zublk_target_geom *geom)
{
	struct nbd_export ex = { 0 };
	struct nbd_dev *nd;
	int ret;

	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->watch_efd = nd->stand_in = -1;
	ret = parse_opts(nd, opts);
	if (ret) {
		free(nd);
		return ret;
	}
	/* A server that goes away must not kill the daemon on a send. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		free(nd);
		return -errno;
	}
	nd->nr_conns = zublk_dev_nr_queues(dev);
	nd->conns = calloc(nd->nr_conns, sizeof(*nd->conns));
	if (!nd->conns) {
		free(nd);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nd->nr_conns; i++) {
		struct nbd_conn *c = &nd->conns[i];

		c->fd = c->efd = c->stop_efd = c->hs_fd = c->new_fd = -1;
		c->id = i;
		c->nd = nd;
		pthread_mutex_init(&c->hs_lock, NULL);
	}
	/* A socket: no part of the backing identity, as the connections are not. */
	nd->stand_in = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (nd->stand_in < 0) {
		ret = -errno;
		goto err;
	}
	for (unsigned i = 0; i < nd->nr_conns; i++) {
		struct nbd_conn *c = &nd->conns[i];

		memset(&ex, 0, sizeof(ex));
		c->fd = conn_open(nd, NULL, -1, &ex);
		if (c->fd < 0) {
			ret = c->fd;
			goto err;
		}
		ret = check_export(nd, i, i == 0, &ex);
		if (ret)
			goto err;
		if (nd->reconnect) {
			c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			c->stop_efd = eventfd(0, EFD_CLOEXEC);
			if (c->efd < 0 || c->stop_efd < 0) {
				ret = -errno;
				goto err;
			}
		}
		c->idx = zublk_dev_add_file(dev, nd->stand_in);
		if (c->idx < 0) {
			ret = c->idx;
			goto err;
		}
	}
	if (ex.min_bs > 4096) {
		zublk_log(ZUBLK_LOG_ERR, "nbd export '%s': blocks of %u bytes; at most 4096 can be "
			  "served", nd->export_name, ex.min_bs);
		ret = -EINVAL;
		goto err;
	}
	/*
	 * The spec's: powers of two, the preferred one no smaller than the
	 * minimum, the maximum a multiple of the minimum (or no limit).
	 */
	if ((ex.min_bs & (ex.min_bs - 1)) || (ex.pref_bs & (ex.pref_bs - 1)) ||
	    ex.pref_bs < ex.min_bs ||
	    (ex.min_bs && ex.max_bs != UINT32_MAX && ex.max_bs % ex.min_bs)) {
		zublk_log(ZUBLK_LOG_ERR, "nbd export '%s': block sizes minimum %u, preferred %u, "
			  "maximum %u: not powers of two, the preferred below the minimum, or "
			  "the maximum not a multiple of the minimum", nd->export_name, ex.min_bs,
			  ex.pref_bs, ex.max_bs);
		ret = -EINVAL;
		goto err;
	}
	geom->size = nd->size;
	geom->logical_bs_shift = shift_of(ex.min_bs);
	geom->physical_bs_shift = shift_of(ex.pref_bs);
	geom->max_io_bytes = ex.max_bs;
	/* Small READs are copied out of the connection's buffer (user copy in zero copy). */
	geom->want_copy = nd->copy_max > 0;
	/* Its length field is 32 bits. */
	geom->max_discard_sectors = 1U << 22;
	geom->caps = 0;
	if (nd->tflags & NBD_TF_READ_ONLY)
		geom->caps |= ZUBLK_CAP_READ_ONLY;
	if (nd->tflags & NBD_TF_SEND_FLUSH)
		geom->caps |= ZUBLK_CAP_FLUSH;
	if ((nd->tflags & (NBD_TF_SEND_FLUSH | NBD_TF_SEND_FUA)) ==
	    (NBD_TF_SEND_FLUSH | NBD_TF_SEND_FUA))
		geom->caps |= ZUBLK_CAP_FUA;
	if (nd->tflags & NBD_TF_ROTATIONAL)
		geom->caps |= ZUBLK_CAP_ROTATIONAL;
	if (!(nd->tflags & NBD_TF_READ_ONLY)) {
		if (nd->tflags & NBD_TF_SEND_TRIM)
			geom->caps |= ZUBLK_CAP_DISCARD;
		if (nd->tflags & NBD_TF_SEND_WRITE_ZEROES)
			geom->caps |= ZUBLK_CAP_WRITE_ZEROES;
	}
	zublk_dev_set_priv(dev, nd);
	return 0;

err:
	nbd_goodbye(nd);
	nbd_free(nd);
	return ret;
}

static void reconnect_stop(struct nbd_conn *c);

static void nbd_exit(struct zublk_dev *dev)
{
	struct nbd_dev *nd = zublk_dev_priv(dev);

	if (!nd)
		return;
	if (nd->watch_on) {
		eventfd_write(nd->watch_efd, 1);
		pthread_join(nd->watch, NULL);
	}
	for (unsigned i = 0; i < nd->nr_conns; i++)
		reconnect_stop(&nd->conns[i]);
	nbd_goodbye(nd);
	nbd_free(nd);
}

static void nbd_queue_free(struct nbd_conn *c)
{
	free(c->tags);
	free(c->fifo);
	free(c->rbuf);
	c->tags = NULL;
	c->fifo = NULL;
	c->rbuf = NULL;
}

static int nbd_queue_init(struct zublk_queue *q)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct nbd_conn *c = &nd->conns[zublk_queue_id(q)];
	unsigned depth = zublk_dev_info(zublk_queue_dev(q))->queue_depth;
	int ret;

	c->depth = depth;
	c->carrier = c->reading = c->wait_head = c->wait_tail = c->blame = -1;
	c->tags = calloc(depth, sizeof(*c->tags));
	c->fifo = calloc(depth, sizeof(*c->fifo));
	c->rbuf = malloc(NBD_RBUF);
	if (!c->tags || !c->fifo || !c->rbuf) {
		nbd_queue_free(c);
		return -ENOMEM;
	}
	/* The connection in this queue's ring only. */
	ret = zublk_queue_set_file(q, c->idx, c->fd);
	if (ret) {
		zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u: registering its socket: %s",
			  nd->server, c->id, strerror(-ret));
		nbd_queue_free(c);
		return ret;
	}
	zublk_queue_set_priv(q, c);
	return 0;
}

static void nbd_queue_exit(struct zublk_queue *q)
{
	struct nbd_conn *c = zublk_queue_priv(q);

	if (c)
		nbd_queue_free(c);
}

/* ------------------------------------------------------------ the data path */

/* One writer (the queue thread): a plain load and store, no atomic add. */
static unsigned held_count(struct nbd_conn *c)
{
	return atomic_load_explicit(&c->nr_held, memory_order_relaxed);
}

static void held_add(struct nbd_conn *c, int n)
{
	atomic_store_explicit(&c->nr_held, held_count(c) + (unsigned)n, memory_order_relaxed);
}

static void wait_add(struct nbd_conn *c, int t)
{
	held_add(c, 1);
	c->tags[t].prev = c->wait_tail;
	c->tags[t].next = -1;
	if (c->wait_tail >= 0)
		c->tags[c->wait_tail].next = t;
	else
		c->wait_head = t;
	c->wait_tail = t;
}

/* Something came from the server, or went out to it (the stop watch looks). */
static void conn_progress(struct nbd_conn *c)
{
	atomic_store_explicit(&c->progress,
			      atomic_load_explicit(&c->progress, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void wait_del(struct nbd_conn *c, int t)
{
	struct nbd_tag *tg = &c->tags[t];

	conn_progress(c);
	if (tg->prev >= 0)
		c->tags[tg->prev].next = tg->next;
	else
		c->wait_head = tg->next;
	if (tg->next >= 0)
		c->tags[tg->next].prev = tg->prev;
	else
		c->wait_tail = tg->prev;
	tg->prev = tg->next = -1;
}

/* @t has its reply (or failed): it leaves the wait list; done once its SQEs are back. */
static void tag_replied(struct nbd_conn *c, int t, int result)
{
	struct nbd_tag *tg = &c->tags[t];

	if (tg->state != T_WAITING)
		return;
	wait_del(c, t);
	if (tg->big)
		c->nr_wait_big--;
	tg->state = T_REPLIED;
	tg->result = result;
}

static void tag_finish(struct zublk_queue *q, struct nbd_conn *c, int t)
{
	struct nbd_tag *tg = &c->tags[t];

	if (tg->state != T_REPLIED || tg->inflight || tg->queued)
		return;
	tg->state = T_FREE;
	held_add(c, -1);
	zublk_io_complete(q, tg->io, tg->result);
}

static void send_kick(struct zublk_queue *q, struct nbd_conn *c);
static void recv_arm(struct zublk_queue *q, struct nbd_conn *c);

/* The connection is gone for good: its requests and every later one fail. */
static void conn_dead(struct zublk_queue *q, struct nbd_conn *c)
{
	c->st = C_DEAD;
	c->lost_ns = 0;
	while (c->wait_head >= 0) {
		int t = c->wait_head;

		tag_replied(c, t, -EIO);
		tag_finish(q, c, t);
	}
	/* `list` shows it: "connected": false. */
	zublk_dev_save_state(zublk_queue_dev(q));
}

/* ----------------------------------------------------- connecting anew */

/*
 * The thread of reconnect=: connect and negotiate until a connection finds
 * the export as it was, the time runs out (from when requests began to
 * wait), the export changed, or the device is stopping (->stopping, ->exit:
 * @stop_efd turns readable and stays so).
 */
static void *reconnect_main(void *arg)
{
	struct nbd_conn *c = arg;
	struct nbd_dev *nd = c->nd;
	uint64_t end = c->lost_ns + (uint64_t)nd->reconnect * 1000000000ULL;
	unsigned wait_ms = NBD_RETRY_FIRST_MS;
	int ret;

	nbd_why = c->why;
	nbd_why_len = sizeof(c->why);
	for (;;) {
		struct nbd_export ex = { 0 };
		struct pollfd p = { .fd = c->stop_efd, .events = POLLIN };
		uint64_t now;
		int fd;

		if (poll(&p, 1, 0) != 0) {
			ret = -ESHUTDOWN;
			snprintf(c->why, sizeof(c->why), "the device is stopping");
			break;
		}
		c->why[0] = 0;
		fd = conn_open(nd, c, c->stop_efd, &ex);
		ret = fd < 0 ? fd : check_export(nd, c->id, false, &ex);
		if (!ret) {
			c->new_fd = fd;
			ret = 1;
			break;
		}
		if (fd >= 0)
			close(fd);
		now = zublk_now_ns();
		/* Another export, or another server there: no use trying again. */
		if (ret == -ESTALE || ret == -ENOENT || ret == -EPERM || ret == -EINVAL ||
		    now >= end)
			break;
		if ((uint64_t)wait_ms * 1000000ULL > end - now)
			wait_ms = (unsigned)((end - now) / 1000000ULL) + 1;
		poll(&p, 1, (int)wait_ms);	/* stopping ends it early */
		wait_ms = wait_ms * 2 < NBD_RETRY_MAX_MS ? wait_ms * 2 : NBD_RETRY_MAX_MS;
	}
	if (ret < 0 && !c->why[0])
		snprintf(c->why, sizeof(c->why), "%s", strerror(-ret));
	if (ret < 0 && ret != -ESHUTDOWN && ret != -ESTALE && ret != -ENOENT && ret != -EPERM &&
	    ret != -EINVAL) {
		char last[sizeof(c->why)];

		memcpy(last, c->why, sizeof(last));
		snprintf(c->why, sizeof(c->why), "not back within %u s; the last try: %.150s",
			 nd->reconnect, last);
	}
	atomic_store(&c->result, ret);
	eventfd_write(c->efd, 1);
	return NULL;
}

/*
 * Any thread: a thread of @c that tries (or will) stops within a
 * handshake's time at most.
 */
static void reconnect_tell_stop(struct nbd_conn *c)
{
	if (c->stop_efd < 0)
		return;
	eventfd_write(c->stop_efd, 1);
	pthread_mutex_lock(&c->hs_lock);
	if (c->hs_fd >= 0)
		shutdown(c->hs_fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->hs_lock);
}

/* ->exit, the queues gone: the thread is stopped and joined. */
static void reconnect_stop(struct nbd_conn *c)
{
	if (!c->thr_on)
		return;
	reconnect_tell_stop(c);
	pthread_join(c->thr, NULL);
	c->thr_on = false;
}

/*
 * ->stopping's watch, until ->exit: a connection that holds requests while
 * nothing has come from the server or gone out to it for NBD_STOP_GRACE_MS
 * would hold the deletion: a server that stopped answering, or stopped
 * reading what we send (a WRITE's data wait for room for ever); timeout=
 * may be long or none.  It is shut down, so its requests end (the queue
 * thread finds it lost).  One whose replies come or whose data go out (a
 * deletion's sync of much written data, to a slow reader) is left alone.
 */
static void *stop_watch_main(void *arg)
{
	struct nbd_dev *nd = arg;
	struct pollfd p = { .fd = nd->watch_efd, .events = POLLIN };
	unsigned *seen = calloc(nd->nr_conns, sizeof(*seen));
	unsigned *still_ms = calloc(nd->nr_conns, sizeof(*still_ms));

	while (seen && still_ms) {
		int r = poll(&p, 1, 100);

		if (r > 0 || (r < 0 && errno != EINTR))
			break;	/* ->exit */
		for (unsigned i = 0; i < nd->nr_conns; i++) {
			struct nbd_conn *c = &nd->conns[i];
			unsigned n = held_count(c);
			unsigned done = atomic_load_explicit(&c->progress, memory_order_relaxed);

			if (!n || done != seen[i]) {
				seen[i] = done;
				still_ms[i] = 0;
				continue;
			}
			still_ms[i] += 100;
			if (still_ms[i] < NBD_STOP_GRACE_MS)
				continue;
			still_ms[i] = 0;
			pthread_mutex_lock(&c->hs_lock);
			if (c->st == C_UP && c->fd >= 0) {
				zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u: %u requests "
					  "held, and nothing came or went out for %u s since the "
					  "device began to stop; shutting it down",
					  nd->server, i, n, NBD_STOP_GRACE_MS / 1000);
				shutdown(c->fd, SHUT_RDWR);
			}
			pthread_mutex_unlock(&c->hs_lock);
		}
	}
	free(seen);
	free(still_ms);
	return NULL;
}

/*
 * The device is being deleted or stopped, and the kernel waits for the
 * requests we hold: the tries to connect end (those held fail), and the
 * watch gives the ones waiting for replies their grace.
 */
static void nbd_stopping(struct zublk_dev *dev)
{
	struct nbd_dev *nd = zublk_dev_priv(dev);

	if (!nd)
		return;
	for (unsigned i = 0; i < nd->nr_conns; i++)
		reconnect_tell_stop(&nd->conns[i]);
	nd->watch_efd = eventfd(0, EFD_CLOEXEC);
	if (nd->watch_efd >= 0 && !pthread_create(&nd->watch, NULL, stop_watch_main, nd))
		nd->watch_on = true;
}

/*
 * While the thread tries, one held request polls its eventfd, so that the
 * queue thread wakes when it is done (a request's SQE, as every other).
 */
static void reconnect_arm(struct zublk_queue *q, struct nbd_conn *c)
{
	struct io_uring_sqe *sqe;
	struct nbd_tag *tg;

	if (c->st != C_LOST || c->poll_out || c->wait_head < 0)
		return;
	sqe = zublk_queue_get_sqe(q);
	if (!sqe)
		return;	/* the next CQE of this connection tries again */
	tg = &c->tags[c->wait_head];
	io_uring_prep_poll_add(sqe, c->efd, POLLIN);
	zublk_io_sqe_mark(q, tg->io, sqe, NBD_RECONNECT);
	tg->inflight++;
	c->poll_out = true;
}

/* The connection is back on @fd: every request still without a reply goes again. */
static void reconnect_resume(struct zublk_queue *q, struct nbd_conn *c, int fd)
{
	struct nbd_dev *nd = c->nd;
	unsigned n = 0;
	int ret = zublk_queue_set_file(q, c->idx, fd);

	if (ret) {
		close(fd);
		zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u: the new socket cannot be "
			  "used: %s; its requests fail", nd->server, c->id, strerror(-ret));
		conn_dead(q, c);
		return;
	}
	pthread_mutex_lock(&c->hs_lock);
	close(c->fd);
	c->fd = fd;
	pthread_mutex_unlock(&c->hs_lock);
	c->rlen = 0;
	c->rhold = false;
	c->carrier = c->reading = -1;
	c->chain_sqes = c->chain_reqs = 0;
	c->fifo_head = c->fifo_len = 0;
	for (int t = c->wait_head, next; t >= 0; t = next) {
		struct nbd_tag *tg = &c->tags[t];

		next = tg->next;
		/*
		 * Out on NBD_LOSSES_MAX connections lost with it (of its own
		 * reply or wait, where the loss says whose): the server cannot
		 * take it.
		 */
		if (tg->hdr_sent && (c->blame < 0 || c->blame == t) &&
		    ++tg->losses >= NBD_LOSSES_MAX) {
			zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u: a request of %u "
				  "bytes at %llu lost with %u connections: failed", nd->server,
				  c->id, be32toh(tg->req.len),
				  (unsigned long long)be64toh(tg->req.offset), NBD_LOSSES_MAX);
			tag_replied(c, t, -EIO);
			tag_finish(q, c, t);
			continue;
		}
		tg->hdr_sent = tg->data_got = 0;
		tg->data_sent = be16toh(tg->req.type) == NBD_CMD_READ ? tg->len : 0;
		tg->queued = true;
		tg->since_ns = zublk_now_ns();
		c->fifo[c->fifo_len++] = t;
		n++;
	}
	c->blame = -1;
	zublk_log(ZUBLK_LOG_WARN, "nbd server %s: connection %u back after %.1f s; %u requests "
		  "sent again", nd->server, c->id, (double)(zublk_now_ns() - c->lost_ns) / 1e9, n);
	if (!n)
		c->lost_ns = 0;
	atomic_fetch_add(&c->reconnects, 1);
	c->st = C_UP;
	zublk_dev_save_state(zublk_queue_dev(q));
	send_kick(q, c);
	recv_arm(q, c);
}

/*
 * After every event of a lost connection: once the thread is done and no
 * SQE of the old connection is out, resume on the new one or give up.
 */
static void reconnect_step(struct zublk_queue *q, struct nbd_conn *c)
{
	int ret;

	if (c->st != C_LOST)
		return;
	ret = atomic_load(&c->result);
	if (!ret) {
		reconnect_arm(q, c);
		return;
	}
	for (unsigned t = 0; t < c->depth; t++)
		if (c->tags[t].inflight)
			return;
	pthread_join(c->thr, NULL);
	c->thr_on = false;
	if (ret > 0) {
		int fd = c->new_fd;

		c->new_fd = -1;
		reconnect_resume(q, c, fd);
		return;
	}
	zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u given up: %s; its requests fail",
		  c->nd->server, c->id, c->why);
	conn_dead(q, c);
}

static void conn_fail(struct zublk_queue *q, struct nbd_conn *c, const char *why, int err)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	eventfd_t v;

	if (c->st != C_UP)
		return;
	/* Whatever we still have out on it comes back now, with an error. */
	shutdown(c->fd, SHUT_RDWR);
	for (unsigned i = 0; i < c->fifo_len; i++)
		c->tags[c->fifo[(c->fifo_head + i) % c->depth]].queued = false;
	/* One whose reply came while its chain was out is done now. */
	for (unsigned i = 0; i < c->fifo_len; i++)
		tag_finish(q, c, c->fifo[(c->fifo_head + i) % c->depth]);
	c->fifo_len = 0;
	c->chain_reqs = 0;
	c->carrier = c->reading = -1;
	if (nd->reconnect) {
		/* The time runs from the first loss since a reply last came. */
		if (!c->lost_ns)
			c->lost_ns = zublk_now_ns();
		eventfd_read(c->efd, &v);
		atomic_store(&c->result, 0);
		c->st = C_LOST;
		if (!pthread_create(&c->thr, NULL, reconnect_main, c)) {
			c->thr_on = true;
			zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u lost: %s%s%s; "
				  "connecting again (for up to %u s)", nd->server, c->id, why,
				  err ? ": " : "", err ? strerror(-err) : "", nd->reconnect);
			zublk_dev_save_state(zublk_queue_dev(q));
			reconnect_arm(q, c);
			return;
		}
	}
	zublk_log(ZUBLK_LOG_ERR, "nbd server %s: connection %u lost: %s%s%s; its requests fail",
		  nd->server, c->id, why, err ? ": " : "", err ? strerror(-err) : "");
	conn_dead(q, c);
}

/* The connection is lost for request @t's sake (its reply, its wait). */
static void conn_fail_for(struct zublk_queue *q, struct nbd_conn *c, int t, const char *why,
			  int err)
{
	c->blame = t;
	conn_fail(q, c, why, err);
}

/* The tag a CQE of ours belongs to. */
static int tag_of(struct nbd_conn *c, struct zublk_io *io)
{
	return io->tag < c->depth ? io->tag : -1;
}

/* Queue the next send chain when none is out: the requests at the fifo's head. */
static void send_kick(struct zublk_queue *q, struct nbd_conn *c)
{
	unsigned k, space, nsqe = 0, done = 0;

	if (c->st != C_UP || c->chain_sqes || !c->fifo_len)
		return;
	k = c->fifo_len < NBD_CHAIN_MAX ? c->fifo_len : NBD_CHAIN_MAX;
	/* While a read takes whatever comes, no big READ's data may: hold them. */
	for (unsigned i = 0; c->rhold && i < k; i++)
		if (c->tags[c->fifo[(c->fifo_head + i) % c->depth]].big)
			k = i;
	if (!k)
		return;
	/* Header, data and a buffer registration each at most. */
	space = zublk_queue_sq_reserve(q, 3 * k);
	if (space / 3 < k)
		k = space / 3;
	if (!k) {
		conn_fail(q, c, "no room on the queue's ring", -EBUSY);
		return;
	}
	for (unsigned i = 0; i < k; i++) {
		struct nbd_tag *tg = &c->tags[c->fifo[(c->fifo_head + i) % c->depth]];

		if (tg->data_sent < tg->len && zublk_io_buf_prepare(q, tg->io)) {
			conn_fail(q, c, "no SQE to register a buffer", -EBUSY);
			return;
		}
		nsqe += (tg->hdr_sent < sizeof(tg->req)) + (tg->data_sent < tg->len);
	}
	for (unsigned i = 0; i < k; i++) {
		int t = c->fifo[(c->fifo_head + i) % c->depth];
		struct nbd_tag *tg = &c->tags[t];

		if (tg->hdr_sent < sizeof(tg->req)) {
			struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);

			if (!sqe) {
				conn_fail(q, c, "no SQE for a send", -EBUSY);
				return;
			}
			io_uring_prep_send(sqe, c->idx, (char *)&tg->req + tg->hdr_sent,
					   sizeof(tg->req) - tg->hdr_sent,
					   MSG_NOSIGNAL | MSG_WAITALL |
						   (++done < nsqe ? MSG_MORE : 0));
			sqe->flags |= IOSQE_FIXED_FILE | (done < nsqe ? IOSQE_IO_LINK : 0);
			zublk_io_sqe_mark(q, tg->io, sqe, NBD_SEND_HDR);
			tg->inflight++;
		}
		if (tg->data_sent < tg->len) {
			int ret = zublk_io_prep_rw_flags(q, tg->io, true, c->idx, 0, tg->data_sent,
							 tg->len - tg->data_sent, NBD_SEND_DATA,
							 ++done < nsqe ? IOSQE_IO_LINK : 0);

			if (ret) {
				conn_fail(q, c, "no SQE for a send", ret);
				return;
			}
			tg->inflight++;
		}
	}
	c->chain_sqes = nsqe;
	c->chain_reqs = k;
}

/* A CQE of the send chain. */
static void send_done(struct zublk_queue *q, struct nbd_conn *c, struct nbd_tag *tg,
		      unsigned sub, int res)
{
	if (res > 0) {
		conn_progress(c);
		if (sub == NBD_SEND_HDR)
			tg->hdr_sent += (uint32_t)res;
		else
			tg->data_sent += (uint32_t)res;
	} else if (res != -ECANCELED && c->st == C_UP) {
		/* -ECANCELED: behind a short send in the chain; it goes again. */
		conn_fail(q, c, "sending", res ? res : -EPIPE);
	}
	if (c->st != C_UP || --c->chain_sqes)
		return;
	/* The chain is back: drop what went out whole, send the rest. */
	while (c->chain_reqs) {
		struct nbd_tag *h = &c->tags[c->fifo[c->fifo_head]];

		if (h->hdr_sent < sizeof(h->req) || h->data_sent < h->len)
			break;
		h->queued = false;
		c->fifo_head = (c->fifo_head + 1) % c->depth;
		c->fifo_len--;
		c->chain_reqs--;
		/* Its reply may have come while the rest of the chain was out. */
		tag_finish(q, c, (int)(h - c->tags));
	}
	c->chain_reqs = 0;
	send_kick(q, c);
}

/*
 * The tag whose waiting request a reply's @cookie names (its low half the
 * tag, its high half which request of it: a late reply to an older one
 * names none), or -1.
 */
static int reply_tag(const struct nbd_conn *c, uint64_t cookie)
{
	uint32_t t = (uint32_t)cookie;

	return t < c->depth && c->tags[t].state == T_WAITING &&
			       c->tags[t].gen == (uint32_t)(cookie >> 32)
		       ? (int)t
		       : -1;
}

/* Bytes the reply at the head of the buffer still lacks (0: it is whole). */
static uint32_t reply_lacks(const struct nbd_conn *c)
{
	struct nbd_reply rep;
	uint32_t need = sizeof(rep);
	int t;

	if (c->rlen >= sizeof(rep)) {
		memcpy(&rep, c->rbuf, sizeof(rep));
		t = reply_tag(c, be64toh(rep.cookie));
		/* A small READ's data come with it; anything odd is for reply_in() to judge. */
		if (be32toh(rep.magic) == NBD_SIMPLE_REPLY_MAGIC && !rep.error && t >= 0 &&
		    be16toh(c->tags[t].req.type) == NBD_CMD_READ && !c->tags[t].big)
			need += c->tags[t].len;
	}
	return need > c->rlen ? need - c->rlen : 0;
}

/* The timeout linked after a receive of @tg's (IOSQE_IO_LINK set on it): timeout= s. */
static void recv_timeout(struct zublk_queue *q, struct nbd_conn *c, struct nbd_tag *tg)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct io_uring_sqe *to = zublk_queue_get_sqe(q);

	if (!to) {
		/* The receive is linked to nothing that comes: the ring is broken anyway. */
		conn_fail(q, c, "no SQE for a timeout", -EBUSY);
		return;
	}
	c->timeout.tv_sec = nd->timeout;
	io_uring_prep_link_timeout(to, &c->timeout, 0);
	zublk_io_sqe_mark(q, tg->io, to, NBD_RECV_TIMEOUT);
	tg->inflight++;
}

/*
 * Read replies, on a request still waiting for its reply.  While no big READ
 * waits (one whose data go straight into its request), every reply is a
 * header, or a header and a small READ's data: one read takes whatever has
 * come, into the connection's buffer, and big READs queued meanwhile are
 * held back (send_kick()).  Otherwise the read takes just the reply at the
 * head: a header, then a big READ's data go into its request (recv_data()).
 */
static void recv_arm(struct zublk_queue *q, struct nbd_conn *c)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	uint32_t want = reply_lacks(c);
	struct io_uring_sqe *sqe;
	struct nbd_tag *tg;

	if (c->st != C_UP || c->carrier >= 0 || c->reading >= 0 || c->wait_head < 0)
		return;
	tg = &c->tags[c->wait_head];
	c->rhold = !c->nr_wait_big;
	if (c->rhold)
		want = NBD_RBUF - c->rlen;
	zublk_queue_sq_reserve(q, 2);
	sqe = zublk_queue_get_sqe(q);
	if (!sqe) {
		conn_fail(q, c, "no SQE for a receive", -EBUSY);
		return;
	}
	io_uring_prep_recv(sqe, c->idx, c->rbuf + c->rlen, want, c->rhold ? 0 : MSG_WAITALL);
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, tg->io, sqe, NBD_RECV_HDR);
	tg->inflight++;
	c->carrier = c->wait_head;
	if (nd->timeout) {
		sqe->flags |= IOSQE_IO_LINK;
		recv_timeout(q, c, tg);
	}
}

static int nbd_errno(uint32_t e)
{
	switch (e) {
	case 1: return -EPERM;
	case 5: return -EIO;
	case 12: return -ENOMEM;
	case 22: return -EINVAL;
	case 28: return -ENOSPC;
	case 75: return -EOVERFLOW;
	case 95: return -EOPNOTSUPP;
	case 108: return -ESHUTDOWN;
	default: return -EIO;
	}
}

/* A big READ's data, straight into its request; timed as a header's receive is. */
static void recv_data(struct zublk_queue *q, struct nbd_conn *c, int t)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct nbd_tag *tg = &c->tags[t];
	int ret;

	if (!nd->timeout) {
		ret = zublk_io_prep_rw(q, tg->io, false, c->idx, 0, tg->data_got,
				       tg->len - tg->data_got, NBD_RECV_DATA);
	} else {
		/* The receive and its timeout in one chain: nothing between them. */
		zublk_queue_sq_reserve(q, 3);
		ret = zublk_io_buf_prepare(q, tg->io);
		if (!ret)
			ret = zublk_io_prep_rw_flags(q, tg->io, false, c->idx, 0, tg->data_got,
						     tg->len - tg->data_got, NBD_RECV_DATA,
						     IOSQE_IO_LINK);
	}
	if (ret) {
		conn_fail(q, c, "no SQE for a receive", ret);
		return;
	}
	tg->inflight++;
	if (nd->timeout)
		recv_timeout(q, c, tg);
}

/* Copy a small READ's @len bytes of data from the buffer into its request. */
static int copy_in(struct zublk_queue *q, struct nbd_tag *tg, const void *data, uint32_t len)
{
	struct zublk_io *io = tg->io;

	/* The daemon's own buffer for it; shared memory only by system call. */
	if (io->buf && !(io->flags & UBLK_IO_F_SHMEM_ZC)) {
		memcpy(io->buf, data, len);
		return 0;
	}
	return zublk_io_copy(q, io, 0, (void *)data, len);
}

/*
 * The reply at @p, @avail bytes of it in the buffer: finish its request,
 * or start reading a big READ's data.  Returns the bytes it took, 0 when
 * the reply is not whole yet, -1 when the connection failed.
 */
static int reply_in(struct zublk_queue *q, struct nbd_conn *c, const unsigned char *p,
		    uint32_t avail)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct nbd_reply rep;
	uint64_t cookie;
	uint32_t err, took = sizeof(rep);
	struct nbd_tag *tg;
	int t, ret;

	memcpy(&rep, p, sizeof(rep));
	cookie = be64toh(rep.cookie);
	err = be32toh(rep.error);
	if (be32toh(rep.magic) != NBD_SIMPLE_REPLY_MAGIC) {
		conn_fail(q, c, "a reply with a bad magic", -EPROTO);
		return -1;
	}
	t = reply_tag(c, cookie);
	if (t < 0 || c->tags[t].hdr_sent < sizeof(c->tags[t].req)) {
		conn_fail(q, c, "a reply to no request of ours", -EPROTO);
		return -1;
	}
	tg = &c->tags[t];
	/*
	 * A WRITE's data all went out before the server could have read them
	 * all, and its send's CQE comes before any reply's: a reply while some
	 * still wait to go out is the server's answer to data it does not
	 * have (its own reading out of step with ours).  The request waits
	 * as the others do, for a new connection or to fail with them.
	 */
	if (tg->data_sent < tg->len) {
		conn_fail_for(q, c, t, "a reply to a WRITE whose data had not all gone out", -EPROTO);
		return -1;
	}
	/*
	 * NBD_ESHUTDOWN: the server is going away and did not do it; the
	 * client must disconnect.  The request waits as the others do: sent
	 * again on a new connection (reconnect=), else failed with them.  It
	 * is no answer: the time since the connection was first lost runs on.
	 */
	if (err == 108) {
		conn_fail_for(q, c, t, "the server is shutting down", 0);
		return -1;
	}
	c->lost_ns = 0;		/* the server answers: a later loss has its own time */
	if (err)
		zublk_log(ZUBLK_LOG_WARN, "nbd server %s: %s of %u bytes at %llu: %s", nd->server,
			  be16toh(tg->req.type) == NBD_CMD_READ ? "read" : "request",
			  be32toh(tg->req.len), (unsigned long long)be64toh(tg->req.offset),
			  strerror(-nbd_errno(err)));
	if (!err && be16toh(tg->req.type) == NBD_CMD_READ && tg->big) {
		/* Only the header was read (recv_arm() holds big READs back otherwise). */
		if (avail > sizeof(rep)) {
			conn_fail(q, c, "a big read's data came into the buffer", -EPROTO);
			return -1;
		}
		c->reading = t;
		tg->data_got = 0;
		recv_data(q, c, t);
		return (int)took;
	}
	if (!err && be16toh(tg->req.type) == NBD_CMD_READ) {
		if (avail < sizeof(rep) + tg->len)
			return 0;
		ret = copy_in(q, tg, p + sizeof(rep), tg->len);
		took += tg->len;
		if (ret) {
			zublk_log(ZUBLK_LOG_ERR, "nbd server %s: copying a read's %u bytes into its "
				  "request: %s", nd->server, tg->len, strerror(-ret));
			err = 5;	/* EIO */
		}
	}
	tag_replied(c, t, err ? nbd_errno(err) : (int)tg->len);
	tag_finish(q, c, t);
	return (int)took;
}

/* The read out is back with @got more bytes in the buffer. */
static void replies_in(struct zublk_queue *q, struct nbd_conn *c, uint32_t got)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	bool held = c->rhold;
	uint32_t off = 0;

	c->carrier = -1;
	c->rhold = false;
	c->rlen += got;
	while (c->rlen - off >= sizeof(struct nbd_reply) && c->reading < 0) {
		int took = reply_in(q, c, c->rbuf + off, c->rlen - off);

		if (took < 0)
			return;
		if (!took)
			break;
		off += (uint32_t)took;
	}
	/*
	 * A server that answers the others but not the oldest (timeout=):
	 * the connection is taken for lost, as when nothing comes at all.
	 */
	if (off && nd->timeout && c->wait_head >= 0 && c->wait_head != c->reading &&
	    zublk_now_ns() - c->tags[c->wait_head].since_ns >
		    (uint64_t)nd->timeout * 1000000000ULL) {
		conn_fail_for(q, c, c->wait_head, "a request unanswered past timeout=", -ETIMEDOUT);
		return;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	recv_arm(q, c);
	if (held)
		send_kick(q, c);
}

static void recv_done(struct zublk_queue *q, struct nbd_conn *c, int t, unsigned sub, int res)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct nbd_tag *tg = &c->tags[t];

	if (sub == NBD_RECV_TIMEOUT)
		return;	/* -ETIME when it fired; the read then comes back -ECANCELED */
	if (c->st != C_UP)
		return;
	if (res <= 0) {
		char why[64];

		if (res == -ECANCELED && sub == NBD_RECV_HDR)
			snprintf(why, sizeof(why), "no reply for %u s", nd->timeout);
		else if (res == -ECANCELED)
			snprintf(why, sizeof(why), "no more of a read's data for %u s",
				 nd->timeout);
		else
			snprintf(why, sizeof(why), "%s", res == 0 ? "the server closed it"
								 : "receiving");
		conn_fail(q, c, why, res == -ECANCELED ? -ETIMEDOUT : res);
		return;
	}
	if (sub == NBD_RECV_HDR) {
		replies_in(q, c, (uint32_t)res);
		return;
	}
	/* NBD_RECV_DATA */
	tg->data_got += (uint32_t)res;
	conn_progress(c);
	if (tg->data_got < tg->len) {
		recv_data(q, c, t);
		return;
	}
	c->reading = -1;
	tag_replied(c, t, (int)tg->len);
	recv_arm(q, c);
}

static void nbd_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct nbd_conn *c = zublk_queue_priv(q);
	int t = tag_of(c, io);
	struct nbd_tag *tg;

	if (t < 0)
		return;
	tg = &c->tags[t];
	tg->inflight--;
	if (sub == NBD_RECONNECT)
		c->poll_out = false;
	else if (sub == NBD_SEND_HDR || sub == NBD_SEND_DATA)
		send_done(q, c, tg, sub, res);
	else
		recv_done(q, c, t, sub, res);
	reconnect_step(q, c);
	tag_finish(q, c, t);
}

static int nbd_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct nbd_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	struct nbd_conn *c = zublk_queue_priv(q);
	int t = tag_of(c, io);
	struct nbd_tag *tg;
	uint16_t type, flags = 0;

	if (t < 0)
		return -EINVAL;
	if (c->st == C_DEAD)
		return -EIO;
	switch (io->op) {
	case UBLK_IO_OP_READ:
		type = NBD_CMD_READ;
		break;
	case UBLK_IO_OP_WRITE:
		type = NBD_CMD_WRITE;
		if (io->flags & UBLK_IO_F_FUA)
			flags |= NBD_CMD_FLAG_FUA;
		break;
	case UBLK_IO_OP_FLUSH:
		type = NBD_CMD_FLUSH;	/* offset and length 0: the request's sector means nothing */
		break;
	case UBLK_IO_OP_DISCARD:
		type = NBD_CMD_TRIM;
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		type = NBD_CMD_WRITE_ZEROES;
		if (io->flags & UBLK_IO_F_NOUNMAP)
			flags |= NBD_CMD_FLAG_NO_HOLE;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (io->len > UINT32_MAX)
		return -EINVAL;
	tg = &c->tags[t];
	if (tg->state != T_FREE)
		return -EBUSY;
	tg->io = io;
	tg->req = (struct nbd_request){
		.magic = htobe32(NBD_REQUEST_MAGIC),
		.flags = htobe16(flags),
		.type = htobe16(type),
		.cookie = htobe64((uint64_t)++tg->gen << 32 | (uint64_t)t),
		.offset = htobe64(type == NBD_CMD_FLUSH ? 0 : io->offset),
		.len = htobe32((uint32_t)io->len),
	};
	tg->hdr_sent = tg->data_sent = tg->data_got = 0;
	tg->len = io->op == UBLK_IO_OP_READ || io->op == UBLK_IO_OP_WRITE ? (uint32_t)io->len : 0;
	tg->inflight = 0;
	tg->queued = false;
	tg->losses = 0;
	tg->since_ns = zublk_now_ns();
	tg->result = 0;
	tg->state = T_WAITING;
	wait_add(c, t);
	tg->big = type == NBD_CMD_READ &&
		  (io->len > nd->copy_max || !zublk_io_can_copy(q, io));
	if (tg->big)
		c->nr_wait_big++;
	/* Data goes out in WRITEs only; a READ's comes in. */
	if (tg->len && io->op == UBLK_IO_OP_READ)
		tg->data_sent = tg->len;
	if (c->st == C_LOST) {
		/* Held; it goes out with the others when the connection is back. */
		reconnect_step(q, c);
		return 0;
	}
	c->fifo[(c->fifo_head + c->fifo_len) % c->depth] = t;
	c->fifo_len++;
	tg->queued = true;
	send_kick(q, c);
	recv_arm(q, c);
	return 0;
}

static void nbd_status(struct zublk_dev *dev, FILE *json)
{
	struct nbd_dev *nd = zublk_dev_priv(dev);
	unsigned reconnects = 0;
	bool up = true;

	if (!nd)
		return;
	for (unsigned i = 0; i < nd->nr_conns; i++)
		if (nd->conns[i].st != C_UP)
			up = false;
	fputs(",\"server\":", json);
	zublk_json_str(json, nd->server);
	fputs(",\"export\":", json);
	zublk_json_str(json, nd->export_name);
	fprintf(json, ",\"connections\":%u,\"connected\":%s,\"timeout\":%u,\"copy_max\":%u",
		nd->nr_conns, up ? "true" : "false", nd->timeout, nd->copy_max);
	for (unsigned i = 0; i < nd->nr_conns; i++)
		reconnects += atomic_load(&nd->conns[i].reconnects);
	fprintf(json, ",\"reconnect\":%u,\"reconnects\":%u", nd->reconnect, reconnects);
}

const struct zublk_target_ops zublk_nbd_ops = {
	.name = "nbd",
	.summary = "a client of an NBD server (nbdkit, qemu-nbd, nbd-server)",
	.usage = "host=HOST [port=PORT] (default 10809) or socket=PATH  export=NAME (default: the "
		 "server's default)  or instead uri=nbd://HOST[:PORT]/EXPORT or "
		 "uri=nbd+unix:///EXPORT?socket=PATH  timeout=SECS (no reply that long while requests wait: the "
		 "connection is dropped and they fail; default 30, 0: never)  reconnect=SECS (a lost "
		 "connection is made anew, for up to SECS, while its requests wait, then they go "
		 "again; default 0: they fail at once)  copy_max=SIZE (reads "
		 "up to SIZE come through the connection's buffer and are copied, larger ones go "
		 "straight into the request; default 64k, 0: none)",
	.modes = ZUBLK_MODES_ALL,
	/*
	 * Small reads are copied, not registered: auto-zero-copy would
	 * register every request's pages; zero copy registers only a write's
	 * and a big read's (bench/results/nbd: 0.83 / 0.68 x the kernel's nbd
	 * at 4k QD32 reads / writes where auto-zero-copy made 0.70 / 0.66).
	 */
	.prefer_modes = ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY),
	.init = nbd_init,
	.exit = nbd_exit,
	.queue_init = nbd_queue_init,
	.queue_exit = nbd_queue_exit,
	.queue_io = nbd_queue_io,
	.io_done = nbd_io_done,
	.status = nbd_status,
	.stopping = nbd_stopping,
};

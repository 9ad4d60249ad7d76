// SPDX-License-Identifier: MIT
/*
 * The daemon's control socket: one SOCK_SEQPACKET request per connection,
 * argv as NUL-separated words, the answer "<status>\0<message>".  The main
 * thread serves it between signals, so a request never touches the data
 * path except through what it calls (resize, target control).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define CTL_MAX_MSG 8192
#define CTL_MAX_ARGS 32
#define CTL_TIMEOUT_MS 60000
/*
 * A daemon that does not accept (stopped, or stuck in its teardown) fills
 * its listen backlog; the next connect() would wait for ever.
 */
#define CTL_CONNECT_S 5

static int sock_path(const char *dir, unsigned id, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%u.sock", dir, id) >=
	    sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int zublk_ctl_listen(struct zublk_dev *dev)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, ret;

	dev->ctl_fd = -1;
	if (!dev->state_dir[0])
		return 0;
	ret = sock_path(dev->state_dir, dev->info.dev_id, &sa);
	if (ret)
		return ret;
	ret = zublk_state_dir_make(dev->state_dir);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Made 0600 whatever the umask (the file takes the socket's mode). */
	fchmod(fd, 0600);
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4) ||
	    stat(sa.sun_path, &st)) {
		ret = -errno;
		close(fd);
		zublk_warn("control socket %s: %s", sa.sun_path, strerror(-ret));
		return ret;
	}
	chmod(sa.sun_path, 0600);
	dev->ctl_ino = st.st_ino;
	dev->ctl_fd = fd;
	return 0;
}

void zublk_ctl_close(struct zublk_dev *dev)
{
	struct sockaddr_un sa;
	struct stat st;

	if (dev->ctl_fd < 0)
		return;
	close(dev->ctl_fd);
	dev->ctl_fd = -1;
	/* Ours only: a new daemon of the device (a recovery) may have bound its own. */
	if (!sock_path(dev->state_dir, dev->info.dev_id, &sa) && !lstat(sa.sun_path, &st) &&
	    st.st_ino == dev->ctl_ino)
		unlink(sa.sun_path);
}

int zublk_dev_ctl_fd(const struct zublk_dev *dev)
{
	return dev->ctl_fd;
}

static int handle(struct zublk_dev *dev, int argc, char **argv, char *reply, size_t len)
{
	uint64_t size;
	int ret;

	if (argc == 1 && !strcmp(argv[0], "ping")) {
		snprintf(reply, len, "pong %d", (int)getpid());
		return 0;
	}
	if (argc == 1 && !strcmp(argv[0], "stopping")) {
		zublk_dev_tell_stopping(dev);
		snprintf(reply, len, "device %u: told", dev->info.dev_id);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[0], "resize")) {
		if (zublk_parse_size(argv[1], &size)) {
			snprintf(reply, len, "size '%s': not a size", argv[1]);
			return -EINVAL;
		}
		ret = zublk_dev_resize(dev, size);
		if (ret)
			snprintf(reply, len, "%s", zublk_last_error_or(strerror(-ret)));
		else
			snprintf(reply, len, "device %u: %llu bytes", dev->info.dev_id,
				 (unsigned long long)size);
		return ret;
	}
	/* Fault injection for tests: one queue thread quits as if it died. */
	if (argc == 2 && !strcmp(argv[0], "debug-exit-queue")) {
		unsigned q;

		if (zublk_parse_uint(argv[1], 0, 4095, &q)) {
			snprintf(reply, len, "queue '%s': not a queue number", argv[1]);
			return -EINVAL;
		}
		ret = zublk_dev_kick_queue(dev, q);
		snprintf(reply, len, "queue %u: %s", q, ret ? strerror(-ret) : "told to exit");
		return ret;
	}
	if (argc >= 2 && !strcmp(argv[0], "target")) {
		if (!dev->ops->control) {
			snprintf(reply, len, "target %s takes no runtime requests", dev->ops->name);
			return -EOPNOTSUPP;
		}
		reply[0] = '\0';
		return dev->ops->control(dev, argc - 1, argv + 1, reply, len);
	}
	snprintf(reply, len, "request '%s': unknown", argc ? argv[0] : "");
	return -EINVAL;
}

void zublk_dev_ctl_serve(struct zublk_dev *dev)
{
	char msg[CTL_MAX_MSG], reply[1024], out[CTL_MAX_MSG];
	char *argv[CTL_MAX_ARGS];
	struct ucred cred;
	struct pollfd pfd;
	int fd, argc = 0, ret, n;
	ssize_t len;

	fd = accept4(dev->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* Root or our own user only (the socket's mode says so too). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &(socklen_t){ sizeof(cred) }) ||
	    (cred.uid != 0 && cred.uid != geteuid()))
		goto out;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 5000) <= 0)
		goto out;
	len = recv(fd, msg, sizeof(msg) - 1, 0);
	if (len <= 0)
		goto out;
	msg[len] = '\0';
	for (char *p = msg; p < msg + len && argc <= CTL_MAX_ARGS; p += strlen(p) + 1)
		if (argc < CTL_MAX_ARGS)
			argv[argc++] = p;
		else
			argc++;
	zublk_last_error_clear();
	reply[0] = '\0';
	if (argc > CTL_MAX_ARGS) {
		snprintf(reply, sizeof(reply), "request: more than %d words", CTL_MAX_ARGS);
		ret = -E2BIG;
	} else {
		ret = handle(dev, argc, argv, reply, sizeof(reply));
	}
	n = snprintf(out, sizeof(out), "%d", ret);
	n++;
	n += snprintf(out + n, sizeof(out) - (size_t)n, "%s", reply);
	send(fd, out, (size_t)n, MSG_NOSIGNAL);
out:
	close(fd);
}

/* A connected control socket with @argc words of @argv sent, or -errno. */
static int ctl_send(const char *state_dir, unsigned id, int argc, char *const *argv,
		    char *reply, size_t reply_len)
{
	char msg[CTL_MAX_MSG];
	struct sockaddr_un sa;
	size_t n = 0;
	int fd, ret;

	if (!state_dir)
		state_dir = zublk_state_dir();
	ret = zublk_state_dir_trusted(state_dir);
	if (ret) {
		snprintf(reply, reply_len, "state directory %s: %s", state_dir,
			 ret == -EPERM ? "not a directory of yours or root's" : strerror(-ret));
		return ret;
	}
	ret = sock_path(state_dir, id, &sa);
	if (ret)
		return ret;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;

		if (n + l > sizeof(msg))
			return -E2BIG;
		memcpy(msg + n, argv[i], l);
		n += l;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bounds connect() (a full backlog) and send() (a full queue) on AF_UNIX. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO,
		   &(struct timeval){ .tv_sec = CTL_CONNECT_S }, sizeof(struct timeval));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		if (ret == -EAGAIN) {
			ret = -ETIMEDOUT;
			snprintf(reply, reply_len, "the daemon on %s takes no requests "
				 "(none accepted for %d s)", sa.sun_path, CTL_CONNECT_S);
		} else {
			snprintf(reply, reply_len, "no daemon answers on %s: %s", sa.sun_path,
				 strerror(-ret));
		}
		close(fd);
		return ret;
	}
	if (send(fd, msg, n, MSG_NOSIGNAL) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int zublk_ctl_send(const char *state_dir, unsigned id, int argc, char *const *argv)
{
	char reply[300];
	int fd = ctl_send(state_dir, id, argc, argv, reply, sizeof(reply));

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int zublk_ctl_request(const char *state_dir, unsigned id, int argc, char *const *argv,
		      char *reply, size_t reply_len)
{
	char in[CTL_MAX_MSG];
	struct pollfd pfd;
	ssize_t len;
	int fd, ret;

	reply[0] = '\0';
	fd = ctl_send(state_dir, id, argc, argv, reply, reply_len);
	if (fd < 0)
		return fd;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0) {
		ret = -ETIMEDOUT;
		snprintf(reply, reply_len, "the daemon did not answer in %d s",
			 CTL_TIMEOUT_MS / 1000);
		goto out;
	}
	len = recv(fd, in, sizeof(in) - 1, 0);
	if (len <= 0) {
		ret = len < 0 ? -errno : -EPIPE;
		goto out;
	}
	in[len] = '\0';
	ret = atoi(in);
	if (strlen(in) + 1 < (size_t)len)
		snprintf(reply, reply_len, "%s", in + strlen(in) + 1);
out:
	close(fd);
	return ret;
}

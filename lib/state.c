// SPDX-License-Identifier: MIT
/*
 * What a daemon serves, for `zublk list` and for recovery:
 *   <state_dir>/<id>.json   written atomically once the device is live
 *   <state_dir>/<id>.stats  per-queue counters, mmapped shared
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* A state file is read whole, up to this. */
#define STATE_MAX_BYTES (1 << 20)

static void path_of(const char *dir, unsigned id, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%u.%s", dir, id, ext);
}

void zublk_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* @dir is a directory (not a link to one) of ours, or with @or_root root's: 0 or -errno. */
static int state_dir_owned(const char *dir, bool or_root)
{
	struct stat st;

	if (lstat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && !(or_root && st.st_uid == 0)) ||
	    (st.st_mode & S_IWOTH))
		return -EPERM;
	return 0;
}

/*
 * A state file of @dir opened: not through a link, not waiting on a FIFO,
 * and a regular file (root reads users' directories: what they put there
 * is theirs to choose), its stat in *@st.  The fd, or -errno.
 */
static int state_open(const char *path, int flags, mode_t mode, struct stat *st)
{
	int fd = zublk_open_nowait(path, flags | O_NOFOLLOW, mode);

	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

int zublk_state_log_open(const char *dir, unsigned id)
{
	char path[300];
	struct stat st;
	int ret = zublk_state_dir_make(dir);

	if (ret)
		return ret;
	path_of(dir, id, "log", path, sizeof(path));
	return state_open(path, O_WRONLY | O_CREAT | O_APPEND, 0644, &st);
}

/*
 * Whether what @dir holds may be believed: for a user, a directory the
 * user or root owns (another user may have made /tmp/zublk-UID first).
 * Root reads users' own directories, which its callers check.
 */
int zublk_state_dir_trusted(const char *dir)
{
	return geteuid() == 0 ? 0 : state_dir_owned(dir, true);
}

/*
 * Make the state directory if it is not there: root's readable by all, a
 * user's by that user alone.  One that is not ours (a directory in /tmp
 * someone else made first) is not used: -EPERM, said once.
 */
int zublk_state_dir_make(const char *dir)
{
	int ret;

	if (mkdir(dir, geteuid() ? 0700 : 0755) && errno != EEXIST)
		return -errno;
	ret = state_dir_owned(dir, false);
	if (ret == -EPERM) {
		static bool said;

		if (!said)
			zublk_warn("state directory %s: not a directory of ours; no state kept", dir);
		said = true;
	}
	return ret;
}

int zublk_state_write(struct zublk_dev *dev)
{
	char path[300], tmp[310];
	FILE *f;
	int ret = 0;

	if (!dev->state_dir[0])
		return 0;
	ret = zublk_state_dir_make(dev->state_dir);
	if (ret)
		return ret;
	path_of(dev->state_dir, dev->info.dev_id, "json", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		ret = -errno;
		zublk_warn("state file %s: %s", tmp, strerror(-ret));
		return ret;
	}
	fprintf(f, "{\"id\":%u,\"target\":", dev->info.dev_id);
	zublk_json_str(f, dev->ops->name);
	fprintf(f, ",\"mode\":\"%s\",\"queues\":%u,\"depth\":%u,\"max_io\":%u,"
		   "\"size\":%llu,\"logical_block\":%u,\"daemon_pid\":%d,\"flags\":%llu,"
		   "\"recovery\":\"%s\",\"pin_queues\":%d,\"poll_us\":%u,\"threads\":%u,"
		   "\"files\":\"%s\","
		   "\"options\":[",
		zublk_mode_name(dev->mode), dev->nr_queues, dev->info.queue_depth,
		dev->info.max_io_buf_bytes, (unsigned long long)dev->geom.size,
		1U << dev->geom.logical_bs_shift, (int)getpid(),
		(unsigned long long)dev->info.flags,
		!(dev->info.flags & UBLK_F_USER_RECOVERY)	   ? "off"
		: (dev->info.flags & UBLK_F_USER_RECOVERY_FAIL_IO) ? "fail-io"
								   : "reissue",
		dev->cfg.pin_queues ? 1 : 0, dev->cfg.poll_us,
		dev->nr_workers ? dev->nr_workers : dev->cfg.nr_threads, dev->files_id);
	for (unsigned i = 0; dev->opts && i < dev->opts->nr; i++) {
		char kv[4096];

		snprintf(kv, sizeof(kv), "%s=%s", dev->opts->v[i].key, dev->opts->v[i].val);
		if (i)
			fputc(',', f);
		zublk_json_str(f, kv);
	}
	fprintf(f, "]");
	if (dev->nr_shm) {
		fprintf(f, ",\"shmem\":[");
		for (unsigned i = 0; i < dev->nr_shm; i++) {
			char v[4200];

			/* "INDEX:PATH", "INDEXr:PATH" for one mapped read-only. */
			snprintf(v, sizeof(v), "%d%s:%s", dev->shm[i].index,
				 dev->shm[i].read_only ? "r" : "", dev->cfg.shmem[i]);
			if (i)
				fputc(',', f);
			zublk_json_str(f, v);
		}
		/*
		 * Which file each is, "DEV.INO.LEN", for a recovery to find the
		 * same; a key of its own, which an older zublk passes over.
		 */
		fprintf(f, "],\"shmem_id\":[");
		for (unsigned i = 0; i < dev->nr_shm; i++)
			fprintf(f, "%s\"%llu.%llu.%llu\"", i ? "," : "",
				(unsigned long long)dev->shm[i].dev,
				(unsigned long long)dev->shm[i].ino,
				(unsigned long long)dev->shm[i].len);
		fprintf(f, "]");
	}
	if (dev->ops->status)
		dev->ops->status(dev, f);
	fprintf(f, "}\n");
	/* A write that failed (a full /run) leaves no cut file in the state's place. */
	if (ferror(f))
		ret = -EIO;
	else if (fflush(f) || fsync(fileno(f)))
		ret = -errno;
	if (fclose(f) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		unlink(tmp);
		zublk_warn("state file %s: %s", path, strerror(-ret));
	}
	return ret;
}

/* A new stats file's head, written before anyone can see it. */
static void stats_head(struct zublk_stats_file *sf, unsigned nr_queues)
{
	sf->nr_queues = nr_queues;
	sf->magic = ZUBLK_STATS_MAGIC;
}

int zublk_stats_map(struct zublk_dev *dev)
{
	char path[300], tmp[310];
	size_t len = sizeof(struct zublk_stats_file) +
		     dev->nr_queues * sizeof(struct zublk_queue_stats);
	void *p = MAP_FAILED;
	int fd = -1;

	if (dev->state_dir[0] && !zublk_state_dir_make(dev->state_dir)) {
		/*
		 * Made anew and renamed in place: a reader may have the old one
		 * mapped, which truncating it would fault.
		 */
		path_of(dev->state_dir, dev->info.dev_id, "stats", path, sizeof(path));
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0 && ftruncate(fd, (off_t)len) == 0)
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			stats_head(p, dev->nr_queues);
			if (rename(tmp, path)) {
				munmap(p, len);
				p = MAP_FAILED;
			}
		}
		if (fd >= 0) {
			close(fd);
			if (p == MAP_FAILED)
				unlink(tmp);
		}
	}
	/* Without a state dir the counters still exist, just unseen. */
	if (p == MAP_FAILED) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		stats_head(p, dev->nr_queues);
	}
	dev->stats = p;
	dev->stats_len = len;
	return 0;
}

void zublk_state_remove(struct zublk_dev *dev, bool unlink_files)
{
	if (dev->stats)
		munmap(dev->stats, dev->stats_len);
	dev->stats = NULL;
	if (dev->state_dir[0] && dev->added && unlink_files)
		zublk_state_unlink(dev->state_dir, dev->info.dev_id);
}

/*
 * Who the backing is: device, inode and size of every registered file, so
 * a recovery can tell the same file from one put in its place.
 */
static void files_identity(struct zublk_dev *dev, char *buf, size_t len, bool left_too)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 1; i < dev->nr_files && n < len; i++) {
		enum file_kind kind = dev->file_kind[i];
		struct stat st;
		unsigned long long size = 0;
		int w;

		if (kind == FILE_LEFT && left_too)
			kind = FILE_WHOLE;
		/*
		 * A socket (a network server) is a new one every time, and a
		 * file whose size is its contents (a zone's) changes: neither
		 * is a backing's identity.  A file that grows as the device
		 * is written (an image) is its device and inode.
		 */
		if (kind == FILE_ANON || kind == FILE_LEFT || fstat(dev->files[i], &st) ||
		    S_ISSOCK(st.st_mode))
			continue;
		if (S_ISBLK(st.st_mode))
			ioctl(dev->files[i], BLKGETSIZE64, &size);
		else if (S_ISREG(st.st_mode) && kind == FILE_WHOLE)
			size = (unsigned long long)st.st_size;
		w = snprintf(buf + n, len - n, "%s%llx:%llx:%llu", n ? " " : "",
			     (unsigned long long)(S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode)
							  ? st.st_rdev : st.st_dev),
			     (unsigned long long)st.st_ino, size);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
}

void zublk_files_identity(struct zublk_dev *dev, char *buf, size_t len)
{
	files_identity(dev, buf, len, false);
}

void zublk_files_identity_all(struct zublk_dev *dev, char *buf, size_t len)
{
	files_identity(dev, buf, len, true);
}

void zublk_files_reidentify(struct zublk_dev *dev)
{
	pthread_mutex_lock(&dev->state_lock);
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	pthread_mutex_unlock(&dev->state_lock);
}

const char *zublk_state_dir(void)
{
	static char dir[256];
	const char *xdg;

	if (dir[0])
		return dir;
	xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "%s", ZUBLK_STATE_DIR);
	else if (xdg && xdg[0] == '/' && strlen(xdg) < sizeof(dir) - 8)
		snprintf(dir, sizeof(dir), "%s/zublk", xdg);
	else
		snprintf(dir, sizeof(dir), ZUBLK_USER_STATE_DIR_TMP, (unsigned)geteuid());
	return dir;
}

void zublk_state_unlink(const char *dir, unsigned id)
{
	char path[300];

	path_of(dir, id, "json", path, sizeof(path));
	unlink(path);
	path_of(dir, id, "stats", path, sizeof(path));
	unlink(path);
	/* A daemon that was killed left its control socket too. */
	path_of(dir, id, "sock", path, sizeof(path));
	unlink(path);
}

int zublk_stats_read(const char *dir, unsigned id, struct zublk_counters *sum)
{
	char path[300];
	struct zublk_stats_file *sf;
	struct stat st;
	unsigned nr;
	ssize_t n;
	int fd, ret = 0;

	memset(sum, 0, sizeof(*sum));
	ret = zublk_state_dir_trusted(dir);
	if (ret)
		return ret;
	path_of(dir, id, "stats", path, sizeof(path));
	fd = state_open(path, O_RDONLY, 0, &st);
	if (fd < 0)
		return fd;
	/*
	 * A copy, not a mapping: a file another user owns (root lists users'
	 * devices) could be cut under a mapping (SIGBUS) or its queue count
	 * changed between looks.  Each counter is read whole (8 aligned bytes).
	 */
	if ((size_t)st.st_size < sizeof(*sf) || st.st_size > (1 << 24)) {
		close(fd);
		return -EINVAL;
	}
	sf = malloc((size_t)st.st_size);
	if (!sf) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, sf, (size_t)st.st_size, 0);
	close(fd);
	nr = n >= (ssize_t)sizeof(*sf) ? sf->nr_queues : 0;
	if (n < (ssize_t)sizeof(*sf) || sf->magic != ZUBLK_STATS_MAGIC ||
	    sizeof(*sf) + (size_t)nr * sizeof(sf->q[0]) > (size_t)n) {
		free(sf);
		return -EINVAL;
	}
	for (unsigned i = 0; i < nr; i++) {
		sum->ios += atomic_load(&sf->q[i].ios);
		sum->submits += atomic_load(&sf->q[i].submits);
		sum->enters += atomic_load(&sf->q[i].enters);
		sum->errors += atomic_load(&sf->q[i].errors);
		sum->sleeps += atomic_load(&sf->q[i].sleeps);
		sum->polls += atomic_load(&sf->q[i].polls);
		sum->idle_ns += atomic_load(&sf->q[i].idle_ns);
		sum->shmem_ios += atomic_load(&sf->q[i].shmem_ios);
		sum->copies += atomic_load(&sf->q[i].copies);
		sum->hand_regs += atomic_load(&sf->q[i].hand_regs);
	}
	free(sf);
	return 0;
}

/* ------------------------------------------- a reader for our flat JSON */

static const char *skip_ws(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* Copies as much of @src as fits, always terminated. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Parses a JSON string at @p into @out (NUL-terminated); returns the end. */
static const char *parse_str(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p != '"')
		return NULL;
	for (p++; *p && *p != '"'; p++) {
		char c = *p;

		/* JSON's: a raw control character or an unknown escape is no string. */
		if ((unsigned char)c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (*p && !strchr("\"\\/bfnrtu", *p))
				return NULL;
			if (*p == 'u') {
				unsigned v;

				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				if (sscanf(p + 1, "%4x", &v) != 1)
					return NULL;
				c = (char)v;
				p += 4;
			} else if (*p == 'n') {
				c = '\n';
			} else if (*p == 't') {
				c = '\t';
			} else if (*p == 'r' || *p == 'b' || *p == 'f') {
				c = *p == 'r' ? '\r' : *p == 'b' ? '\b' : '\f';
			} else if (!*p) {
				return NULL;
			} else {
				c = *p;
			}
		}
		if (n + 1 < len)
			out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

static bool is_known_key(const char *key)
{
	static const char *const known[] = {
		"id", "target", "mode", "queues", "depth", "max_io", "size", "logical_block",
		"daemon_pid", "flags", "recovery", "files", "options", "pin_queues", "poll_us",
		"threads", "shmem", "shmem_id",
	};

	for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(key, known[i]))
			return true;
	return false;
}

/* Skips any JSON value at @p (object, array, string, literal); NULL if broken. */
static const char *skip_value(const char *p, int depth)
{
	char tmp[2];

	p = skip_ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '"')
		return parse_str(p, tmp, sizeof(tmp));
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = skip_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = parse_str(skip_ws(p), tmp, sizeof(tmp));
				if (!p)
					return NULL;
				p = skip_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = skip_value(p, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p);
			if (*p == ',') {
				p++;
				continue;
			}
			return *p == close ? p + 1 : NULL;
		}
	}
	/* A number, or true, false, null: no other bare word is JSON. */
	if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
		p++;
		while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' ||
		       isdigit((unsigned char)*p))
			p++;
		return p;
	}
	for (const char *const *w = (const char *const[]){ "true", "false", "null", NULL }; *w; w++)
		if (!strncmp(p, *w, strlen(*w)) && !isalnum((unsigned char)p[strlen(*w)]))
			return p + strlen(*w);
	return NULL;
}

/*
 * Keeps @key and its raw value text (checked JSON) in st->extra, for `list
 * --json`; a key of other than [a-z0-9_] (no target writes one) is not
 * kept: it would have to be escaped again in what is printed.
 */
static void keep_extra(struct zublk_state *st, const char *key, const char *v, const char *end)
{
	size_t used = strlen(st->extra);
	int n;

	if (!*key || key[strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_")])
		return;
	n = snprintf(st->extra + used, sizeof(st->extra) - used, "%s\"%s\": %.*s",
			 used ? ", " : "", key, (int)(end - v), v);

	if (n < 0 || (size_t)n >= sizeof(st->extra) - used)
		st->extra[used] = '\0';
}

int zublk_state_parse(const char *text, struct zublk_state *st)
{
	const char *p = skip_ws(text);
	char key[64], val[4096];

	memset(st, 0, sizeof(*st));
	st->daemon_pid = -1;
	if (*p++ != '{')
		return -EINVAL;
	for (;;) {
		p = skip_ws(p);
		if (*p == '}')
			return 0;
		p = parse_str(p, key, sizeof(key));
		if (!p)
			return -EINVAL;
		p = skip_ws(p);
		if (*p++ != ':')
			return -EINVAL;
		p = skip_ws(p);
		if (!is_known_key(key)) {
			const char *v = p;

			p = skip_value(p, 0);
			if (!p)
				return -EINVAL;
			keep_extra(st, key, v, p);
		} else if (*p == '"') {
			p = parse_str(p, val, sizeof(val));
			if (!p)
				return -EINVAL;
			if (!strcmp(key, "target"))
				copy_str(st->target, sizeof(st->target), val);
			else if (!strcmp(key, "mode"))
				copy_str(st->mode, sizeof(st->mode), val);
			else if (!strcmp(key, "recovery"))
				copy_str(st->recovery, sizeof(st->recovery), val);
			else if (!strcmp(key, "files"))
				copy_str(st->files, sizeof(st->files), val);
		} else if (*p == '[') {
			char *list = !strcmp(key, "options")	? st->options
				     : !strcmp(key, "shmem")	? st->shmem
				     : !strcmp(key, "shmem_id") ? st->shmem_id
								: NULL;
			size_t size = !strcmp(key, "options") ? sizeof(st->options)
				      : !strcmp(key, "shmem") ? sizeof(st->shmem)
							      : sizeof(st->shmem_id);
			size_t used = 0;

			p = skip_ws(p + 1);
			while (*p == '"') {
				p = parse_str(p, val, sizeof(val));
				if (!p)
					return -EINVAL;
				if (list) {
					/* One per line: values may hold spaces. */
					int n = snprintf(list + used, size - used, "%s%s",
							 used ? "\n" : "", val);
					/* Not cut: a recovery without an option is another device. */
					if (n < 0 || (size_t)n >= size - used)
						return -E2BIG;
					used += (size_t)n;
				}
				p = skip_ws(p);
				if (*p == ',')
					p = skip_ws(p + 1);
			}
			if (*p++ != ']')
				return -EINVAL;
		} else {
			char *end;
			long long v = strtoll(p, &end, 10);

			if (end == p)
				return -EINVAL;
			p = end;
			if (!strcmp(key, "id"))
				st->id = (unsigned)v;
			else if (!strcmp(key, "queues"))
				st->queues = (unsigned)v;
			else if (!strcmp(key, "depth"))
				st->depth = (unsigned)v;
			else if (!strcmp(key, "max_io"))
				st->max_io = (unsigned)v;
			else if (!strcmp(key, "size"))
				st->size = (uint64_t)v;
			else if (!strcmp(key, "logical_block"))
				st->logical_block = (unsigned)v;
			else if (!strcmp(key, "daemon_pid"))
				st->daemon_pid = (int)v;
			else if (!strcmp(key, "flags"))
				st->flags = (uint64_t)v;
			else if (!strcmp(key, "pin_queues"))
				st->pin_queues = v != 0;
			else if (!strcmp(key, "poll_us"))
				st->poll_us = (unsigned)v;
			else if (!strcmp(key, "threads"))
				st->threads = (unsigned)v;
		}
		p = skip_ws(p);
		if (*p == ',')
			p++;
		else if (*p != '}')
			return -EINVAL;
	}
}

int zublk_state_load(const char *dir, unsigned id, struct zublk_state *st)
{
	char path[300], *text;
	struct stat sb;
	ssize_t n;
	int fd, ret;

	if (!dir)
		dir = zublk_state_dir();
	ret = zublk_state_dir_trusted(dir);
	if (ret)
		return ret;
	path_of(dir, id, "json", path, sizeof(path));
	fd = state_open(path, O_RDONLY, 0, &sb);
	if (fd < 0)
		return fd;
	/* All of it (long paths and options add up), within reason. */
	ret = sb.st_size > STATE_MAX_BYTES ? -EFBIG : 0;
	if (ret) {
		close(fd);
		return ret;
	}
	text = malloc((size_t)sb.st_size + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, text, (size_t)sb.st_size, 0);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (!ret) {
		text[n] = '\0';
		ret = zublk_state_parse(text, st);
	}
	free(text);
	return ret;
}

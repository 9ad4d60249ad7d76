// SPDX-License-Identifier: MIT
/*
 * The state a daemon leaves in <state_dir>/<id>.json and .stats for
 * `zublk list`, the JSON reader and writer behind it, and the names of
 * features and device states.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "zublk.h"
/*
 * For zublk_state_write() and the stats file layout: the daemon's writer
 * must be tested against the reader `zublk list` uses, with no kernel.
 */
#include "../../lib/internal.h"
#include "test.h"

static const char sample[] =
	"{\"id\":3,\"target\":\"loop\",\"mode\":\"zero-copy\",\"queues\":2,\"depth\":128,"
	"\"max_io\":1048576,\"size\":1073741824,\"logical_block\":512,\"daemon_pid\":42,"
	"\"flags\":2112,\"options\":[\"file=/tmp/a b.img\",\"buffered=1\"]}";

/*
 * Parses a heap copy of exactly strlen(@json) + 1 bytes, so that AddressSanitizer
 * catches a read past the terminating NUL (string literals have more slack).
 */
static int parse_copy(const char *json, size_t len, struct zublk_state *st)
{
	char *copy = malloc(len + 1);
	int ret;

	if (!copy)
		abort();
	memcpy(copy, json, len);
	copy[len] = '\0';
	ret = zublk_state_parse(copy, st);
	free(copy);
	return ret;
}

static int parse(const char *json, struct zublk_state *st)
{
	return parse_copy(json, strlen(json), st);
}

/* ----------------------------------------------------------- the reader */

/* Each of @bad[0..n) is refused with -EINVAL (and parsing it does not crash). */
static void check_all_refused(const char *const *bad, size_t n)
{
	struct zublk_state st;

	for (size_t i = 0; i < n; i++) {
		int ret = parse(bad[i], &st);

		CHECK_EQ(ret, -EINVAL);
		if (ret != -EINVAL)
			printf("#   for '%s'\n", bad[i]);
	}
}

TEST(a_daemons_state_file_fills_every_field)
{
	struct zublk_state st;

	REQUIRE(parse(sample, &st) == 0);
	CHECK_EQ(st.id, 3);
	CHECK_STREQ(st.target, "loop");
	CHECK_STREQ(st.mode, "zero-copy");
	CHECK_EQ(st.queues, 2);
	CHECK_EQ(st.depth, 128);
	CHECK_EQ(st.max_io, 1048576);
	CHECK_EQ(st.size, 1073741824);
	CHECK_EQ(st.logical_block, 512);
	CHECK_EQ(st.daemon_pid, 42);
	CHECK_EQ(st.flags, 2112);
	/* Options come back one per line: a value may hold a space. */
	CHECK_STREQ(st.options, "file=/tmp/a b.img\nbuffered=1");
}

TEST(whitespace_between_tokens_is_accepted)
{
	const char *json = " {\n\t\"id\" : 7 ,\n  \"target\" : \"null\",\r\n"
			   "  \"size\": 274877906944,\n  \"options\" : [ \"size=256G\" ,"
			   " \"bs=4096\" ]\n}\n";
	struct zublk_state st;

	REQUIRE(parse(json, &st) == 0);
	CHECK_EQ(st.id, 7);
	CHECK_STREQ(st.target, "null");
	CHECK_EQ(st.size, 256ULL << 30);
	CHECK_STREQ(st.options, "size=256G\nbs=4096");
}

TEST(absent_fields_read_as_zero_and_the_pid_as_minus_one)
{
	struct zublk_state st;

	memset(&st, 0x5a, sizeof(st));
	REQUIRE(parse("{}", &st) == 0);
	CHECK_EQ(st.id, 0);
	CHECK_STREQ(st.target, "");
	CHECK_STREQ(st.mode, "");
	CHECK_EQ(st.size, 0);
	CHECK_EQ(st.flags, 0);
	CHECK_EQ(st.daemon_pid, -1);
	CHECK_STREQ(st.options, "");
	REQUIRE(parse("{\"options\":[]}", &st) == 0);
	CHECK_STREQ(st.options, "");
}

/* A newer daemon may add fields; an older `zublk list` must still read it. */
TEST(unknown_keys_of_every_kind_are_skipped)
{
	const char *json = "{\"new_str\":\"x\",\"id\":5,\"new_num\":-12,\"new_list\":[\"a\",\"b\"],"
			   "\"target\":\"loop\"}";
	struct zublk_state st;

	REQUIRE(parse(json, &st) == 0);
	CHECK_EQ(st.id, 5);
	CHECK_STREQ(st.target, "loop");
	CHECK_STREQ(st.options, "");
}

TEST(escaped_quotes_backslashes_and_unicode_escapes_are_decoded)
{
	const char *json = "{\"target\":\"l\\\"o\\\\o\\u0041p\","
			   "\"options\":[\"file=/x\\\"y\",\"a=\\\\b\",\"c=\\u0041\\u0062\","
			   "\"d=1\\n2\\t3\",\"e=\\/\"]}";
	struct zublk_state st;

	REQUIRE(parse(json, &st) == 0);
	CHECK_STREQ(st.target, "l\"o\\oAp");
	CHECK_STREQ(st.options, "file=/x\"y\na=\\b\nc=Ab\nd=1\n2\t3\ne=/");
}

TEST(malformed_input_is_einval_and_does_not_crash)
{
	static const char *const bad[] = {
		"",
		" ",
		"null",
		"[]",
		"{",
		"}",
		"{\"id\"}",
		"{\"id\":}",
		"{\"id\" 3}",
		"{\"id\":3",
		"{\"id\":3 \"depth\":1}",
		"{\"id\":3,,}",
		"{\"id\":x}",
		"{\"id\":true}",
		"{id:3}",
		"{'id':3}",
		"{\"id\":{}}",
		"{\"target\":\"loop}",
		"{\"target\":\"loop",
		"{\"target\":\"\\",
		"{\"target\":\"\\\"}",
		"{\"target\":\"\\uzzzz\"}",
		"{\"target\":\"\\u\"}",
		"{\"options\":[",
		"{\"options\":[\"a\"",
		"{\"options\":[\"a\",",
		"{\"options\":[\"a\" 1]}",
		"{\"options\":[1]}",
		"{\"options\":[\"a\",1]}",
		"{\"options\":[\"a]}",
		"{\"options\":\"a\"]}",
		"{\"id\":3,\"options\":[\"a\"]",
	};

	check_all_refused(bad, ARRAY_SIZE(bad));
}

/* A \u escape cut short must not carry the reader past the end of the text. */
TEST(a_short_unicode_escape_does_not_read_past_the_end)
{
	static const char *const bad[] = {
		"{\"target\":\"\\u4\"}",
		"{\"target\":\"\\u41\"}",
		"{\"target\":\"\\u041\"}",
		"{\"target\":\"\\u4",
		"{\"target\":\"\\u04",
		"{\"target\":\"\\u004",
		"{\"options\":[\"\\u4\"]}",
	};

	check_all_refused(bad, ARRAY_SIZE(bad));
}

/* A state file cut short (disk full, a crash mid-write) is refused. */
TEST(every_truncation_of_a_state_file_is_rejected)
{
	const char *json = "{\"id\":3,\"target\":\"lo\\u0041p\",\"mode\":\"copy\","
			   "\"options\":[\"file=/a\\\"b\",\"x=\\\\\"]}";
	size_t len = strlen(json);
	struct zublk_state st;

	REQUIRE(parse(json, &st) == 0);
	CHECK_STREQ(st.target, "loAp");
	for (size_t n = 0; n < len; n++) {
		int ret = parse_copy(json, n, &st);

		CHECK_EQ(ret, -EINVAL);
		if (ret != -EINVAL)
			printf("#   for the first %zu bytes\n", n);
	}
}

TEST(overlong_strings_are_cut_to_the_field_and_options_that_do_not_fit_refused)
{
	size_t big = 3 * sizeof(((struct zublk_state *)0)->options);
	char *json = malloc(big * 2 + 256), *p = json;
	struct zublk_state st;

	REQUIRE(json != NULL);
	p += sprintf(p, "{\"target\":\"");
	memset(p, 't', 100);
	p += 100;
	p += sprintf(p, "\",\"");
	memset(p, 'k', 100);	/* an unknown key longer than any buffer for keys */
	p += 100;
	p += sprintf(p, "\":1,\"options\":[");
	for (int i = 0; i < 10; i++) {
		p += sprintf(p, "%s\"o%d=", i ? "," : "", i);
		memset(p, 'v', 1000);
		p += 1000;
		*p++ = '"';
	}
	p += sprintf(p, "],\"id\":9}");
	/* Options are not cut: a recovery without one would serve another device. */
	CHECK_EQ(parse(json, &st), -E2BIG);
	/* Three of them fit: the strings around are cut to their fields. */
	strcpy(strstr(json, ",\"o3="), "],\"id\":9}");
	CHECK_EQ(parse(json, &st), 0);
	CHECK_EQ(strlen(st.target), sizeof(st.target) - 1);
	CHECK_EQ(strlen(st.options), 3 * 1003 + 2);
	CHECK(!strncmp(st.options, "o0=vvv", 6));
	CHECK_EQ(st.id, 9);
	free(json);
}

/* ----------------------------------------------------------- the writer */

static char *json_of(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		abort();
	zublk_json_str(f, s);
	fclose(f);
	return buf;
}

TEST(json_str_quotes_and_escapes_what_json_requires)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\"\"" },
		{ "plain", "\"plain\"" },
		{ "a b", "\"a b\"" },
		{ "say \"hi\"", "\"say \\\"hi\\\"\"" },
		{ "c:\\dir", "\"c:\\\\dir\"" },
		{ "1\n2", "\"1\\u000a2\"" },
		{ "\x01\x1f", "\"\\u0001\\u001f\"" },
		{ "caf\xc3\xa9", "\"caf\xc3\xa9\"" },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = json_of(cases[i].in);

		CHECK_STREQ(got, cases[i].out);
		free(got);
	}
}

/* Whatever json_str writes, the reader gives back byte for byte. */
TEST(json_str_output_reads_back_unchanged)
{
	static const char *const strs[] = {
		"", "plain", "file=/tmp/a b.img", "q=\"", "b=\\", "bs=\\\"\\\\\"", "nl=\n",
		"tab=\t", "cr=\r", "all=\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x1b\x1f",
		"utf8=\xc3\xa9\xe2\x82\xac", "hi=\x7f\x80\xff", "slash=/a/b", "u=\\u0041",
	};

	for (unsigned i = 0; i < ARRAY_SIZE(strs); i++) {
		struct zublk_state st;
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		REQUIRE(f != NULL);
		fputs("{\"options\":[", f);
		zublk_json_str(f, strs[i]);
		fputs("]}", f);
		fclose(f);
		CHECK_EQ(parse(text, &st), 0);
		CHECK_STREQ(st.options, strs[i]);
		free(text);
	}
}

/* A stand-in for a device that is live, as far as the state writer can tell. */
struct fake {
	struct zublk_dev dev;
	struct zublk_target_ops ops;
	struct zublk_opts opts;
	char dir[64];
};

static bool fake_init(struct fake *fk, int nr_words, const char *const *words)
{
	memset(fk, 0, sizeof(*fk));
	snprintf(fk->dir, sizeof(fk->dir), "/tmp/zublk-unit-XXXXXX");
	if (!mkdtemp(fk->dir))
		return false;
	if (zublk_opts_parse(&fk->opts, nr_words, (char *const *)words))
		return false;
	fk->ops.name = "loop";
	fk->dev.ops = &fk->ops;
	fk->dev.opts = &fk->opts;
	fk->dev.mode = ZUBLK_MODE_USER_COPY;
	fk->dev.nr_queues = 3;
	fk->dev.info.dev_id = 17;
	fk->dev.info.queue_depth = 64;
	fk->dev.info.max_io_buf_bytes = 512 << 10;
	fk->dev.info.flags = UBLK_F_CMD_IOCTL_ENCODE | UBLK_F_USER_COPY | UBLK_F_UPDATE_SIZE;
	fk->dev.geom.size = 5ULL << 40;	/* past 32 bits on purpose */
	fk->dev.geom.logical_bs_shift = 12;
	fk->dev.added = true;
	snprintf(fk->dev.state_dir, sizeof(fk->dev.state_dir), "%s", fk->dir);
	return true;
}

static void fake_done(struct fake *fk)
{
	zublk_state_remove(&fk->dev, true);
	zublk_opts_free(&fk->opts);
	if (rmdir(fk->dir))
		printf("#   %s left behind: %s\n", fk->dir, strerror(errno));
}

TEST(the_daemons_state_file_reads_back_through_state_load)
{
	const char *words[] = { "file=/srv/disk \"one\".img", "buffered=1", "x=a\\b" };
	struct zublk_state st;
	struct fake fk;

	REQUIRE(fake_init(&fk, 3, words));
	fk.dev.cfg.pin_queues = true;
	fk.dev.cfg.poll_us = 250;
	fk.dev.nr_workers = 2;
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_EQ(st.id, 17);
	CHECK_STREQ(st.target, "loop");
	CHECK_STREQ(st.mode, "user-copy");
	CHECK_EQ(st.queues, 3);
	CHECK_EQ(st.depth, 64);
	CHECK_EQ(st.max_io, 512 << 10);
	CHECK_EQ(st.size, 5ULL << 40);
	CHECK_EQ(st.logical_block, 4096);
	CHECK_EQ(st.daemon_pid, getpid());
	CHECK_EQ(st.flags, UBLK_F_CMD_IOCTL_ENCODE | UBLK_F_USER_COPY | UBLK_F_UPDATE_SIZE);
	CHECK_STREQ(st.options, "file=/srv/disk \"one\".img\nbuffered=1\nx=a\\b");
	/* What a recovery must start the queues with again. */
	CHECK(st.pin_queues);
	CHECK_EQ(st.poll_us, 250);
	CHECK_EQ(st.threads, 2);
	fake_done(&fk);
	/* zublk_state_remove() took the file away with the device. */
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), -ENOENT);
}

TEST(options_that_fit_read_back_whole_however_long_their_escapes_make_the_file)
{
	/* 4000 bytes of control characters: 6 bytes each in the file (\u0001). */
	static char val[4000 + 3];
	const char *words[] = { val };
	struct zublk_state st;
	struct stat sb;
	char path[128];
	struct fake fk;

	val[0] = 'k';
	val[1] = '=';
	memset(val + 2, 1, 4000);
	REQUIRE(fake_init(&fk, 1, words));
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	snprintf(path, sizeof(path), "%s/17.json", fk.dir);
	REQUIRE(stat(path, &sb) == 0);
	CHECK(sb.st_size > 16384);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_EQ(strlen(st.options), strlen(val));
	CHECK(!strcmp(st.options, val));
	CHECK_EQ(st.id, 17);
	fake_done(&fk);
}

TEST(polling_turned_off_survives_the_state_file)
{
	const char *words[] = { "file=/srv/disk.img" };
	struct zublk_state st;
	struct fake fk;

	REQUIRE(fake_init(&fk, 1, words));
	fk.dev.cfg.poll_us = ZUBLK_POLL_OFF;
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_EQ(st.poll_us, ZUBLK_POLL_OFF);
	fk.dev.cfg.poll_us = ZUBLK_POLL_AUTO;
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_EQ(st.poll_us, ZUBLK_POLL_AUTO);
	fake_done(&fk);
}

/* A recovery maps the same files and serves under the indexes the driver kept. */
TEST(shared_memory_files_and_their_indexes_survive_the_state_file)
{
	const char *words[] = { "file=/srv/disk.img" };
	struct zublk_state st;
	struct fake fk;

	REQUIRE(fake_init(&fk, 1, words));
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_STREQ(st.shmem, "");
	fk.dev.cfg.shmem[0] = "/dev/shm/a";
	fk.dev.cfg.shmem[1] = "/dev/hugepages/b: c";
	fk.dev.shm[0].index = 0;
	fk.dev.shm[1].index = 65535;
	fk.dev.shm[1].read_only = true;
	fk.dev.shm[1].dev = 64768;
	fk.dev.shm[1].ino = 12;
	fk.dev.shm[1].len = 1ULL << 32;
	fk.dev.nr_shm = 2;
	CHECK_EQ(zublk_state_write(&fk.dev), 0);
	CHECK_EQ(zublk_state_load(fk.dir, 17, &st), 0);
	CHECK_STREQ(st.shmem, "0:/dev/shm/a\n65535r:/dev/hugepages/b: c");
	CHECK_STREQ(st.shmem_id, "0.0.0\n64768.12.4294967296");
	CHECK_STREQ(st.options, "file=/srv/disk.img");
	fk.dev.nr_shm = 0;
	fake_done(&fk);
}

/*
 * A recovery maps the file again by its path: one made again there since
 * (another inode) is refused, for the driver serves the old pages.
 */
TEST(a_recovery_refuses_a_shared_memory_file_made_again)
{
	char path[] = "/tmp/zublk-unit-shm-XXXXXX";
	struct zublk_dev dev;
	struct stat st;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, 8192) == 0);
	REQUIRE(fstat(fd, &st) == 0);
	close(fd);
	memset(&dev, 0, sizeof(dev));
	dev.cfg.recover = true;
	dev.cfg.nr_shmem = 1;
	dev.cfg.shmem[0] = path;
	dev.cfg.shmem_index[0] = 5;
	dev.cfg.shmem_id[0] = (struct zublk_shmem_id){ st.st_dev, st.st_ino, 8192 };
	CHECK_EQ(zublk_shmem_setup(&dev), 0);
	CHECK_EQ(dev.shm[0].index, 5);
	zublk_shmem_release(&dev);
	/* Not known (an older state file): not checked. */
	dev.cfg.shmem_id[0] = (struct zublk_shmem_id){ 0 };
	CHECK_EQ(zublk_shmem_setup(&dev), 0);
	zublk_shmem_release(&dev);
	dev.cfg.shmem_id[0] = (struct zublk_shmem_id){ st.st_dev, st.st_ino + 1, 8192 };
	CHECK_EQ(zublk_shmem_setup(&dev), -ESTALE);
	zublk_shmem_release(&dev);
	dev.cfg.shmem_id[0] = (struct zublk_shmem_id){ st.st_dev, st.st_ino, 4096 };
	CHECK_EQ(zublk_shmem_setup(&dev), -ESTALE);
	zublk_shmem_release(&dev);
	unlink(path);
}

TEST(a_shared_memory_address_resolves_only_inside_its_buffer)
{
	static char a[8192], b[4096];
	struct zublk_dev dev;

	memset(&dev, 0, sizeof(dev));
	dev.shm[0] = (struct zublk_shmem){ .index = 3, .base = a, .len = sizeof(a) };
	dev.shm[1] = (struct zublk_shmem){ .index = 9, .base = b, .len = sizeof(b) };
	dev.nr_shm = 2;
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(3, 0), 8192, false) == a);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(3, 4096), 4096, false) == a + 4096);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(9, 512), 512, false) == b + 512);
	/* Past the end, an offset past it, an index we never registered. */
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(3, 4096), 4608, false) == NULL);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(9, 8192), 0, false) == NULL);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(4, 0), 512, false) == NULL);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(3, 0xfffffe00U), 0x400, false) == NULL);
	/* Memory mapped read-only serves writes to the device, never reads into it. */
	dev.shm[1].read_only = true;
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(9, 512), 512, false) == b + 512);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(9, 512), 512, true) == NULL);
	CHECK(zublk_shmem_resolve(&dev, ublk_shmem_zc_addr(3, 0), 512, true) == a);
}

/* A memfd sealed against writing is mapped read-only; an unsealed one for writing too. */
TEST(a_write_sealed_memfd_is_mapped_read_only)
{
	char path[64];
	struct zublk_shmem s;
	int fd = memfd_create("zublk-unit", MFD_ALLOW_SEALING | MFD_CLOEXEC);

	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, 2 * 4096) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	CHECK_EQ(zublk_shmem_map(path, &s), 0);
	CHECK(!s.read_only);
	CHECK_EQ(s.len, 2 * 4096);
	s.base[0] = 1;
	munmap(s.base, s.len);
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0);
	CHECK_EQ(zublk_shmem_map(path, &s), 0);
	CHECK(s.read_only);
	CHECK_EQ(s.base[0], 1);
	munmap(s.base, s.len);
	close(fd);
}

TEST(state_load_of_a_device_without_a_file_is_enoent)
{
	struct zublk_state st;

	CHECK_EQ(zublk_state_load("/nonexistent-zublk-dir", 0, &st), -ENOENT);
}

TEST(the_stats_file_sums_the_counters_of_every_queue)
{
	struct zublk_counters sum;
	struct fake fk;

	REQUIRE(fake_init(&fk, 0, NULL));
	REQUIRE(zublk_stats_map(&fk.dev) == 0);
	for (unsigned q = 0; q < 3; q++) {
		fk.dev.stats->q[q].ios = 10 * (q + 1);
		fk.dev.stats->q[q].submits = 100 * (q + 1);
		fk.dev.stats->q[q].enters = 1000 * (q + 1);
		fk.dev.stats->q[q].errors = q;
		fk.dev.stats->q[q].sleeps = 7 * q;
		fk.dev.stats->q[q].polls = 3 * q;
		fk.dev.stats->q[q].idle_ns = 5000000000ULL * (q + 1); /* past 32 bits */
		fk.dev.stats->q[q].shmem_ios = 4 * q;
		fk.dev.stats->q[q].copies = 11 * q;
		fk.dev.stats->q[q].hand_regs = 2 * q + 1;
	}
	CHECK_EQ(zublk_stats_read(fk.dir, 17, &sum), 0);
	CHECK_EQ(sum.ios, 60);
	CHECK_EQ(sum.submits, 600);
	CHECK_EQ(sum.enters, 6000);
	CHECK_EQ(sum.errors, 3);
	CHECK_EQ(sum.sleeps, 21);
	CHECK_EQ(sum.polls, 9);
	CHECK_EQ(sum.idle_ns, 30000000000ULL);
	CHECK_EQ(sum.shmem_ios, 12);
	CHECK_EQ(sum.copies, 33);
	CHECK_EQ(sum.hand_regs, 9);
	fake_done(&fk);
	CHECK_EQ(zublk_stats_read(fk.dir, 17, &sum), -ENOENT);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
}

TEST(a_short_or_foreign_stats_file_is_einval)
{
	char dir[] = "/tmp/zublk-unit-XXXXXX", path[128];
	struct zublk_counters sum;
	struct {
		struct zublk_stats_file h;
		struct zublk_queue_stats q[1];
	} sf;

	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/4.stats", dir);

	write_file(path, "zu", 2);
	CHECK_EQ(zublk_stats_read(dir, 4, &sum), -EINVAL);

	memset(&sf, 0, sizeof(sf));
	sf.h.magic = 0x1234;
	sf.h.nr_queues = 1;
	write_file(path, &sf, sizeof(sf));
	CHECK_EQ(zublk_stats_read(dir, 4, &sum), -EINVAL);

	/* It says two queues but holds one: reading the second would fault. */
	sf.h.magic = ZUBLK_STATS_MAGIC;
	sf.h.nr_queues = 2;
	write_file(path, &sf, sizeof(sf));
	CHECK_EQ(zublk_stats_read(dir, 4, &sum), -EINVAL);

	sf.h.nr_queues = 1;
	sf.q[0].ios = 5;
	write_file(path, &sf, sizeof(sf));
	CHECK_EQ(zublk_stats_read(dir, 4, &sum), 0);
	CHECK_EQ(sum.ios, 5);

	/* A killed daemon's control socket goes with its state. */
	char sock[128];

	snprintf(sock, sizeof(sock), "%s/4.sock", dir);
	write_file(sock, "", 0);
	zublk_state_unlink(dir, 4);
	CHECK_EQ(access(path, F_OK), -1);
	CHECK_EQ(access(sock, F_OK), -1);
	/* Nothing there: unlinking again is harmless. */
	zublk_state_unlink(dir, 4);
	CHECK_EQ(rmdir(dir), 0);
}

/* Root lists users' devices: their state files may be anything they made them. */
TEST(state_files_that_are_links_or_fifos_are_refused_without_waiting)
{
	char dir[] = "/tmp/zublk-unit-XXXXXX", path[128], target[128];
	struct zublk_counters sum;
	struct zublk_state st;
	int fd;

	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/4.stats", dir);
	REQUIRE(mkfifo(path, 0644) == 0);
	CHECK_EQ(zublk_stats_read(dir, 4, &sum), -EPERM);
	snprintf(path, sizeof(path), "%s/6.json", dir);
	REQUIRE(mkfifo(path, 0644) == 0);
	CHECK_EQ(zublk_state_load(dir, 6, &st), -EPERM);
	snprintf(target, sizeof(target), "%s/real", dir);
	write_file(target, sample, strlen(sample));
	snprintf(path, sizeof(path), "%s/5.json", dir);
	REQUIRE(symlink(target, path) == 0);
	CHECK_EQ(zublk_state_load(dir, 5, &st), -EPERM);
	/* The daemon's log: made in a directory of ours, never through a link. */
	fd = zublk_state_log_open(dir, 7);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/8.log", dir);
	REQUIRE(symlink(target, path) == 0);
	CHECK_EQ(zublk_state_log_open(dir, 8), -EPERM);
	/* Nor in one others may write to (made first in /tmp by another user). */
	REQUIRE(chmod(dir, 0777) == 0);
	CHECK_EQ(zublk_state_log_open(dir, 9), -EPERM);
	snprintf(path, sizeof(path), "%s/9.log", dir);
	CHECK_EQ(access(path, F_OK), -1);
	for (const char *const *n = (const char *const[]){ "4.stats", "5.json", "6.json", "7.log",
							    "8.log", "real", NULL };
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		CHECK_EQ(unlink(path), 0);
	}
	CHECK_EQ(rmdir(dir), 0);
}

TEST(unknown_keys_pass_to_list_only_as_plain_names_with_json_values)
{
	struct zublk_state st;

	/* A key that would close its quotes in `list --json`: skipped, not kept. */
	REQUIRE(parse("{\"id\":1,\"a\\\": 0, \\\"owner_uid\":0}", &st) == 0);
	CHECK_STREQ(st.extra, "");
	REQUIRE(parse("{\"id\":1,\"ok\":true,\"gone\":null,\"n\":-3,"
		      "\"legs\":[{\"state\":\"ok\"}]}", &st) == 0);
	CHECK_STREQ(st.extra, "\"ok\": true, \"gone\": null, \"n\": -3, "
			      "\"legs\": [{\"state\":\"ok\"}]");
	static const char *const bad[] = {
		"{\"id\":1,\"x\":rm}",
		"{\"id\":1,\"x\":-}",
		"{\"id\":1,\"x\":\"a\\qb\"}",
		"{\"id\":1,\"x\":\"a\tb\"}",
		"{\"id\":1,\"x\":truely}",
	};

	check_all_refused(bad, ARRAY_SIZE(bad));
}

/* --------------------------------------------------------------- names */

TEST(feature_bits_0_to_19_all_have_distinct_names_and_descriptions)
{
	for (unsigned bit = 0; bit < 20; bit++) {
		const char *name = zublk_feature_name(bit);
		const char *desc = zublk_feature_desc(bit);

		REQUIRE(name != NULL);
		CHECK(name[0] != '\0');
		CHECK(desc != NULL && desc[0] != '\0');
		for (unsigned other = 0; other < bit; other++) {
			const char *o = zublk_feature_name(other);

			CHECK(o == NULL || strcmp(o, name) != 0);
		}
	}
}

TEST(feature_names_match_the_kernels_flag_names)
{
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_SUPPORT_ZERO_COPY)), "ZERO_COPY");
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_USER_COPY)), "USER_COPY");
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_AUTO_BUF_REG)), "AUTO_BUF_REG");
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_CMD_IOCTL_ENCODE)),
		    "CMD_IOCTL_ENCODE");
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_UPDATE_SIZE)), "UPDATE_SIZE");
	CHECK_STREQ(zublk_feature_name(__builtin_ctzll(UBLK_F_SAFE_STOP_DEV)), "SAFE_STOP_DEV");
}

TEST(feature_bits_we_do_not_know_have_no_name)
{
	static const unsigned bits[] = { 20, 21, 32, 63, 64, 1000, ~0U };

	for (unsigned i = 0; i < ARRAY_SIZE(bits); i++) {
		CHECK(zublk_feature_name(bits[i]) == NULL);
		CHECK(zublk_feature_desc(bits[i]) == NULL);
	}
}

TEST(device_states_0_to_3_have_their_kernel_names)
{
	CHECK_STREQ(zublk_state_name(UBLK_S_DEV_DEAD), "DEAD");
	CHECK_STREQ(zublk_state_name(UBLK_S_DEV_LIVE), "LIVE");
	CHECK_STREQ(zublk_state_name(UBLK_S_DEV_QUIESCED), "QUIESCED");
	CHECK_STREQ(zublk_state_name(UBLK_S_DEV_FAIL_IO), "FAIL_IO");
	CHECK_STREQ(zublk_state_name(0), "DEAD");
	CHECK_STREQ(zublk_state_name(3), "FAIL_IO");
	/* `zublk list` prints whatever comes back: never NULL. */
	CHECK(zublk_state_name(4) != NULL);
	CHECK(zublk_state_name(~0U) != NULL);
}

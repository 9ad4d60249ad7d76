// SPDX-License-Identifier: MIT
/*
 * The mirror's pure parts: choosing a leg to read, failing a leg (never
 * the last in sync), the failed= list; and the core's run-time option and
 * backing updates a mirror replace relies on.
 */
#include <errno.h>
#include <fcntl.h>

#include "../../lib/internal.h"
#include "../../targets/raid.h"
#include "test.h"

TEST(reads_go_to_the_in_sync_leg_with_the_fewest_in_flight)
{
	unsigned inflight[4] = { 5, 2, 7, 2 };

	CHECK_EQ(mirror_pick_leg(0xf, 0, inflight, 4, 0), 1);
	/* Equals rotate with the hint. */
	CHECK_EQ(mirror_pick_leg(0xf, 0, inflight, 4, 2), 3);
	CHECK_EQ(mirror_pick_leg(0xf, 0, inflight, 4, 3), 3);
	CHECK_EQ(mirror_pick_leg(0xf, 0, inflight, 4, 1), 1);
	/* Leg 1 is out of sync: the other 2. */
	CHECK_EQ(mirror_pick_leg(0xd, 0, inflight, 4, 0), 3);
}

TEST(a_retried_read_skips_the_legs_it_tried)
{
	unsigned inflight[3] = { 0, 0, 0 };

	CHECK_EQ(mirror_pick_leg(0x7, 0x1, inflight, 3, 0), 1);
	CHECK_EQ(mirror_pick_leg(0x7, 0x3, inflight, 3, 0), 2);
	CHECK_EQ(mirror_pick_leg(0x7, 0x7, inflight, 3, 0), -1);
	CHECK_EQ(mirror_pick_leg(0x0, 0x0, inflight, 3, 0), -1);
	CHECK_EQ(mirror_pick_leg(0x7, 0, inflight, 0, 0), -1);
}

TEST(equal_legs_share_reads_evenly_as_the_hint_turns)
{
	unsigned inflight[2] = { 0, 0 }, count[2] = { 0, 0 };

	for (unsigned hint = 0; hint < 100; hint++)
		count[mirror_pick_leg(0x3, 0, inflight, 2, hint)]++;
	CHECK_EQ(count[0], 50);
	CHECK_EQ(count[1], 50);
}

TEST(a_failed_leg_leaves_the_in_sync_set)
{
	bool failed;
	uint32_t w = mirror_fail_leg(0x3, 1, &failed);

	CHECK(failed);
	CHECK_EQ(MIRROR_OK(w), 0x1);
	CHECK_EQ(MIRROR_RB(w), 0);
	CHECK_STREQ(mirror_leg_state_name(w, 0), "ok");
	CHECK_STREQ(mirror_leg_state_name(w, 1), "failed");
}

TEST(the_last_in_sync_leg_is_never_failed)
{
	bool failed = true;
	uint32_t w = mirror_fail_leg(0x4, 2, &failed);

	CHECK(!failed);
	CHECK_EQ(w, 0x4);
	/* Not even with a leg being rebuilt next to it. */
	w = mirror_fail_leg(0x4 | 0x1 << 16, 2, &failed);
	CHECK(!failed);
	CHECK_EQ(w, 0x4 | 0x1 << 16);
}

TEST(a_leg_being_rebuilt_can_fail)
{
	bool failed;
	uint32_t w = mirror_fail_leg(0x1 | 0x2 << 16, 1, &failed);

	CHECK(failed);
	CHECK_EQ(w, 0x1);
	CHECK_STREQ(mirror_leg_state_name(0x1 | 0x2 << 16, 1), "rebuilding");
}

TEST(failing_an_already_failed_leg_changes_nothing)
{
	bool failed = true;

	CHECK_EQ(mirror_fail_leg(0x5, 1, &failed), 0x5);
	CHECK(!failed);
}

TEST(the_failed_list_parses_leg_numbers)
{
	uint32_t f = 99;

	CHECK_EQ(mirror_parse_failed(NULL, 2, &f), 0);
	CHECK_EQ(f, 0);
	CHECK_EQ(mirror_parse_failed("", 2, &f), 0);
	CHECK_EQ(f, 0);
	CHECK_EQ(mirror_parse_failed("1", 2, &f), 0);
	CHECK_EQ(f, 0x2);
	CHECK_EQ(mirror_parse_failed("0,2,15", 16, &f), 0);
	CHECK_EQ(f, 0x8005);
	CHECK_EQ(mirror_parse_failed("2", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed("16", 17, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed("1,", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed(",1", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed("-1", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed(" 1", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed("x", 2, &f), -EINVAL);
	CHECK_EQ(mirror_parse_failed("1x", 2, &f), -EINVAL);
}

TEST(ranges_overlap_only_when_they_share_a_byte)
{
	CHECK(raid_overlap(0, 10, 5, 10));
	CHECK(raid_overlap(5, 10, 0, 10));
	CHECK(raid_overlap(0, 100, 10, 1));
	CHECK(!raid_overlap(0, 10, 10, 10));
	CHECK(!raid_overlap(10, 10, 0, 10));
	CHECK(!raid_overlap(0, 0, 0, 10));
}

/* A device with just what the option and file updates use. */
static struct zublk_dev *fake_dev(struct zublk_opts *o, int nr_words, char **words)
{
	struct zublk_dev *dev = calloc(1, sizeof(*dev));

	if (!dev || zublk_opts_parse(o, nr_words, words)) {
		free(dev);
		return NULL;
	}
	dev->opts = o;
	pthread_mutex_init(&dev->state_lock, NULL);
	return dev;
}

static void free_dev(struct zublk_dev *dev)
{
	zublk_opts_free(dev->opts);
	pthread_mutex_destroy(&dev->state_lock);
	free(dev->files);
	free(dev->file_kind);
	free(dev);
}

TEST(set_opt_replaces_appends_and_removes_options)
{
	char *words[] = { "file=/a", "file=/b", "buffered=1" };
	struct zublk_opts o;
	struct zublk_dev *dev = fake_dev(&o, 3, words);

	REQUIRE(dev);
	CHECK_EQ(zublk_dev_set_opt(dev, "file", 1, "/c"), 0);
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 0), "/a");
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 1), "/c");
	CHECK_EQ(zublk_dev_set_opt(dev, "failed", 0, "1"), 0);
	CHECK_EQ(o.nr, 4);
	CHECK_STREQ(zublk_opts_get(&o, "failed"), "1");
	CHECK_EQ(zublk_dev_set_opt(dev, "failed", 0, "0,1"), 0);
	CHECK_EQ(o.nr, 4);
	CHECK_STREQ(zublk_opts_get(&o, "failed"), "0,1");
	CHECK_EQ(zublk_dev_set_opt(dev, "failed", 0, NULL), 0);
	CHECK_EQ(o.nr, 3);
	CHECK(zublk_opts_get(&o, "failed") == NULL);
	CHECK_STREQ(zublk_opts_get(&o, "buffered"), "1");
	/* Removing what is not there is fine; a gap is not. */
	CHECK_EQ(zublk_dev_set_opt(dev, "size", 0, NULL), 0);
	CHECK_EQ(zublk_dev_set_opt(dev, "file", 5, "/x"), -ERANGE);
	CHECK_EQ(zublk_dev_set_opt(dev, "a=b", 0, "1"), -EINVAL);
	CHECK_EQ(zublk_dev_set_opt(dev, "", 0, "1"), -EINVAL);
	/* What a state file would list still reads back as options. */
	CHECK_EQ(zublk_opts_check_unused(&o, &(const char *){ NULL }), 0);
	free_dev(dev);
}

TEST(set_file_moves_the_backing_identity_to_the_new_file)
{
	char *words[] = { "file=/a" };
	char a[] = "/tmp/zublk-mirror-test-a.XXXXXX", b[] = "/tmp/zublk-mirror-test-b.XXXXXX";
	struct zublk_opts o;
	struct zublk_dev *dev = fake_dev(&o, 1, words);
	char before[1024];
	int fa = mkstemp(a), fb = mkstemp(b);

	REQUIRE(dev && fa >= 0 && fb >= 0);
	unlink(a);
	unlink(b);
	REQUIRE(ftruncate(fb, 12345) == 0);
	REQUIRE(zublk_dev_add_file(dev, -1) == 0);
	REQUIRE(zublk_dev_add_file(dev, fa) == 1);
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	snprintf(before, sizeof(before), "%s", dev->files_id);
	CHECK_EQ(zublk_dev_set_file(dev, 1, fb), 0);
	CHECK(strcmp(before, dev->files_id) != 0);
	CHECK(strstr(dev->files_id, ":12345") != NULL);
	CHECK_EQ(zublk_dev_set_file(dev, 0, fb), -EINVAL);
	CHECK_EQ(zublk_dev_set_file(dev, 2, fb), -EINVAL);
	CHECK_EQ(zublk_dev_set_file(dev, 1, -1), -EINVAL);
	close(fa);
	close(fb);
	free_dev(dev);
}

TEST(files_added_in_a_row_are_no_part_of_the_backing_identity)
{
	char *words[] = { "dir=/z" };
	char a[] = "/tmp/zublk-zone-test-a.XXXXXX", b[] = "/tmp/zublk-zone-test-b.XXXXXX";
	struct zublk_opts o;
	struct zublk_dev *dev = fake_dev(&o, 1, words);
	int fds[2] = { mkstemp(a), mkstemp(b) };

	REQUIRE(dev && fds[0] >= 0 && fds[1] >= 0);
	unlink(a);
	unlink(b);
	REQUIRE(zublk_dev_add_file(dev, -1) == 0);
	CHECK_EQ(zublk_dev_add_files(dev, fds, 0), -EINVAL);
	CHECK_EQ(zublk_dev_add_files(dev, fds, 2), 1);
	CHECK_EQ(dev->nr_files, 3);
	CHECK_EQ(dev->files[2], fds[1]);
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	CHECK_STREQ(dev->files_id, "");
	/* A file of its own after them still is. */
	CHECK_EQ(zublk_dev_add_file(dev, fds[0]), 3);
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	CHECK(dev->files_id[0] != '\0' && !strchr(dev->files_id, ' '));
	close(fds[0]);
	close(fds[1]);
	free_dev(dev);
}

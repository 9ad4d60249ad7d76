// SPDX-License-Identifier: MIT
/*
 * What `zublk add` can check before it touches the kernel: the device
 * config ranges and the target table.  Also the log hook they report through.
 */
#include <errno.h>

#include "zublk.h"
#include "test.h"

static char last_msg[1024];
static int nr_msgs;

static void capture_log(enum zublk_log_level level, const char *msg)
{
	(void)level;
	snprintf(last_msg, sizeof(last_msg), "%s", msg);
	nr_msgs++;
}

/* Runs zublk_dev_config_check() with the library's messages captured. */
static int config_check(struct zublk_dev_config cfg, unsigned nr_cpus)
{
	int ret;

	last_msg[0] = '\0';
	nr_msgs = 0;
	zublk_set_log(capture_log);
	ret = zublk_dev_config_check(&cfg, nr_cpus);
	zublk_set_log(NULL);
	return ret;
}

TEST(the_log_hook_gets_formatted_messages_and_null_restores_the_default)
{
	zublk_set_log(capture_log);
	zublk_log(ZUBLK_LOG_INFO, "device %u: %s", 7, "ready");
	CHECK_STREQ(last_msg, "device 7: ready");
	zublk_set_log(NULL);
	nr_msgs = 0;
	zublk_log(ZUBLK_LOG_DEBUG, "not captured");
	CHECK_EQ(nr_msgs, 0);
}

TEST(a_zeroed_config_means_the_defaults_and_is_valid)
{
	struct zublk_dev_config cfg = { .dev_id = -1 };

	CHECK_EQ(config_check(cfg, 1), 0);
	CHECK_EQ(nr_msgs, 0);
}

TEST(queues_are_limited_to_the_number_of_cpus)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .nr_queues = 4 };

	CHECK_EQ(config_check(cfg, 4), 0);
	CHECK_EQ(config_check(cfg, 3), -EINVAL);
	CHECK(strstr(last_msg, "queues") != NULL);
	cfg.nr_queues = UBLK_MAX_NR_QUEUES + 1;
	CHECK_EQ(config_check(cfg, 100000), -EINVAL);
	cfg.nr_queues = UBLK_MAX_NR_QUEUES;
	CHECK_EQ(config_check(cfg, 100000), 0);
}

TEST(depth_above_4096_is_rejected)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .queue_depth = ZUBLK_MAX_QUEUE_DEPTH };

	CHECK_EQ(config_check(cfg, 1), 0);
	cfg.queue_depth = ZUBLK_MAX_QUEUE_DEPTH + 1;
	CHECK_EQ(config_check(cfg, 1), -EINVAL);
	CHECK(strstr(last_msg, "depth") != NULL);
}

TEST(max_io_is_a_multiple_of_4k_from_4k_to_32m)
{
	static const unsigned good[] = { 0, 4096, 8192, 1U << 20, ZUBLK_MAX_MAX_IO_BYTES };
	static const unsigned bad[] = { 1, 512, 4095, 4097, 6144, ZUBLK_MAX_MAX_IO_BYTES + 4096,
					~0U };
	struct zublk_dev_config cfg = { .dev_id = -1 };

	for (unsigned i = 0; i < ARRAY_SIZE(good); i++) {
		cfg.max_io_bytes = good[i];
		CHECK_EQ(config_check(cfg, 1), 0);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cfg.max_io_bytes = bad[i];
		CHECK_EQ(config_check(cfg, 1), -EINVAL);
	}
}

TEST(a_poll_window_beyond_a_second_is_rejected_but_off_and_auto_are_valid)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .poll_us = ZUBLK_POLL_MAX_US };

	CHECK_EQ(config_check(cfg, 1), 0);
	cfg.poll_us = ZUBLK_POLL_MAX_US + 1;
	CHECK_EQ(config_check(cfg, 1), -EINVAL);
	cfg.poll_us = ZUBLK_POLL_OFF;
	CHECK_EQ(config_check(cfg, 1), 0);
	cfg.poll_us = ZUBLK_POLL_AUTO;
	CHECK_EQ(config_check(cfg, 1), 0);
}

TEST(a_mode_out_of_range_is_rejected)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .mode = ZUBLK_MODE_AUTO_ZERO_COPY };

	CHECK_EQ(config_check(cfg, 1), 0);
	cfg.mode = ZUBLK_MODE_NR;
	CHECK_EQ(config_check(cfg, 1), -EINVAL);
}

TEST(every_target_fills_the_required_ops)
{
	const struct zublk_target_ops *const *t = zublk_targets();
	unsigned n = 0;

	REQUIRE(t != NULL);
	for (; *t; t++, n++) {
		const struct zublk_target_ops *ops = *t;

		REQUIRE(ops->name != NULL);
		CHECK(ops->summary && ops->summary[0]);
		CHECK(ops->usage && ops->usage[0]);
		CHECK(ops->modes != 0);
		CHECK_EQ(ops->modes & ~ZUBLK_MODES_ALL, 0);
		CHECK(ops->init != NULL);
		CHECK(ops->queue_io != NULL);
		/* null and loop submit SQEs for some requests: they need io_done. */
		if (!strcmp(ops->name, "null") || !strcmp(ops->name, "loop"))
			CHECK(ops->io_done != NULL);
		CHECK(zublk_target_find(ops->name) == ops);
	}
	CHECK(n >= 2);
}

TEST(targets_are_found_by_exact_name_only)
{
	CHECK(zublk_target_find("null") != NULL);
	CHECK(zublk_target_find("loop") != NULL);
	CHECK(zublk_target_find("Loop") == NULL);
	CHECK(zublk_target_find("loo") == NULL);
	CHECK(zublk_target_find("") == NULL);
}

TEST(threads_are_one_per_queue_while_cpus_are_left_over)
{
	CHECK_EQ(zublk_threads_for(1, 128, 0, 2), 1);
	CHECK_EQ(zublk_threads_for(1, 128, 0, 1), 1);
	CHECK_EQ(zublk_threads_for(2, 128, 0, 4), 2);
	CHECK_EQ(zublk_threads_for(7, 128, 0, 8), 7);
}

TEST(a_queue_per_cpu_gets_a_thread_per_two_queues)
{
	CHECK_EQ(zublk_threads_for(2, 128, 0, 2), 1);
	CHECK_EQ(zublk_threads_for(3, 128, 0, 3), 2);
	CHECK_EQ(zublk_threads_for(8, 128, 0, 8), 4);
}

TEST(asked_threads_are_kept_and_spread_the_queues_evenly)
{
	CHECK_EQ(zublk_threads_for(4, 128, 1, 4), 1);
	CHECK_EQ(zublk_threads_for(4, 128, 4, 4), 4);
	CHECK_EQ(zublk_threads_for(4, 128, 9, 4), 4);
	/* 3 threads for 4 queues would leave one thread 2 and two 1: 2 and 2. */
	CHECK_EQ(zublk_threads_for(4, 128, 3, 4), 2);
}

TEST(no_thread_gets_more_tags_than_its_buffer_table_holds)
{
	CHECK_EQ(zublk_threads_for(8, 4096, 1, 8), 2);
	CHECK_EQ(zublk_threads_for(8, 4096, 0, 8), 4);
	CHECK_EQ(zublk_threads_for(5, 4096, 1, 8), 2);
	CHECK_EQ(zublk_threads_for(64, 1024, 1, 64), 4);
}

TEST(threads_beyond_the_queues_or_split_batch_queues_are_refused)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .nr_queues = 2, .nr_threads = 2 };

	CHECK_EQ(config_check(cfg, 2), 0);
	cfg.nr_threads = 3;
	CHECK_EQ(config_check(cfg, 4), -EINVAL);
	CHECK(strstr(last_msg, "threads 3") != NULL);
	cfg.nr_threads = 1;
	CHECK_EQ(config_check(cfg, 2), 0);
	cfg.batch = true;
	CHECK_EQ(config_check(cfg, 2), -EINVAL);
	CHECK(strstr(last_msg, "batch") != NULL);
	cfg.nr_threads = 0;
	CHECK_EQ(config_check(cfg, 2), 0);
}

TEST(a_device_is_not_made_from_a_config_the_check_refuses)
{
	static const struct zublk_target_ops ops = { .name = "none" };
	struct zublk_dev_config cfg = { .dev_id = -1,
					 .max_io_bytes = ZUBLK_MAX_MAX_IO_BYTES + 4096 };
	struct zublk_dev *dev = NULL;
	struct zublk_opts opts = { 0 };

	last_msg[0] = '\0';
	zublk_set_log(capture_log);
	CHECK_EQ(zublk_dev_create(&cfg, &ops, &opts, &dev), -EINVAL);
	zublk_set_log(NULL);
	CHECK(strstr(last_msg, "max IO size") != NULL);
	CHECK(dev == NULL);
}

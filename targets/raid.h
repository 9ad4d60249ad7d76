/* SPDX-License-Identifier: MIT */
/*
 * What the stripe (RAID0) and mirror (RAID1) targets share: opening a
 * member, and the pure mapping and bookkeeping math the unit tests reach
 * (tests/unit/test-stripe.c, tests/unit/test-mirror.c).
 */
#ifndef ZUBLK_RAID_H
#define ZUBLK_RAID_H

#include <stdbool.h>
#include <stdint.h>

#include "zublk.h"

/* ------------------------------------------------------------- members */

struct raid_member {
	char *path;
	struct zublk_backing b;	/* fd, size, block size, what it can do */
	int idx;		/* fixed file index */
};

/*
 * Open @path read-write with zublk_backing_open() (@buffered: 1, 0, or -1
 * for "O_DIRECT unless in memory").  Does not register it as a fixed file.
 * On error logs one line "<what> '<path>': <cause>" (what: "stripe: member").
 */
int raid_member_open(const char *what, const char *path, int buffered,
		     struct raid_member *m);
void raid_member_close(struct raid_member *m);
/*
 * Whether open files @a and @b share data (two members there would write
 * over each other): one file, one block device, a disk and its partition,
 * a loop device and the file it serves, two loop devices over one range.
 */
bool raid_same_storage(int a, int b);
/*
 * Fold member @m into the device's shape: the largest physical block and
 * DMA alignment win; discard and write zeroes stay only if every member can.
 */
void raid_member_fold(const struct raid_member *m, struct zublk_target_geom *g, bool *discard,
		      bool *zero);

/* ------------------------------------------------- stripe math (pure) */

#define STRIPE_MIN_CHUNK 4096ULL
#define STRIPE_MAX_CHUNK (1ULL << 30)

struct stripe_layout {
	unsigned nr;		/* members, >= 2 */
	unsigned chunk_shift;	/* chunk = 1 << chunk_shift */
};

/* One chunk-bounded part of a request. */
struct stripe_piece {
	unsigned member;
	uint64_t member_off;	/* byte offset on the member */
	uint32_t io_off;	/* byte offset in the request's data */
	uint32_t len;
};

/* 0 when @chunk is a power of two in 4 KiB..1 GiB, else -EINVAL. */
int stripe_chunk_check(uint64_t chunk);

/* Device size: nr x the smallest member rounded down to the chunk. */
uint64_t stripe_size(const struct stripe_layout *l, const uint64_t *member_sizes);

/* How many chunk-bounded pieces [off, off + len) spans (len > 0). */
unsigned stripe_nr_pieces(const struct stripe_layout *l, uint64_t off, uint64_t len);

/*
 * Piece @i (0-based, < stripe_nr_pieces()) of the request [off, off + len),
 * len <= 4 GiB.
 */
void stripe_piece(const struct stripe_layout *l, uint64_t off, uint64_t len, unsigned i,
		  struct stripe_piece *p);

/*
 * The part of device range [off, off + len) that lives on @member: always
 * one contiguous member range [*start, *end) (empty when *start == *end).
 * For discards, which may be far larger than a request's data.
 */
void stripe_member_range(const struct stripe_layout *l, uint64_t off, uint64_t len,
			 unsigned member, uint64_t *start, uint64_t *end);

/* ------------------------------------------------- mirror math (pure) */

#define MIRROR_MAX_LEGS 16

/*
 * Leg states live in one atomic 32-bit word: bit i of the low half set:
 * leg i is in sync and readable; bit i of the high half: leg i is being
 * rebuilt (written, never read).  Neither: failed.
 */
#define MIRROR_OK(w) ((w) & 0xffffU)
#define MIRROR_RB(w) (((w) >> 16) & 0xffffU)
#define MIRROR_LEG(i) (1U << (i))

/*
 * The leg to read from: the in-sync leg not in @tried with the fewest
 * requests in flight (@inflight[i]); ties go to the lowest index at or after
 * @hint (rotating through equals).  -1 when none is left.
 */
int mirror_pick_leg(uint32_t ok_mask, uint32_t tried, const unsigned *inflight, unsigned nr,
		    unsigned hint);

/*
 * Leg state word after leg @leg failed: it leaves both halves, except that
 * the last in-sync leg is never failed (its errors go to the application).
 * Returns the new word; *failed tells whether the leg was failed.
 */
uint32_t mirror_fail_leg(uint32_t word, unsigned leg, bool *failed);

/* "1,3" -> bits 1 and 3; each a leg below @nr.  0 or -EINVAL. */
int mirror_parse_failed(const char *s, unsigned nr, uint32_t *failed);

/* "ok", "failed" or "rebuilding" for leg @leg in @word. */
const char *mirror_leg_state_name(uint32_t word, unsigned leg);

/* Do [a, a + alen) and [b, b + blen) overlap? */
static inline bool raid_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

#endif

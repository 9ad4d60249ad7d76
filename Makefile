# SPDX-License-Identifier: MIT
# make            build into build/ (the CLI is build/zublk)
# make SANITIZE=1 the same with ASan + UBSan, into build/san/
# make check      unit tests (under ASan + UBSan), then the VM suite
# make demo       the main job: a zero-copy loop device with ext4, in the VM
# make bench      the benchmarks (not part of check)
# make install    PREFIX=/usr/local DESTDIR= UDEVDIR=/usr/lib/udev (the rule that
#                 lets users other than root add devices: zublk(8))

PREFIX ?= /usr/local
DESTDIR ?=
UDEVDIR ?= /usr/lib/udev
CC ?= cc
SANITIZE ?=

ifeq ($(SANITIZE),1)
B := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B := build
SANFLAGS :=
endif

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wformat=2 -Wstrict-prototypes
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude -MMD -MP
LDLIBS := -luring -lpthread -lz -lzstd

LIB_SRC := $(wildcard lib/*.c) $(wildcard targets/*.c)
CLI_SRC := $(wildcard cli/*.c)
UNIT_SRC := $(wildcard tests/unit/test-*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)

.PHONY: all unit check check-unit check-vm demo bench install clean setup FORCE

all: $(B)/zublk $(UNIT_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libzublk.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/zublk: $(CLI_OBJ) $(B)/libzublk.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $(CLI_OBJ) $(B)/libzublk.a $(LDLIBS)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(B)/libzublk.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $< $(B)/libzublk.a $(LDLIBS)

unit: $(UNIT_BIN)

setup:
	bash scripts/setup.sh

check-unit: setup
	$(MAKE) SANITIZE=1 unit
	bash tests/unit/run build/san/tests/unit

check-vm: setup all
	bash tests/vm/suite

check: check-unit check-vm

demo: setup all
	bash tests/vm/vm-run -- bash scripts/demo.sh

bench: setup all
	bash bench/run

install: $(B)/zublk
	install -D -m 0755 $(B)/zublk $(DESTDIR)$(PREFIX)/sbin/zublk
	install -D -m 0644 $(B)/libzublk.a $(DESTDIR)$(PREFIX)/lib/libzublk.a
	install -D -m 0644 include/zublk.h $(DESTDIR)$(PREFIX)/include/zublk.h
	for m in docs/*.8; do install -D -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man8/$$(basename $$m); done
	for m in docs/*.3; do install -D -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man3/$$(basename $$m); done
	install -d $(DESTDIR)$(UDEVDIR)/rules.d
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' udev/90-zublk.rules \
		> $(DESTDIR)$(UDEVDIR)/rules.d/90-zublk.rules

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

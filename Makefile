# ngx_wgconn: build the nginx module against Debian's nginx, lwIP from
# Debian's source package, and run the tests.
#
#   make        build build/ngx_wgconn_module.so (installs build deps)
#   make demo   start nginx with the module and a wireguard-go peer
#   make test   everything CI runs

TOP        := $(CURDIR)
B          := $(TOP)/build
LWIP_SRC   := $(B)/src/lwip
NGX_SRC    := $(B)/nginx-src
CC         ?= cc
CFLAGS_OPT ?= -O2 -g

LWIP_FILES := core/init.c core/def.c core/inet_chksum.c core/ip.c \
	core/mem.c core/memp.c core/netif.c core/pbuf.c core/stats.c \
	core/sys.c core/tcp.c core/tcp_in.c core/tcp_out.c core/timeouts.c \
	core/udp.c core/ipv4/icmp.c core/ipv4/ip4.c core/ipv4/ip4_addr.c \
	core/ipv4/ip4_frag.c core/ipv6/icmp6.c core/ipv6/inet6.c \
	core/ipv6/ip6.c core/ipv6/ip6_addr.c core/ipv6/ip6_frag.c \
	core/ipv6/nd6.c core/ipv6/mld6.c
LWIP_OBJS  := $(patsubst %.c,$(B)/lwip/%.o,$(LWIP_FILES)) \
	$(B)/lwip/arch/mem.o $(B)/lwip/arch/rcvwnd.o

SRCS       := $(wildcard src/*.c src/*.h) config

.PHONY: all deps lwip module static demo test unit fuzz bench clean

all: module

deps: $(B)/.deps
$(B)/.deps: scripts/deps.sh $(wildcard patches/*.patch)
	bash scripts/deps.sh
	touch $@

lwip: $(B)/lwip/liblwip.a

# lwIP's sources appear when deps.sh unpacks Debian's source package
$(addprefix $(LWIP_SRC)/src/,$(LWIP_FILES)): $(B)/.deps
	@test -f $@

$(B)/lwip/%.o: $(LWIP_SRC)/src/%.c src/lwipopts.h src/arch/cc.h src/arch/chksum.h src/arch/mem.h $(B)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OPT) -fPIC -Wall -Wno-address -Wno-unused-variable -Isrc \
	    -I$(LWIP_SRC)/src/include -c $< -o $@

# the port's own part of the library: lwIP's heap, counted (src/arch/mem.h),
# and the receive window sized to the path (src/arch/rcvwnd.h)
$(B)/lwip/arch/%.o: src/arch/%.c src/arch/%.h src/arch/mem.h src/lwipopts.h $(B)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OPT) -fPIC -Wall -Wextra -Isrc -I$(LWIP_SRC)/src/include \
	    -c $< -o $@

$(B)/lwip/liblwip.a: $(LWIP_OBJS)
	rm -f $@
	ar rcs $@ $^

module: $(B)/ngx_wgconn_module.so

# nginx-dev ships the configured tree without a Makefile: configure a copy
# with Debian's own flags (plus the stream module, which Debian builds as a
# dynamic module) and build only our .so
$(B)/ngx_wgconn_module.so: $(SRCS) $(B)/lwip/liblwip.a
	bash scripts/build-module.sh
	@touch $@

# the same config built statically into Debian's nginx source package
static: $(B)/lwip/liblwip.a
	bash scripts/build-static.sh

unit:
	$(MAKE) -C t/unit test

fuzz:
	$(MAKE) -C fuzz run SECONDS=$${FUZZ_SECONDS:-20}

demo: module
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench: module
	bash bench/run.sh

clean:
	rm -rf $(B)/lwip $(NGX_SRC) $(B)/ngx_wgconn_module.so

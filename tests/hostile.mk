# tests/hostile.mk: see tests/Makefile.am.
#
# bad-server is a deliberately misbehaving NBD server (test-only; it talks
# on stdin/stdout for nbd_connect_command).  hostile-replies runs each of
# its scenarios against libnbdc and checks the strict reply validation.
# hostile-replies-libnbd is the same source built against libnbd 1.14: it
# runs only the scenarios where libnbdc promises libnbd's behaviour
# (--same-as-libnbd), so libnbd keeps those expectations honest.

TESTS += \
	hostile-replies.sh \
	hostile-replies-libnbd.sh \
	$(NULL)

check_PROGRAMS += \
	bad-server \
	hostile-replies \
	$(NULL)

EXTRA_DIST += \
	hostile-replies.sh \
	hostile-replies-libnbd.sh \
	$(NULL)

bad_server_SOURCES = bad-server.c

hostile_replies_SOURCES = hostile-replies.c
hostile_replies_LDFLAGS = -no-install
hostile_replies_LDADD = $(NBDC_LIBS)

if HAVE_LIBNBD
check_PROGRAMS += hostile-replies-libnbd

# Not AM_CPPFLAGS: <libnbd.h> must be libnbd's own.
hostile_replies_libnbd_SOURCES = hostile-replies.c
hostile_replies_libnbd_CPPFLAGS = -I$(top_builddir) $(LIBNBD_CFLAGS)
hostile_replies_libnbd_LDADD = $(LIBNBD_LIBS)
endif

# tests/hostile.mk: see tests/Makefile.am.
#
# bad-server is a deliberately misbehaving NBD server (test-only; it talks
# on stdin/stdout for nbd_connect_command).  hostile-replies runs each of
# its scenarios against libnbdc and checks the strict reply validation;
# libnbd 1.14 is more lenient in some of them, so there is no libnbd
# variant of this test.

TESTS += \
	hostile-replies.sh \
	$(NULL)

check_PROGRAMS += \
	bad-server \
	hostile-replies \
	$(NULL)

EXTRA_DIST += \
	hostile-replies.sh \
	$(NULL)

bad_server_SOURCES = bad-server.c

# The expectations table names only the fields a row needs.
HOSTILE_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers

hostile_replies_SOURCES = hostile-replies.c
hostile_replies_CFLAGS = $(HOSTILE_CFLAGS)
hostile_replies_LDFLAGS = -no-install
hostile_replies_LDADD = $(NBDC_LIBS)

# tests/unit.mk: parser and handshake unit tests (see tests/Makefile.am).

# The same scripted streams, whole, byte by byte and split at every offset.
TESTS += unit-split
check_PROGRAMS += unit-split
unit_split_SOURCES = unit-split.c
unit_split_LDADD = $(NBDC_LIBS)

if HAVE_LIBNBD
# The streams themselves are checked against libnbd.
TESTS += unit-split-libnbd
check_PROGRAMS += unit-split-libnbd
unit_split_libnbd_SOURCES = unit-split.c
unit_split_libnbd_CPPFLAGS = $(LIBNBD_CFLAGS)
unit_split_libnbd_LDADD = $(LIBNBD_LIBS)
endif

# No call cycle between the files of client/ (dependencies point down).
TESTS += layers.sh
EXTRA_DIST += layers.sh

# tests/examples.mk: the programs in examples/ run against real servers
# (see tests/Makefile.am).  They are built in examples/; a script whose
# program was not built (a missing optional library) skips.

TESTS += glib-loop.sh
EXTRA_DIST += glib-loop.sh

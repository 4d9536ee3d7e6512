# tests/plugin.mk: the nbd-proxy nbdkit plugin against real servers and
# clients (see tests/Makefile.am).  Each script skips when the plugin was
# not built, or when a peer tool is missing; a check that needs a libnbdc
# call the plugin was built without (see "has_*" in --dump-plugin) skips
# until that call lands.  plugin-functions.sh starts nbdkit with the plugin
# under valgrind or with the sanitizer runtime in those passes.

PLUGIN_TESTS = \
	plugin-config.sh \
	plugin-read.sh \
	plugin-info.sh \
	plugin-errors.sh \
	plugin-filters.sh \
	plugin-death.sh \
	plugin-write.sh \
	plugin-fio.sh \
	plugin-exports.sh \
	plugin-tls.sh \
	plugin-hostile.sh \
	build-run.sh \
	plugin-commands.sh \
	plugin-modes.sh \
	$(NULL)

TESTS += $(PLUGIN_TESTS)
EXTRA_DIST += $(PLUGIN_TESTS) plugin-functions.sh plugin-valgrind.supp

# nbd-commands: a host client for plugin-commands.sh, built against libnbd
# (the reference client), so only with libnbd-dev.
if HAVE_LIBNBD
check_PROGRAMS += nbd-commands
nbd_commands_SOURCES = nbd-commands.c
nbd_commands_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
nbd_commands_LDADD = $(LIBNBD_LIBS)
endif

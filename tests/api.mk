# tests/api.mk: API tests against real servers and the differential test
# (see tests/Makefile.am).
#
# Each program is written to the libnbd 1.14 API and built twice from the
# same source: NAME-nbdc links libnbdc (include/libnbd.h comes first through
# AM_CPPFLAGS), NAME-libnbd links libnbd itself, with per-target CPPFLAGS
# that leave our include directory out.  The scripts run the -nbdc builds
# (API_VARIANT=libnbd runs the -libnbd ones: the reference behaviour);
# diff-transcript.sh runs both and compares.

API_TESTS = \
	api-connect.sh \
	api-read.sh \
	api-read-qemu.sh \
	api-read-nbd-server.sh \
	api-callbacks.sh \
	api-free.sh \
	api-contract.sh \
	api-settings.sh \
	api-uri.sh \
	api-opt.sh \
	api-tls.sh \
	diff-transcript.sh \
	$(NULL)

TESTS += $(API_TESTS)
EXTRA_DIST += $(API_TESTS) tls-functions.sh

check_PROGRAMS += \
	api-connect-nbdc \
	api-read-nbdc \
	api-callbacks-nbdc \
	api-free-nbdc \
	api-contract-nbdc \
	api-settings-nbdc \
	api-uri-nbdc \
	api-opt-nbdc \
	api-tls-nbdc \
	diff-transcript-nbdc \
	$(NULL)

api_connect_nbdc_SOURCES = api-connect.c api-tap.h
api_connect_nbdc_LDFLAGS = -no-install
api_connect_nbdc_LDADD = $(NBDC_LIBS)

api_read_nbdc_SOURCES = api-read.c api-tap.h
api_read_nbdc_LDFLAGS = -no-install
api_read_nbdc_LDADD = $(NBDC_LIBS)

api_callbacks_nbdc_SOURCES = api-callbacks.c api-tap.h
api_callbacks_nbdc_LDFLAGS = -no-install
api_callbacks_nbdc_LDADD = $(NBDC_LIBS)

api_free_nbdc_SOURCES = api-free.c api-tap.h
api_free_nbdc_LDFLAGS = -no-install
api_free_nbdc_LDADD = $(NBDC_LIBS)

api_contract_nbdc_SOURCES = api-contract.c api-tap.h
api_contract_nbdc_LDFLAGS = -no-install
api_contract_nbdc_LDADD = $(NBDC_LIBS)

api_settings_nbdc_SOURCES = api-settings.c api-tap.h
api_settings_nbdc_LDFLAGS = -no-install
api_settings_nbdc_LDADD = $(NBDC_LIBS)

api_uri_nbdc_SOURCES = api-uri.c api-tap.h
api_uri_nbdc_LDFLAGS = -no-install
api_uri_nbdc_LDADD = $(NBDC_LIBS)

api_opt_nbdc_SOURCES = api-opt.c api-tap.h
api_opt_nbdc_LDFLAGS = -no-install
api_opt_nbdc_LDADD = $(NBDC_LIBS)

api_tls_nbdc_SOURCES = api-tls.c api-tap.h
api_tls_nbdc_LDFLAGS = -no-install
api_tls_nbdc_LDADD = $(NBDC_LIBS)

diff_transcript_nbdc_SOURCES = diff-transcript.c api-tap.h
diff_transcript_nbdc_LDFLAGS = -no-install
diff_transcript_nbdc_LDADD = $(NBDC_LIBS)

# The same tests run against libnbd: the checks encode libnbd's behaviour,
# so they must pass there too (a failure here is a wrong check).
API_LIBNBD_TESTS = \
	api-connect-libnbd.sh \
	api-read-libnbd.sh \
	api-read-qemu-libnbd.sh \
	api-read-nbd-server-libnbd.sh \
	api-callbacks-libnbd.sh \
	api-free-libnbd.sh \
	api-contract-libnbd.sh \
	api-settings-libnbd.sh \
	api-uri-libnbd.sh \
	api-opt-libnbd.sh \
	api-tls-libnbd.sh \
	$(NULL)

if HAVE_LIBNBD
check_PROGRAMS += \
	api-connect-libnbd \
	api-read-libnbd \
	api-callbacks-libnbd \
	api-free-libnbd \
	api-contract-libnbd \
	api-settings-libnbd \
	api-uri-libnbd \
	api-opt-libnbd \
	api-tls-libnbd \
	diff-transcript-libnbd \
	$(NULL)

# Not AM_CPPFLAGS: <libnbd.h> must be libnbd's own.
API_LIBNBD_CPPFLAGS = -I$(top_builddir) -I$(srcdir) $(LIBNBD_CFLAGS)

api_connect_libnbd_SOURCES = api-connect.c api-tap.h
api_connect_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_connect_libnbd_LDADD = $(LIBNBD_LIBS)

api_read_libnbd_SOURCES = api-read.c api-tap.h
api_read_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_read_libnbd_LDADD = $(LIBNBD_LIBS)

api_callbacks_libnbd_SOURCES = api-callbacks.c api-tap.h
api_callbacks_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_callbacks_libnbd_LDADD = $(LIBNBD_LIBS)

api_free_libnbd_SOURCES = api-free.c api-tap.h
api_free_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_free_libnbd_LDADD = $(LIBNBD_LIBS)

api_contract_libnbd_SOURCES = api-contract.c api-tap.h
api_contract_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_contract_libnbd_LDADD = $(LIBNBD_LIBS)

api_settings_libnbd_SOURCES = api-settings.c api-tap.h
api_settings_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_settings_libnbd_LDADD = $(LIBNBD_LIBS)

api_uri_libnbd_SOURCES = api-uri.c api-tap.h
api_uri_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_uri_libnbd_LDADD = $(LIBNBD_LIBS)

api_opt_libnbd_SOURCES = api-opt.c api-tap.h
api_opt_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_opt_libnbd_LDADD = $(LIBNBD_LIBS)

api_tls_libnbd_SOURCES = api-tls.c api-tap.h
api_tls_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_tls_libnbd_LDADD = $(LIBNBD_LIBS)

diff_transcript_libnbd_SOURCES = diff-transcript.c api-tap.h
diff_transcript_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
diff_transcript_libnbd_LDADD = $(LIBNBD_LIBS)

TESTS += $(API_LIBNBD_TESTS)
endif
EXTRA_DIST += $(API_LIBNBD_TESTS)

# One handle shared by threads (blocking reads and nbd_poll loops).
TESTS += api-threads.sh
EXTRA_DIST += api-threads.sh
check_PROGRAMS += api-threads-nbdc
api_threads_nbdc_SOURCES = api-threads.c api-tap.h
api_threads_nbdc_LDFLAGS = -no-install
api_threads_nbdc_LDADD = $(NBDC_LIBS)
if HAVE_LIBNBD
check_PROGRAMS += api-threads-libnbd
api_threads_libnbd_SOURCES = api-threads.c api-tap.h
api_threads_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_threads_libnbd_LDADD = $(LIBNBD_LIBS)
endif

# No allocation per request (libnbdc only: libnbd allocates per command).
TESTS += api-alloc.sh
EXTRA_DIST += api-alloc.sh
check_PROGRAMS += api-alloc-nbdc
api_alloc_nbdc_SOURCES = api-alloc.c api-tap.h
api_alloc_nbdc_LDFLAGS = -no-install
api_alloc_nbdc_LDADD = $(NBDC_LIBS) -lpthread

# Data integrity: threads with aio and blocking commands on one handle,
# checked against a model of the disk; 4 MiB writes into a full socket.
TESTS += api-integrity.sh
EXTRA_DIST += api-integrity.sh api-integrity-libnbd.sh
check_PROGRAMS += api-integrity-nbdc
api_integrity_nbdc_SOURCES = api-integrity.c api-tap.h
api_integrity_nbdc_LDFLAGS = -no-install
api_integrity_nbdc_LDADD = $(NBDC_LIBS)
if HAVE_LIBNBD
TESTS += api-integrity-libnbd.sh
check_PROGRAMS += api-integrity-libnbd
api_integrity_libnbd_SOURCES = api-integrity.c api-tap.h
api_integrity_libnbd_CPPFLAGS = $(API_LIBNBD_CPPFLAGS)
api_integrity_libnbd_LDADD = $(LIBNBD_LIBS)
endif

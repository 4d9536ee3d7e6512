/* nbd-proxy: the configuration keys (those of nbdkit's nbd plugin, plus
 * connections=) and how an upstream handle is connected with them.
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "proxy.h"

struct proxy_config config = {
  .socket_fd = -1,
  .connections = PROXY_CONNECTIONS_DEFAULT,
  .tls = -1,
  .tls_verify = -1,
};

/* What was given explicitly, to apply the defaults that depend on it. */
static int dynamic_export_key = -1;
static int shared_key = -1;
static bool port_given;

static const char *const keys[] = {
  "uri", "socket", "hostname", "port", "vsock", "command", "arg",
  "socket-fd", "export", "dynamic-export", "retry", "shared", "tls",
  "tls-certificates", "tls-verify", "tls-username", "tls-psk",
  "connections",
};

/* Printed by --dump-plugin: every key the plugin takes. */
void
proxy_dump_keys (void)
{
  size_t i;

  printf ("nbd_proxy_keys=");
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
    printf ("%s%s", i ? "," : "", keys[i]);
  printf ("\n");
}

static int
set_mode (enum upstream_mode mode, const char *key)
{
  if (config.mode != MODE_NONE) {
    nbdkit_error ("%s= is a second upstream address: give one of uri=, "
                  "socket=, hostname=, vsock=, command=, socket-fd=", key);
    return -1;
  }
  config.mode = mode;
  return 0;
}

static int
parse_bool_key (const char *key, const char *value, int *out)
{
  int r = nbdkit_parse_bool (value);

  if (r == -1)
    return -1;                  /* nbdkit_error was called */
  (void) key;
  *out = r;
  return 0;
}

static int
parse_tls (const char *value)
{
  int r;

  if (strcmp (value, "require") == 0 || strcmp (value, "required") == 0 ||
      strcmp (value, "force") == 0) {
    config.tls = LIBNBD_TLS_REQUIRE;
    return 0;
  }
  r = nbdkit_parse_bool (value);
  if (r == -1)
    return -1;
  config.tls = r ? LIBNBD_TLS_ALLOW : LIBNBD_TLS_DISABLE;
  return 0;
}

static int
add_arg (const char *value)
{
  const char **argv = realloc (config.argv,
                               (config.argc + 2) * sizeof *argv);

  if (argv == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  argv[config.argc++] = value;
  argv[config.argc] = NULL;
  config.argv = argv;
  return 0;
}

int
proxy_config_key (const char *key, const char *value)
{
  int b;

  if (strcmp (key, "uri") == 0) {
    if (set_mode (MODE_URI, key) == -1)
      return -1;
    config.uri = value;
  }
  else if (strcmp (key, "socket") == 0) {
    if (set_mode (MODE_UNIX, key) == -1)
      return -1;
    free (config.socket);
    config.socket = nbdkit_absolute_path (value);
    if (config.socket == NULL)
      return -1;
  }
  else if (strcmp (key, "hostname") == 0) {
    if (set_mode (MODE_TCP, key) == -1)
      return -1;
    config.hostname = value;
  }
  else if (strcmp (key, "port") == 0) {
    config.port = value;
    port_given = true;
  }
  else if (strcmp (key, "vsock") == 0) {
    if (set_mode (MODE_VSOCK, key) == -1 ||
        nbdkit_parse_uint32_t ("vsock", value, &config.vsock_cid) == -1)
      return -1;
  }
  else if (strcmp (key, "command") == 0) {
    if (set_mode (MODE_COMMAND, key) == -1)
      return -1;
    /* command= starts the list; arg= given before it come after it. */
    if (add_arg (value) == -1)
      return -1;
    if (config.argc > 1) {
      memmove (config.argv + 1, config.argv,
               (config.argc - 1) * sizeof *config.argv);
      config.argv[0] = value;
    }
  }
  else if (strcmp (key, "arg") == 0) {
    if (config.argc == 0 && add_arg ("") == -1)   /* command's place */
      return -1;
    if (add_arg (value) == -1)
      return -1;
  }
  else if (strcmp (key, "socket-fd") == 0) {
    if (set_mode (MODE_SOCKET_FD, key) == -1 ||
        nbdkit_parse_int ("socket-fd", value, &config.socket_fd) == -1)
      return -1;
    if (config.socket_fd < 0) {
      nbdkit_error ("socket-fd=%s: must be a file descriptor (>= 0)",
                    value);
      return -1;
    }
  }
  else if (strcmp (key, "export") == 0)
    config.export = value;
  else if (strcmp (key, "dynamic-export") == 0)
    return parse_bool_key (key, value, &dynamic_export_key);
  else if (strcmp (key, "retry") == 0)
    return nbdkit_parse_unsigned ("retry", value, &config.retry);
  else if (strcmp (key, "shared") == 0)
    return parse_bool_key (key, value, &shared_key);
  else if (strcmp (key, "connections") == 0) {
    if (nbdkit_parse_unsigned ("connections", value,
                               &config.connections) == -1)
      return -1;
    if (config.connections < 1 ||
        config.connections > PROXY_CONNECTIONS_MAX) {
      nbdkit_error ("connections=%s: must be between 1 and %d", value,
                    PROXY_CONNECTIONS_MAX);
      return -1;
    }
  }
  else if (strcmp (key, "tls") == 0)
    return parse_tls (value);
  else if (strcmp (key, "tls-certificates") == 0) {
    free (config.tls_certificates);
    config.tls_certificates = nbdkit_absolute_path (value);
    if (config.tls_certificates == NULL)
      return -1;
  }
  else if (strcmp (key, "tls-verify") == 0) {
    if (parse_bool_key (key, value, &b) == -1)
      return -1;
    config.tls_verify = b;
  }
  else if (strcmp (key, "tls-username") == 0)
    config.tls_username = value;
  else if (strcmp (key, "tls-psk") == 0) {
    free (config.tls_psk);
    config.tls_psk = nbdkit_absolute_path (value);
    if (config.tls_psk == NULL)
      return -1;
  }
  else {
    nbdkit_error ("unknown parameter '%s' (nbdkit --dump-plugin lists "
                  "the keys)", key);
    return -1;
  }
  return 0;
}

/* Where in uri the path starts (after scheme://authority). */
static const char *
uri_path (const char *uri)
{
  const char *p = strstr (uri, "://");

  if (p == NULL)
    return NULL;
  p += 3;
  return p + strcspn (p, "/?#");
}

static int
hexdigit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The export name a URI names (percent-decoded path without its leading
 * '/'), or NULL if it names none.  Interned: lives as long as nbdkit.
 */
static const char *
uri_export (const char *uri)
{
  const char *path = uri_path (uri);
  size_t len, i, j;
  char *name;
  const char *r;

  if (path == NULL || *path != '/')
    return NULL;
  path++;
  len = strcspn (path, "?#");
  if (len == 0)
    return NULL;
  name = malloc (len + 1);
  if (name == NULL)
    return NULL;
  for (i = j = 0; i < len; i++) {
    if (path[i] == '%' && i + 2 < len + 1 && hexdigit (path[i + 1]) >= 0 &&
        hexdigit (path[i + 2]) >= 0) {
      name[j++] = hexdigit (path[i + 1]) * 16 + hexdigit (path[i + 2]);
      i += 2;
    }
    else
      name[j++] = path[i];
  }
  name[j] = '\0';
  r = nbdkit_strdup_intern (name);
  free (name);
  return r;
}

/* uri with its path replaced by export (percent-encoded).  Caller frees. */
static char *
uri_with_export (const char *uri, const char *export)
{
  static const char hex[] = "0123456789ABCDEF";
  const char *path = uri_path (uri);
  const char *rest = path + strcspn (path, "?#");
  size_t head = path - uri;
  char *out = malloc (head + 1 + strlen (export) * 3 + strlen (rest) + 1);
  char *p = out;
  const unsigned char *s;

  if (out == NULL)
    return NULL;
  memcpy (p, uri, head);
  p += head;
  *p++ = '/';
  for (s = (const unsigned char *) export; *s; s++) {
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
        (*s >= '0' && *s <= '9') || strchr ("-._~", *s))
      *p++ = *s;
    else {
      *p++ = '%';
      *p++ = hex[*s >> 4];
      *p++ = hex[*s & 15];
    }
  }
  strcpy (p, rest);
  return out;
}

static bool
tls_wanted (void)
{
  return config.tls > LIBNBD_TLS_DISABLE ||
    (config.mode == MODE_URI && strncmp (config.uri, "nbds", 4) == 0);
}

/* Check the keys together; fill in the defaults that depend on others. */
int
proxy_config_complete (void)
{
  struct nbd_handle *nbd;
  int have_uri, have_tls;
  struct stat st;

  switch (config.mode) {
  case MODE_NONE:
    nbdkit_error ("no upstream: give one of uri=, socket=, hostname=, "
                  "vsock=, command= or socket-fd=");
    return -1;
  case MODE_URI:
    if (strncmp (config.uri, "nbd", 3) != 0 ||
        strstr (config.uri, "://") == NULL) {
      nbdkit_error ("uri=%s: not an NBD URI (nbd://, nbds://, nbd+unix://, "
                    "nbd+vsock://...)", config.uri);
      return -1;
    }
    if (config.export) {
      nbdkit_error ("export= with uri=: put the export name in the URI");
      return -1;
    }
    config.export = uri_export (config.uri);
    break;
  case MODE_TCP:
    break;
  case MODE_VSOCK:
    config.vsock_port = 10809;
    if (config.port &&
        nbdkit_parse_uint32_t ("port", config.port, &config.vsock_port) == -1)
      return -1;
    break;
  case MODE_COMMAND:
  case MODE_SOCKET_FD:
    if (shared_key == 0) {
      nbdkit_error ("shared=false is impossible with %s=: there is only "
                    "one upstream connection",
                    config.mode == MODE_COMMAND ? "command" : "socket-fd");
      return -1;
    }
    shared_key = 1;
    break;
  default:
    break;
  }
  if (port_given && config.mode != MODE_TCP && config.mode != MODE_VSOCK) {
    nbdkit_error ("port= goes with hostname= or vsock=");
    return -1;
  }
  if (config.argc > 0 && config.mode != MODE_COMMAND) {
    nbdkit_error ("arg= goes with command=");
    return -1;
  }
  config.shared = shared_key == 1;

  /* Default: the host client's export name goes upstream unless an export
   * was configured (export= or a URI path) or one connection is shared.
   */
  if (dynamic_export_key == 1) {
    if (config.export && config.mode != MODE_URI) {
      nbdkit_error ("dynamic-export=true conflicts with export=");
      return -1;
    }
    if (config.shared) {
      nbdkit_error ("dynamic-export=true conflicts with shared mode "
                    "(shared=true, command= or socket-fd=)");
      return -1;
    }
    config.dynamic_export = true;
  }
  else if (dynamic_export_key == 0)
    config.dynamic_export = false;
  else
    config.dynamic_export = config.export == NULL && !config.shared;
  if (config.export == NULL)
    config.export = "";

  nbd = nbd_create ();
  if (nbd == NULL) {
    nbdkit_error ("nbd_create: %s", nbd_get_error ());
    return -1;
  }
  have_uri = nbd_supports_uri (nbd);
  have_tls = nbd_supports_tls (nbd);
  nbd_close (nbd);
  if (config.mode == MODE_URI && have_uri != 1) {
    nbdkit_error ("uri=: this libnbdc cannot parse URIs");
    return -1;
  }
  if (config.tls == -1 &&
      (config.tls_certificates || config.tls_psk || config.tls_username ||
       config.tls_verify != -1))
    config.tls = LIBNBD_TLS_ALLOW;
  if (config.tls_certificates && config.tls_psk) {
    nbdkit_error ("tls-certificates= and tls-psk= exclude each other");
    return -1;
  }
  if (config.tls_certificates &&
      (stat (config.tls_certificates, &st) == -1 || !S_ISDIR (st.st_mode))) {
    nbdkit_error ("tls-certificates=%s: not a directory",
                  config.tls_certificates);
    return -1;
  }
  if (config.tls_psk && access (config.tls_psk, R_OK) == -1) {
    nbdkit_error ("tls-psk=%s: %m", config.tls_psk);
    return -1;
  }
  if (tls_wanted () && have_tls != 1) {
    nbdkit_error ("TLS to the upstream server (tls=, tls-*= or an nbds:// "
                  "URI) needs libnbdc built with GnuTLS");
    return -1;
  }
  return 0;
}

void
proxy_config_unload (void)
{
  free (config.socket);
  free (config.argv);
  free (config.tls_certificates);
  free (config.tls_psk);
}

/* The settings every upstream handle gets before it connects. */
static int
upstream_prepare (struct nbd_handle *nbd, const char *export)
{
  if (nbd_set_handle_name (nbd, "nbd-proxy") == -1 ||
      nbd_set_pread_initialize (nbd, false) == -1 ||
      nbd_set_full_info (nbd, true) == -1 ||
      nbd_add_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      nbd_set_export_name (nbd, export) == -1)
    return -1;
  if (config.tls > LIBNBD_TLS_DISABLE) {
    if (nbd_set_tls (nbd, config.tls) == -1)
      return -1;
    if (config.tls_certificates &&
        nbd_set_tls_certificates (nbd, config.tls_certificates) == -1)
      return -1;
    if (config.tls_verify != -1 &&
        nbd_set_tls_verify_peer (nbd, config.tls_verify) == -1)
      return -1;
    if (config.tls_username &&
        nbd_set_tls_username (nbd, config.tls_username) == -1)
      return -1;
    if (config.tls_psk && nbd_set_tls_psk_file (nbd, config.tls_psk) == -1)
      return -1;
  }
  /* The URI is the administrator's, not a client's: its tls-* query
   * parameters may name local files.
   */
  if (config.mode == MODE_URI &&
      nbd_set_uri_allow_local_file (nbd, true) == -1)
    return -1;
  return 0;
}

/* One connection attempt to export on the configured upstream. */
static int
upstream_connect_once (struct nbd_handle *nbd, const char *export)
{
  char *uri;
  int r;

  switch (config.mode) {
  case MODE_URI:
    if (!config.dynamic_export)
      return nbd_connect_uri (nbd, config.uri);
    uri = uri_with_export (config.uri, export);
    if (uri == NULL)
      return -1;
    r = nbd_connect_uri (nbd, uri);
    free (uri);
    return r;
  case MODE_UNIX:
    return nbd_connect_unix (nbd, config.socket);
  case MODE_TCP:
    return nbd_connect_tcp (nbd, config.hostname,
                            config.port ? config.port : "10809");
  case MODE_VSOCK:
    return nbd_connect_vsock (nbd, config.vsock_cid, config.vsock_port);
  case MODE_COMMAND:
    return nbd_connect_command (nbd, (char **) config.argv);
  case MODE_SOCKET_FD:
    return nbd_connect_socket (nbd, config.socket_fd);
  default:
    errno = EINVAL;
    return -1;
  }
}

static const char *
upstream_name (void)
{
  switch (config.mode) {
  case MODE_URI: return config.uri;
  case MODE_UNIX: return config.socket;
  case MODE_TCP: return config.hostname;
  case MODE_COMMAND: return config.argv[0];
  case MODE_VSOCK: return "vsock";
  case MODE_SOCKET_FD: return "socket-fd";
  default: return "?";
  }
}

/* One second between connection attempts.  Not nbdkit_nanosleep: that
 * works only inside a connection, and start-up retries too.
 */
static int
retry_pause (void)
{
  struct timespec ts = { .tv_sec = 1 };

  while (nanosleep (&ts, &ts) == -1)
    if (errno != EINTR)
      return -1;
  return 0;
}

/* " after N retries" for the error message, or "". */
static const char *
retries (void)
{
  if (config.retry == 0)
    return "";
  return nbdkit_printf_intern (" after %u %s", config.retry,
                               config.retry == 1 ? "retry" : "retries");
}

/* Connect a new upstream handle to export, trying 1 + retry times, one
 * second apart.  In opt mode (dynamic exports, start-up probe) the handle
 * stops before asking for an export.  NULL (with nbdkit_error called) if
 * every attempt failed.
 */
static struct nbd_handle *
connect_retrying (const char *export, bool opt_mode)
{
  unsigned attempt;
  char *message = NULL;
  int err = 0;

  for (attempt = 0; attempt <= config.retry; attempt++) {
    struct nbd_handle *nbd;

    if (attempt > 0 && retry_pause () == -1)
      break;
    nbd = nbd_create ();
    if (nbd == NULL) {
      nbdkit_error ("nbd_create: %s", nbd_get_error ());
      free (message);
      return NULL;
    }
    if (upstream_prepare (nbd, export) == 0 &&
        (!opt_mode || nbd_set_opt_mode (nbd, true) == 0) &&
        upstream_connect_once (nbd, export) == 0) {
      free (message);
      return nbd;
    }
    err = nbd_get_errno ();
    free (message);
    message = strdup (nbd_get_error () ? nbd_get_error () : "unknown error");
    nbd_close (nbd);
    nbdkit_debug ("upstream connection attempt %u failed: %s", attempt + 1,
                  message ? message : "");
    /* socket-fd= can be connected only once. */
    if (config.mode == MODE_SOCKET_FD)
      break;
  }
  if (opt_mode)
    nbdkit_error ("cannot connect to upstream %s%s: %s", upstream_name (),
                  retries (), message ? message : strerror (err));
  else
    nbdkit_error ("cannot connect to upstream %s (export \"%s\")%s: %s",
                  upstream_name (), export, retries (),
                  message ? message : strerror (err));
  free (message);
  errno = err ? err : EIO;
  return NULL;
}

struct nbd_handle *
upstream_connect (const char *export)
{
  return connect_retrying (export, false);
}

/* Disconnect politely (the server finishes what it had), then free. */
void
upstream_close (struct nbd_handle *nbd)
{
  if (nbd_aio_is_ready (nbd))
    nbd_shutdown (nbd, 0);
  nbd_close (nbd);
}

/* At start-up: is the upstream there?  One clear line if not.  With
 * dynamic exports there is no export to ask for: connect in opt mode and
 * abort.
 */
int
upstream_probe (void)
{
  struct nbd_handle *nbd;

  if (config.shared)
    return 0;                   /* pool_start_shared connects for real */
  nbd = connect_retrying (config.dynamic_export ? "" : config.export,
                          config.dynamic_export);
  if (nbd == NULL)
    return -1;
  if (config.dynamic_export) {
    nbd_opt_abort (nbd);
    nbd_close (nbd);
  }
  else
    upstream_close (nbd);
  return 0;
}

static int
list_one (void *user_data, const char *name, const char *description)
{
  struct nbdkit_exports *exports = user_data;

  return nbdkit_add_export (exports, name,
                            description && *description ? description
                            : NULL);
}

/* A handle negotiating with the upstream (opt mode, export ""), for a
 * question asked during the handshake; NULL with errors left in libnbdc's
 * error for the caller's message.  Done with: opt_handle_close.
 */
static struct nbd_handle *
opt_handle (void)
{
  struct nbd_handle *nbd = nbd_create ();

  if (nbd == NULL)
    return NULL;
  if (upstream_prepare (nbd, "") == 0 &&
      nbd_set_opt_mode (nbd, true) == 0 &&
      upstream_connect_once (nbd, "") == 0)
    return nbd;
  nbd_close (nbd);
  return NULL;
}

static void
opt_handle_close (struct nbd_handle *nbd)
{
  if (nbd_aio_is_negotiating (nbd))
    nbd_opt_abort (nbd);
  nbd_close (nbd);
}

/* The upstream's export list (dynamic mode), or the configured export. */
int
upstream_list_exports (struct nbdkit_exports *exports)
{
  struct nbd_handle *nbd;
  int r = -1;

  if (!config.dynamic_export)
    return nbdkit_use_default_export (exports);
  nbd = opt_handle ();
  if (nbd &&
      nbd_opt_list (nbd, (nbd_list_callback) { .callback = list_one,
                                               .user_data = exports }) != -1)
    r = 0;
  else
    nbdkit_error ("listing the upstream's exports: %s", nbd_get_error ());
  if (nbd)
    opt_handle_close (nbd);
  return r;
}

/* The name of the upstream's default export (dynamic mode): what it calls
 * "" in NBD_INFO_NAME, asked with NBD_OPT_INFO, so that a host client
 * sees the name the upstream gives.  "" when the upstream does not say;
 * NULL (an error) when it cannot be reached.
 */
const char *
upstream_default_export (void)
{
  struct nbd_handle *nbd = opt_handle ();
  const char *r = "";
  char *name;

  if (nbd == NULL) {
    nbdkit_error ("asking the upstream for its default export: %s",
                  nbd_get_error ());
    return NULL;
  }
  if (nbd_opt_info (nbd) == 0 &&
      (name = nbd_get_canonical_export_name (nbd)) != NULL) {
    r = nbdkit_strdup_intern (name);
    free (name);
  }
  else
    nbdkit_debug ("the upstream names no default export: %s",
                  nbd_get_error ());
  opt_handle_close (nbd);
  return r;
}

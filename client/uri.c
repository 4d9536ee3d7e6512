/* libnbdc: NBD URIs (the NBD project's doc/uri.md), as nbd_connect_uri in
 * libnbd 1.14 accepts them:
 *   nbd://host[:port]/export          nbd+unix:///export?socket=PATH
 *   nbd+vsock://cid[:port]/export     and nbds* (TLS) forms of each.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum transport_kind { T_TCP, T_UNIX, T_VSOCK };

static int
hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode [s, s + len) into a new string; NULL (errno) on error. */
static char *
decode (const char *s, size_t len)
{
  char *out = malloc (len + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '%') {
      int hi = i + 2 < len ? hexval (s[i + 1]) : -1;
      int lo = i + 2 < len ? hexval (s[i + 2]) : -1;

      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free (out);
        errno = EINVAL;
        return NULL;
      }
      *p++ = hi * 16 + lo;
      i += 2;
    }
    else
      *p++ = s[i];
  }
  *p = '\0';
  return out;
}

struct uri {
  enum transport_kind kind;
  bool tls;
  char *host, *port, *export, *socket;
};

static void
uri_free (struct uri *u)
{
  free (u->host);
  free (u->port);
  free (u->export);
  free (u->socket);
}

static int
parse_scheme (struct uri *u, const char *s, size_t len)
{
  static const struct {
    const char *name;
    enum transport_kind kind;
    bool tls;
  } schemes[] = {
    { "nbd", T_TCP, false }, { "nbds", T_TCP, true },
    { "nbd+unix", T_UNIX, false }, { "nbds+unix", T_UNIX, true },
    { "nbd+vsock", T_VSOCK, false }, { "nbds+vsock", T_VSOCK, true },
  };

  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strlen (schemes[i].name) == len &&
        strncasecmp (schemes[i].name, s, len) == 0) {
      u->kind = schemes[i].kind;
      u->tls = schemes[i].tls;
      return 0;
    }
  set_error (EINVAL, "unknown NBD URI scheme: %.*s", (int) len, s);
  return -1;
}

/* host[:port], host possibly [v6 address]; user@ is ignored. */
static int
parse_authority (struct uri *u, const char *s, size_t len)
{
  const char *at = memchr (s, '@', len), *colon;
  size_t hlen;

  if (at) {
    len -= at + 1 - s;
    s = at + 1;
  }
  if (len && s[0] == '[') {
    const char *close = memchr (s, ']', len);

    if (close == NULL) {
      set_error (EINVAL, "URI: unterminated [ in host");
      return -1;
    }
    u->host = strndup (s + 1, close - s - 1);
    colon = close + 1 < s + len && close[1] == ':' ? close + 1 : NULL;
    if (!colon && close + 1 != s + len) {
      set_error (EINVAL, "URI: junk after ] in host");
      return -1;
    }
  }
  else {
    colon = memchr (s, ':', len);
    hlen = colon ? (size_t) (colon - s) : len;
    u->host = decode (s, hlen);
  }
  if (colon)
    u->port = strndup (colon + 1, s + len - colon - 1);
  if (u->host == NULL || (colon && u->port == NULL)) {
    set_error (errno ? errno : EINVAL, "URI: cannot parse the host");
    return -1;
  }
  return 0;
}

static int
parse_query (struct nbd_handle *h, struct uri *u, const char *q)
{
  while (*q) {
    size_t len = strcspn (q, "&;");
    const char *eq = memchr (q, '=', len);
    size_t klen = eq ? (size_t) (eq - q) : len;
    char *value = eq ? decode (eq + 1, q + len - eq - 1) : strdup ("");

    if (value == NULL) {
      set_error (EINVAL, "URI: bad percent-encoding in the query");
      return -1;
    }
    if (klen == 6 && strncmp (q, "socket", 6) == 0) {
      free (u->socket);
      u->socket = value;
      value = NULL;
    }
    else if (klen == 12 && strncmp (q, "tls-psk-file", 12) == 0) {
      /* libnbd refuses local file access from a URI by default. */
      set_error (EPERM, "local file access (tls-psk-file) is not allowed "
                 "from a URI");
      free (value);
      return -1;
    }
    else
      debug (h, "ignoring URI query parameter %.*s", (int) klen, q);
    free (value);
    q += len;
    if (*q)
      q++;
  }
  return 0;
}

static int
parse_uri (struct nbd_handle *h, struct uri *u, const char *s)
{
  const char *sep = strstr (s, "://"), *auth, *path, *query;
  size_t alen;

  if (sep == NULL) {
    set_error (EINVAL, "not an NBD URI (no \"://\"): %s", s);
    return -1;
  }
  if (parse_scheme (u, s, sep - s) == -1)
    return -1;
  auth = sep + 3;
  alen = strcspn (auth, "/?#");
  if (parse_authority (u, auth, alen) == -1)
    return -1;
  path = auth + alen;
  query = strchr (path, '?');
  if (strchr (path, '#')) {
    set_error (EINVAL, "URI: fragments (#) are not allowed");
    return -1;
  }
  /* The export name is the path without its leading '/'. */
  size_t plen = query ? (size_t) (query - path) : strlen (path);
  if (plen && path[0] == '/') {
    path++;
    plen--;
  }
  u->export = decode (path, plen);
  if (u->export == NULL) {
    set_error (EINVAL, "URI: bad percent-encoding in the export name");
    return -1;
  }
  if (strlen (u->export) > NBD_MAX_STRING) {
    set_error (ENAMETOOLONG, "URI: export name too long");
    return -1;
  }
  return query ? parse_query (h, u, query + 1) : 0;
}

/* Parse the URI, set the export name, and start connecting. */
int
aio_connect_uri (struct nbd_handle *h, const char *str)
{
  struct uri u = { 0 };
  int r = -1;

  if (parse_uri (h, &u, str) == -1)
    goto out;
  if (u.tls) {
    set_error (ENOTSUP, "TLS URIs (nbds://...) are not supported by this "
               "build of libnbdc");
    goto out;
  }
  free (h->export_name);
  h->export_name = u.export;
  u.export = NULL;

  switch (u.kind) {
  case T_UNIX:
    if (u.socket == NULL || *u.host) {
      set_error (EINVAL, "nbd+unix URI: %s", u.socket == NULL
                 ? "the socket=PATH parameter is required"
                 : "a host is not allowed");
      goto out;
    }
    r = aio_connect_unix (h, u.socket);
    break;
  case T_TCP:
    if (u.socket) {
      set_error (EINVAL, "nbd URI: socket= needs the nbd+unix scheme");
      goto out;
    }
    r = aio_connect_tcp (h, *u.host ? u.host : "localhost",
                         u.port && *u.port ? u.port : "10809");
    break;
  case T_VSOCK: {
    char *end;
    unsigned long cid, port = 10809;

    errno = 0;
    cid = strtoul (u.host, &end, 10);
    if (errno || *end || !*u.host || cid > UINT32_MAX) {
      set_error (EINVAL, "nbd+vsock URI: bad CID \"%s\"", u.host);
      goto out;
    }
    if (u.port && *u.port) {
      port = strtoul (u.port, &end, 10);
      if (errno || *end || port > UINT32_MAX) {
        set_error (EINVAL, "nbd+vsock URI: bad port \"%s\"", u.port);
        goto out;
      }
    }
    r = aio_connect_vsock (h, cid, port);
    break;
  }
  }
  if (r == 0 || h->state != STATE_CREATED) {
    char *copy = strdup (str);

    if (copy) {
      free (h->uri);
      h->uri = copy;
    }
  }
 out:
  uri_free (&u);
  return r;
}

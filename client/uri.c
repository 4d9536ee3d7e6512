/* libnbdc: NBD URIs (the NBD project's doc/uri.md), parsed as
 * nbd_connect_uri in libnbd 1.14 accepts them:
 *   nbd://host[:port]/export          nbd+unix:///export?socket=PATH
 *   nbd+vsock://[cid][:port]/export   and nbds* (TLS) forms of each.
 * connect.c connects to what this finds; uri_encode writes URIs back.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Percent-encode s for a URI; in a path, '/' stays as it is. */
char *
uri_encode (const char *s, bool path)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc (strlen (s) * 3 + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (; *s; s++) {
    unsigned char c = *s;

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("-._~", c) || (path && c == '/'))
      *p++ = c;
    else {
      *p++ = '%';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p = '\0';
  return out;
}

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

void
uri_free (struct nbd_uri *u)
{
  free (u->host);
  free (u->port_name);
  free (u->export);
  free (u->socket);
  free (u->user);
  free (u->tls_certificates);
  free (u->tls_psk_file);
}

/* The scheme, in lower case only (as libnbd). */
static int
parse_scheme (struct nbd_uri *u, const char *s, size_t len)
{
  static const struct {
    const char *name;
    enum uri_transport transport;
    bool tls;
  } schemes[] = {
    { "nbd", URI_TCP, false }, { "nbds", URI_TCP, true },
    { "nbd+unix", URI_UNIX, false }, { "nbds+unix", URI_UNIX, true },
    { "nbd+vsock", URI_VSOCK, false }, { "nbds+vsock", URI_VSOCK, true },
  };

  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strlen (schemes[i].name) == len &&
        strncmp (schemes[i].name, s, len) == 0) {
      u->scheme = schemes[i].name;
      u->transport = schemes[i].transport;
      u->tls = schemes[i].tls;
      return 0;
    }
  set_error (EINVAL, "unknown NBD URI scheme: %.*s", (int) len, s);
  return -1;
}

/* [user@]host[:port], host possibly [v6 address]; the user is the TLS
 * user name (nbd_connect_uri(3)).
 */
static int
parse_authority (struct nbd_uri *u, const char *s, size_t len)
{
  const char *at = memchr (s, '@', len), *colon;
  size_t hlen;

  if (at) {
    u->user = decode (s, at - s);
    if (u->user == NULL) {
      set_error (EINVAL, "URI: bad percent-encoding in the user name");
      return -1;
    }
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
  if (colon && colon + 1 == s + len) {
    set_error (EINVAL, "URI: empty port after ':'");   /* as libnbd */
    return -1;
  }
  if (colon)
    u->port_name = strndup (colon + 1, s + len - colon - 1);
  if (u->host == NULL || (colon && u->port_name == NULL)) {
    set_error (errno ? errno : EINVAL, "URI: cannot parse the host");
    return -1;
  }
  return 0;
}

/* The query: socket=, tls-certificates= and tls-psk-file= (the last two
 * name local files, checked by the caller); others are ignored, as
 * libnbd 1.14 ignores them.
 */
static int
parse_query (struct nbd_handle *h, struct nbd_uri *u, const char *q)
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
    char **field = NULL;

    if (klen == 6 && strncmp (q, "socket", 6) == 0)
      field = &u->socket;
    else if (klen == 12 && strncmp (q, "tls-psk-file", 12) == 0)
      field = &u->tls_psk_file;
    else if (klen == 16 && strncmp (q, "tls-certificates", 16) == 0)
      field = &u->tls_certificates;
    else
      debug (h, "ignoring URI query parameter %.*s", (int) klen, q);
    if (field) {
      free (*field);
      *field = value;
    }
    else
      free (value);
    q += len;
    if (*q)
      q++;
  }
  return 0;
}

static int
parse_uri (struct nbd_handle *h, struct nbd_uri *u, const char *s)
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
  alen = strcspn (auth, "/?");
  if (parse_authority (u, auth, alen) == -1)
    return -1;
  path = auth + alen;
  query = strchr (path, '?');
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

/* Check what the transport needs and fill in the defaults. */
static int
uri_complete (struct nbd_uri *u)
{
  char *end;
  unsigned long v;

  switch (u->transport) {
  case URI_UNIX:                /* a host, if any, is ignored (libnbd) */
    if (u->socket == NULL) {
      set_error (EINVAL, "nbd+unix URI: the socket=PATH parameter is "
                 "required");
      return -1;
    }
    return 0;
  case URI_TCP:
    if (u->socket) {
      set_error (EINVAL, "socket= is incompatible with the nbd: scheme "
                 "(did you mean nbd+unix:///?socket=...)");
      return -1;
    }
    if (*u->host == '\0') {
      free (u->host);
      u->host = strdup ("localhost");
    }
    if (u->port_name == NULL)
      u->port_name = strdup ("10809");
    if (u->host == NULL || u->port_name == NULL) {
      set_error (ENOMEM, "strdup");
      return -1;
    }
    return 0;
  case URI_VSOCK:
    u->cid = 2;                 /* VMADDR_CID_HOST, libnbd's default */
    u->port = 10809;
    errno = 0;
    if (*u->host) {
      v = strtoul (u->host, &end, 10);
      if (errno || *end || v > UINT32_MAX) {
        set_error (EINVAL, "nbd+vsock URI: bad CID \"%s\"", u->host);
        return -1;
      }
      u->cid = v;
    }
    if (u->port_name) {
      v = strtoul (u->port_name, &end, 10);
      if (errno || *end || v > UINT32_MAX) {
        set_error (EINVAL, "nbd+vsock URI: bad port \"%s\"", u->port_name);
        return -1;
      }
      u->port = v;
    }
    return 0;
  }
  abort ();
}

/* Parse an NBD URI into *u (freed with uri_free, also on failure). */
int
uri_parse (struct nbd_handle *h, struct nbd_uri *u, const char *str)
{
  /* A fragment means nothing to NBD: it is ignored, as libnbd does. */
  char *copy = strndup (str, strcspn (str, "#"));
  int r;

  if (copy == NULL) {
    set_error (errno, "strndup: %s", strerror (errno));
    return -1;
  }
  r = parse_uri (h, u, copy) == -1 ? -1 : uri_complete (u);
  free (copy);
  return r;
}

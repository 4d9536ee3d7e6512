/* nbd-proxy: what the plugin's files share.  config.c parses the keys and
 * connects upstream handles, pool.c shares those handles between host
 * connections, nbd-proxy.c is nbdkit's callback table.
 */

#ifndef NBD_PROXY_H
#define NBD_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libnbd.h>

/* Where the upstream server is: exactly one of these keys. */
enum upstream_mode {
  MODE_NONE,
  MODE_URI,                     /* uri= */
  MODE_UNIX,                    /* socket= */
  MODE_TCP,                     /* hostname= [port=] */
  MODE_VSOCK,                   /* vsock= [port=] */
  MODE_COMMAND,                 /* command= [arg=]... */
  MODE_SOCKET_FD,               /* socket-fd= */
};

struct proxy_config {
  enum upstream_mode mode;
  const char *uri;
  char *socket;                 /* absolute path */
  const char *hostname;
  const char *port;             /* NULL: 10809 */
  uint32_t vsock_cid;
  uint32_t vsock_port;
  const char **argv;            /* command= then each arg=, NULL-ended */
  size_t argc;
  int socket_fd;

  const char *export;           /* export= or the URI's path; NULL: none */
  bool dynamic_export;          /* pass the host client's export name */
  unsigned retry;               /* more connection attempts, 1 s apart */
  bool shared;                  /* one pool for every host connection */
  unsigned connections;         /* pool size when the upstream multi-conns */

  int tls;                      /* LIBNBD_TLS_*; -1: not given */
  char *tls_certificates;
  int tls_verify;               /* -1: not given */
  const char *tls_username;
  char *tls_psk;
};

extern struct proxy_config config;

struct nbdkit_exports;

/* config.c */
#define PROXY_CONNECTIONS_DEFAULT 4
#define PROXY_CONNECTIONS_MAX 64
extern int proxy_config_key (const char *key, const char *value);
extern int proxy_config_complete (void);
extern void proxy_config_unload (void);
extern void proxy_dump_keys (void);
extern struct nbd_handle *upstream_connect (const char *export);
extern void upstream_close (struct nbd_handle *nbd);
extern int upstream_probe (void);
extern int upstream_list_exports (struct nbdkit_exports *exports);
extern const char *upstream_default_export (void);

/* pool.c: a host connection's upstream is a pool of slots. */
struct slot {
  struct nbd_handle *nbd;
  atomic_bool dead;             /* failed: requests go elsewhere or fail */
  atomic_uint busy;             /* requests in flight on this slot */
};

struct pool;

extern int pool_start_shared (void);
extern void pool_stop_shared (void);
extern struct pool *pool_open (const char *export);
extern void pool_close (struct pool *pool);
extern struct nbd_handle *pool_info_handle (struct pool *pool);
/* A read or write of this many bytes or more is large (pool_get). */
#define LARGE_REQUEST (128 * 1024)

extern struct slot *pool_get (struct pool *pool, uint64_t payload);
extern void pool_put (struct slot *slot);
extern int upstream_failed (struct slot *slot, const char *what);

#endif /* NBD_PROXY_H */

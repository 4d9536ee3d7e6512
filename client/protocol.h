/* libnbdc: NBD wire format, named once (see doc/proto.md of the NBD project).
 * Everything on the wire is big-endian; structs here are the wire layout and
 * are converted with be16toh/be32toh/be64toh at the boundary only.
 */

#ifndef NBDC_PROTOCOL_H
#define NBDC_PROTOCOL_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#define NBD_INIT_PASSWD        UINT64_C (0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_NEW_VERSION        UINT64_C (0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_OLD_VERSION        UINT64_C (0x00420281861253)
#define NBD_OPT_REPLY_MAGIC    UINT64_C (0x0003e889045565a9)
#define NBD_REQUEST_MAGIC      UINT32_C (0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   (1 << 0)
#define NBD_FLAG_NO_ZEROES        (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_C_NO_ZEROES      (1 << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

/* Option reply types. */
#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_ERR(n)            (UINT32_C (0x80000000) + (n))
#define NBD_REP_ERR_UNSUP         NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY        NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID       NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM      NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD      NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN       NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN      NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG       NBD_REP_ERR (9)
#define NBD_REP_IS_ERR(t)         (((t) & UINT32_C (0x80000000)) != 0)

/* Information types inside NBD_REP_INFO. */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS        (1 << 0)
#define NBD_FLAG_READ_ONLY        (1 << 1)
#define NBD_FLAG_SEND_FLUSH       (1 << 2)
#define NBD_FLAG_SEND_FUA         (1 << 3)
#define NBD_FLAG_ROTATIONAL       (1 << 4)
#define NBD_FLAG_SEND_TRIM        (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1 << 6)
#define NBD_FLAG_SEND_DF          (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN   (1 << 8)
#define NBD_FLAG_SEND_RESIZE      (1 << 9)
#define NBD_FLAG_SEND_CACHE       (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO   (1 << 11)

/* Commands and command flags. */
#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_CACHE             5
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7

#define NBD_CMD_FLAG_FUA          (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1 << 1)
#define NBD_CMD_FLAG_DF           (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1 << 4)

/* Structured reply flags and chunk types. */
#define NBD_REPLY_FLAG_DONE       (1 << 0)
#define NBD_REPLY_TYPE_NONE       0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR      ((1 << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1 << 15) + 2)
#define NBD_REPLY_TYPE_IS_ERR(t)  (((t) & (1 << 15)) != 0)

/* Error values on the wire. */
#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* Strings in the handshake are at most this long (spec: 4096 bytes). */
#define NBD_MAX_STRING 4096

struct nbd_old_handshake {      /* after the 16 bytes of magic */
  uint64_t exportsize;
  uint16_t gflags;              /* always zero */
  uint16_t eflags;
  char zeroes[124];
} __attribute__ ((__packed__));

struct nbd_new_option {
  uint64_t version;             /* NBD_NEW_VERSION */
  uint32_t option;
  uint32_t optlen;
} __attribute__ ((__packed__));

struct nbd_fixed_new_option_reply {
  uint64_t magic;               /* NBD_OPT_REPLY_MAGIC */
  uint32_t option;
  uint32_t reply;
  uint32_t replylen;
} __attribute__ ((__packed__));

struct nbd_export_name_reply {  /* reply to NBD_OPT_EXPORT_NAME */
  uint64_t exportsize;
  uint16_t eflags;
  char zeroes[124];             /* absent with NO_ZEROES */
} __attribute__ ((__packed__));

struct nbd_request {
  uint32_t magic;               /* NBD_REQUEST_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t count;
} __attribute__ ((__packed__));

struct nbd_simple_reply {
  uint32_t magic;               /* NBD_SIMPLE_REPLY_MAGIC */
  uint32_t error;
  uint64_t cookie;
} __attribute__ ((__packed__));

struct nbd_structured_reply {
  uint32_t magic;               /* NBD_STRUCTURED_REPLY_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint32_t length;
} __attribute__ ((__packed__));

struct nbd_chunk_error {        /* NBD_REPLY_TYPE_ERROR and _ERROR_OFFSET */
  uint32_t error;
  uint16_t len;                 /* message length; message follows */
} __attribute__ ((__packed__));

/* Big-endian fields of a received buffer, which may be unaligned. */
static inline uint16_t
get16 (const char *p)
{
  uint16_t v;

  memcpy (&v, p, sizeof v);
  return be16toh (v);
}

static inline uint32_t
get32 (const char *p)
{
  uint32_t v;

  memcpy (&v, p, sizeof v);
  return be32toh (v);
}

static inline uint64_t
get64 (const char *p)
{
  uint64_t v;

  memcpy (&v, p, sizeof v);
  return be64toh (v);
}

#endif /* NBDC_PROTOCOL_H */

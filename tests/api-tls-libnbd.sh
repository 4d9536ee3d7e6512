#!/bin/sh
# api-tls.sh run against libnbd itself (the api-tls-libnbd build): the
# reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-tls.sh"

#!/bin/sh
# api-read-nbd-server.sh run against libnbd itself (the api-read-nbd-server-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-read-nbd-server.sh"

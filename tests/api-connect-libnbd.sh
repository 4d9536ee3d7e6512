#!/bin/sh
# api-connect.sh run against libnbd itself (the api-connect-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-connect.sh"

#!/bin/sh
# api-free.sh run against libnbd itself (the api-free-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-free.sh"

#!/bin/sh
# api-callbacks.sh run against libnbd itself (the api-callbacks-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-callbacks.sh"

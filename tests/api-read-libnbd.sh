#!/bin/sh
# api-read.sh run against libnbd itself (the api-read-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-read.sh"

#!/bin/sh
# api-uri.sh run against libnbd itself (the api-uri-libnbd build): the
# reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-uri.sh"

#!/bin/sh
# api-integrity.sh run against libnbd itself (the api-integrity-libnbd
# build): the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-integrity.sh"

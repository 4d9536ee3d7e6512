#!/bin/sh
# api-opt.sh run against libnbd itself (the api-opt-libnbd build): the
# reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-opt.sh"

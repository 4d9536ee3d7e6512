#!/bin/sh
# api-settings.sh run against libnbd itself (the api-settings-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-settings.sh"

#!/bin/sh
# api-read-qemu.sh run against libnbd itself (the api-read-qemu-libnbd build):
# the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-read-qemu.sh"

#!/bin/sh
# api-contract.sh run against libnbd itself (the api-contract-libnbd
# build): the reference behaviour the libnbdc run must match.
API_VARIANT=libnbd
export API_VARIANT
. "${srcdir:-.}/api-contract.sh"

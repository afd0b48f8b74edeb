#!/bin/bash
# 58: gateway mode with TPROXY: scenario 57 with listen_mode = tproxy (the
# TPROXY rule in mangle PREROUTING, ip rule fwmark -> table 100 with a
# local default route, installed and removed by `mxguard rules`).
GW_LISTEN_MODE=tproxy exec bash "$(dirname "$0")/57-gateway.sh"

#!/bin/bash
# Guest side of t-plain-guest: exit with the status asked for.
exit "$1"

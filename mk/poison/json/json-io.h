/* Poison: the engine must not parse JSON (see Makefile, "layers"). */
#error "engine code includes <json-io.h>: JSON enters ngdp-server only through src/server/control*.c"

/* Poison: no JSON in this layer (see Makefile, "layers"). */
#error "<json-c/json.h>: this layer must not parse JSON; in ngdp-server JSON enters only through src/server/control*.c"

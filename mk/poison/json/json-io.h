/* Poison: no JSON in this layer (see Makefile, "layers"). */
#error "<json-io.h>: this layer must not parse JSON; in ngdp-server JSON enters only through src/server/control*.c"

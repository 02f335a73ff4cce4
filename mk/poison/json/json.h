/* Poison: no JSON in this layer (see Makefile, "layers"). */
#error "<json.h>: this layer must not parse JSON; in ngdp-server JSON enters only through src/server/control*.c"

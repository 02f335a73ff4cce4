/* Poison: the SR model stays out of this layer (see Makefile, "layers"). */
#error "active.h belongs to the SR model (libsr): this layer must not include it"

/* Poison: the SR model stays out of this layer (see Makefile, "layers"). */
#error "sr.h belongs to the SR model (libsr): this layer must not include it"

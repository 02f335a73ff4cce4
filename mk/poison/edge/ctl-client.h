/* Poison: the plugins' edge stays out of this layer (see Makefile, "layers"). */
#error "ctl-client.h belongs to the plugins' edge (libedge): this layer must not include it"

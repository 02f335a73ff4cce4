/* Poison: plugin headers stay out of the daemon (see Makefile, "layers"). */
#error "ngdp-server code includes the plugin header call.h"

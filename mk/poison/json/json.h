#error "ngdp engine code must not include <json.h>: JSON and the plugin edge stay behind src/server/control*.c (see mk/poison)"

/*
 * Test plugin for hot reload: a changed definition (declared version 3,
 * balance in cents) that rebuilds account_details from position 0, and a
 * second projection, account_events, that starts from 0 when it appears.
 */
#define AD_VERSION        3
#define AD_UNIT           100
#define AD_PLUGIN_VERSION "3.0.0"
#define AD_WITH_EVENTS    1
#include "account_details_variant.h"

/*
 * Test plugin for hot reload: the Account Details example with another
 * handler (balance in cents) but the same definition, so a reload continues
 * from the checkpoint instead of rebuilding.
 */
#define AD_VERSION        1
#define AD_UNIT           100
#define AD_PLUGIN_VERSION "2.0.0"
#define AD_WITH_EVENTS    0
#include "account_details_variant.h"

/*
 * Test plugin: projection "e2e_conflict", the code of e2e_emitter.c under
 * another id and name, declaring the same streams ("ledger-*"). Loaded
 * beside e2e_emitter it must be refused (two projections declaring one
 * output stream); loaded after e2e_emitter was removed, its writes to the
 * streams e2e_emitter wrote must fault with EOWNED.
 */
#define E2E_ID   "e2e0e2e0-0002-4000-8000-000000000002"
#define E2E_NAME "e2e_conflict"
#include "e2e_emitter.c"

# Issue 8, the event log's side of emitting projections (helper area
# "store"): included by tests/CMakeLists.txt.

# store_emit_test: stream patterns and claims, client commits refused on
# owned streams, emit batches in the group commit, reset as a soft delete,
# link resolution, reopen, a batch over the map size (store.c + log.c only,
# like the other store tests).
sl_test(store_emit_test store_emit_test.c ../runtime/store/store.c ../runtime/store/store_emit.c
          ../runtime/store/store_delete.c ../runtime/log.c ../runtime/fsutil.c
        LIBS sl_proto PkgConfig::LMDB Threads::Threads)
target_include_directories(store_emit_test PRIVATE ../runtime ../runtime/store)

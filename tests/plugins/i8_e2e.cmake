# Issue 8 end-to-end test plugins (ABI 1.2 emitting projections), each
# alone in a directory of its own so that a daemon loads only it:
# e2e_emitter (Ledger events + links into ledger-*), e2e_conflict (the same
# streams under another id: refused beside it, EOWNED after it), e2e_slow
# (every event, slowly; a Tick per 100,000).
sluice_add_plugin(e2e_emitter ${TP}/e2e_emitter e2e_emitter.c)
sluice_add_plugin(e2e_conflict ${TP}/e2e_conflict e2e_conflict.c)
sluice_add_plugin(e2e_slow ${TP}/e2e_slow e2e_slow.c)

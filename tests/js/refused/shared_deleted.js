// $deleted gets no shared state from the host: refused with bi-state.
fromAll().foreachStream().when({
  $initShared: function () { return { n: 0 }; },
  $any: function (s, e) { s[1].n++; },
  $deleted: function (s, e) {}
});

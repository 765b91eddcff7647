// $deleted in a bi-state projection: it gets [state, shared] as the
// handlers do, and may change both.
fromCategory('account').foreachStream().when({
  $initShared: function () { return { deleted: 0 }; },
  $init: function () { return { n: 0 }; },
  $any: function (s, e) { s[0].n++; },
  $deleted: function (s, e) {
    s[1].deleted++;
    s[0].gone = e.streamId;
    s[0].seen = s[1].deleted;
  }
});

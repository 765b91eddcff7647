// $deleted: called for the key of a deleted stream (soft delete).
fromCategory('account').foreachStream().when({
  $init: function () { return { n: 0 }; },
  $any: function (s, e) { s.n++; },
  $deleted: function (s, e, isSoftDelete) {
    s.deleted = isSoftDelete;
    s.by = e.streamId;
  }
});

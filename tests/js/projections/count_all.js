// Every event of the tenant, one state (EventStoreDB's root partition).
fromAll().when({
  $init: function () { return { count: 0 }; },
  $any: function (s, e) { s.count += 1; }
});

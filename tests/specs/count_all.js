// fromAll with $init and $any: counts every event.
fromAll().when({
  $init: function () { return { count: 0 }; },
  $any: function (s, e) { s.count++; }
});

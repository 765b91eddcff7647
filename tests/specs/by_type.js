// $any without $init: the state starts as {}.
fromAll().when({
  $any: function (s, e) { s[e.eventType] = (s[e.eventType] || 0) + 1; }
});

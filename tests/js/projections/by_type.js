// $any without $init: the state starts as {}; Object.keys, sort, join.
fromAll().when({
  $any: function (s, e) {
    s[e.eventType] = (s[e.eventType] || 0) + 1;
    s.types = Object.keys(s).filter(function (k) { return k !== 'types'; })
      .sort().join(',');
  }
});

fromAll().when({
  $any: function (s, e) {
    s.x = ;
  }
});

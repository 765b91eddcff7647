fromCategory('account').foreachStream().when({
  $init: function () {
    return { n: 0, bad: undefinedName.x };
  },
  Deposited: function (s, e) { s.n++; }
});

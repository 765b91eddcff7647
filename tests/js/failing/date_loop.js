// Loops over local-time Date methods (the C library's time-zone code,
// which takes a lock) until the CPU budget cuts it: the cut must wait
// until the engine is back in its own code.
options({ $budgetMs: 20 });
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    var d = new Date(2020, 1, 1, 12, 0, 0);
    while (e.streamId === 'account-2') {
      s.h = d.getHours() + d.getTimezoneOffset();
      s.t = d.toString();
    }
    s.n = (s.n || 0) + 1;
  }
});

options({ $memoryMb: 4 });
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    var a = [], x = 'y';
    while (e.streamId === 'account-2') { x = x + x; a.push(x); }
    s.n = (s.n || 0) + 1;
  }
});

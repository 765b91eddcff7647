// a result transform that throws: the key fails with the script's reason
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) { s.n = (s.n || 0) + 1; s.on = e.streamId; }
}).transformBy(function (s) {
  if (s.on === 'account-2') throw new Error('no result for ' + s.on);
  return { n: s.n };
});

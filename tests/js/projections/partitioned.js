// partitionBy(): a key computed by the script; null skips the event.
fromCategory('account').partitionBy(function (e) {
  if (e.eventType === 'Withdrawn') return null;
  return e.data.amount >= 60 ? 'big' : 'small';
}).when({
  $init: function () { return { n: 0, sum: 0 }; },
  Deposited: function (s, e) { s.n++; s.sum += e.data.amount; s.p = e.partition; },
  Withdrawn: function (s, e) { throw new Error('not skipped'); }
});

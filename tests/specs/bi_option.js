// options({biState: true}) without $initShared: the shared state starts
// as {}; a handler may return a new [state, shared].
options({ biState: true });
fromCategory('bank').foreachStream().when({
  $init: function () { return { mine: 0 }; },
  Audit: function (s, e) {
    var seen = (s[1].seen || 0) + 1;
    return [ { mine: s[0].mine + 1, seenThen: seen }, { seen: seen } ];
  }
});

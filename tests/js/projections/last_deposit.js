// A handler that returns a new state replaces the old one.
fromCategory('account').foreachStream().when({
  Deposited: function (s, e) {
    return { last: e.data.amount, seq: e.sequenceNumber,
             stream: e.streamId, partition: e.partition };
  }
});

// copyTo(stream, e, metadata): a copy of each Tagged event (type, body),
// its metadata merged with the given one's ('$' names left out).
options({ emits: ['copies-*'] });
fromStream('user-1').when({
  Tagged: function (s, e) {
    copyTo('copies-' + e.streamId, e, { copied: true, $skip: 1 });
    s.n = (s.n || 0) + 1;
  }
});

// copyTo(stream, e, metadata): a copy of each Tagged event, its metadata
// merged with the given one ('$' names left out).
options({ emits: ['copies-*'] });
fromStream('user-1').when({
  Tagged: function (s, e) {
    copyTo('copies-' + e.streamId, e, { copied: true, $skip: 1 });
  }
});

// linkStreamTo(stream, linked): a "$@" event naming each shop stream the
// first time it is seen.
options({ emits: ['seen-streams'] });
fromCategory('shop').when({
  $init: function () { return { streams: {} }; },
  $any: function (s, e) {
    if (s.streams[e.streamId] === undefined) {
      s.streams[e.streamId] = e.sequenceNumber;
      linkStreamTo('seen-streams', e.streamId);
    }
  }
});

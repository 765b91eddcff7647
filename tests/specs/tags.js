// e.metadata, e.isJson, e.sequenceNumber.
fromStream('user-1').when({
  $init: function () { return { tags: [] }; },
  Tagged: function (s, e) {
    s.tags.push(e.metadata.tag);
    s.json = e.isJson;
    s.last = e.sequenceNumber;
  }
});

// e.body and e.data (the parsed content), e.bodyRaw (its JSON text),
// e.isJson, e.metadata, e.eventType, e.streamId and e.sequenceNumber.
fromStream('doc-1').when({
  $init: function () { return { texts: [] }; },
  Written: function (s, e) {
    s.texts.push(e.body.text);
    s.raw = e.bodyRaw;
    s.same = e.body.text === e.data.text;
    s.isJson = e.isJson;
    s.by = e.metadata.by;
    s.where = e.streamId + '@' + e.sequenceNumber + ':' + e.eventType;
  }
});

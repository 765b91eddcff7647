// options({$includeLinks: true}): the link events of the stream reach the
// handlers as themselves (eventType "$>"), with e.linkMetadata their
// metadata; an ordinary event's e.linkMetadata is null.
options({ $includeLinks: true });
fromStream('vip-links').when({
  $init: function () { return { links: 0, others: 0, why: [] }; },
  $any: function (s, e) {
    if (e.eventType === '$>') s.links++; else s.others++;
    s.why.push(e.linkMetadata === null ? null : e.linkMetadata.why);
  }
});

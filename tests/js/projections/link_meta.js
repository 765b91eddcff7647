// $includeLinks: a link event's metadata is e.linkMetadata too.
options({ $includeLinks: true });
fromStream('vip-links').when({
  $init: function () { return { n: 0, why: [] }; },
  $any: function (s, e) {
    s.n++;
    s.type = e.eventType;
    s.why.push(e.linkMetadata === null ? null : e.linkMetadata.why);
  }
});

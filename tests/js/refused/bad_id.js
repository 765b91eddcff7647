// options.$id must be a UUID
options({ $id: 'not-a-uuid' });
fromAll().when({ $any: function (s, e) { s.n = (s.n || 0) + 1; } });

// The id and the name from options, not from the file's name.
options({ $id: 'A1B2C3D4-0000-4000-8000-00000000C0DE', $name: 'ledger' });
fromAll().when({ $any: function (s, e) { s.n = (s.n || 0) + 1; } });
